"""The classical reference row of every results table: character 1-3-gram TF-IDF + logistic
regression (scikit-learn), trained on the same labelled rows as the prompt methods.

On the bundled demo model this simple baseline beats P-tuning (0.726 test accuracy on the default
168 sentiment rows against ~0.62): a weak MLM gives a prompt little to work with, and a reader
should see that next to every prompt number. Multi-field rows (sentence pairs) are joined with
[SEP] so the n-grams stay within a field.

Speed (issue 27): the n-gram vocabulary of a few hundred long rows is large (FewCLUE fold 0: csldcp's
536 abstracts have 120,674 char 1-3-grams, x 67 classes = 8.1M weights; iflytek's 928 rows 263,505 x
119 = 31M), and L-BFGS over them took 65 s and 535 s and a 9.4 GB peak RSS. The L2-regularised weights
lie in the span of the training rows, so the same model is fitted on the rows' coordinates in an
orthonormal basis of that span (`span_features`, at most one column per training row): the same
valid/test accuracies and C on every task timed, in 1.6 s and 5.3 s, 0.3 GB.
"""
import numpy as np

from few_shot.pattern import field_names, field_text, has_field, row_fields

NAME = "tfidf-lr"
C_GRID = (0.1, 1.0, 10.0, 100.0)


def row_text(row, fields=None):
    """A row's fields joined with [SEP] (lists with ，); nested fields (cluewsc's target.*) flattened."""
    values = row_fields(row)
    keys = fields or sorted(field_names(values))
    return " [SEP] ".join(field_text(values, k) for k in keys if has_field(values, k))


def span_features(x_train, *others):
    """Sparse rows -> their coordinates in an orthonormal basis of the training rows' span: dense
    [n_train, r] for `x_train` and [n, r] for each of `others` (r <= n_train, the rank).

    From the Gram matrix K = X X^T = U diag(s) U^T: train -> U sqrt(s), other rows Y -> Y X^T U / sqrt(s).
    Every inner product with a training row is kept, and a weight vector w = X^T a (where the optimum
    of an L2-regularised linear model lies) has the same norm, so such a model fitted on these columns
    is the model fitted on the original features, with the same scores for every row."""
    gram = (x_train @ x_train.T).toarray().astype(np.float64)
    values, vectors = np.linalg.eigh(gram)
    keep = values > max(values.max(), 0.0) * 1e-10
    if not keep.any():  # every training row empty: no direction to learn
        return np.zeros((x_train.shape[0], 1)), [np.zeros((x.shape[0], 1)) for x in others]
    values, vectors = values[keep], vectors[:, keep]
    project = vectors / np.sqrt(values)
    return vectors * np.sqrt(values), [np.asarray((x @ x_train.T).toarray() @ project) for x in others]


def tfidf_logreg(train, valid, test, seed=0, fields=None):
    """Fit on `train` [(row, label)], score `valid` and `test` -> {"valid_acc", "test_acc", ...}.
    C is chosen on valid from a small grid (as the prompt methods choose their epoch). BLAS runs on
    one thread: its matrices are at most a thousand rows wide, and more threads only spun (4x the CPU
    time on the shared 2-core machine, no faster)."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        return _tfidf_logreg(train, valid, test, seed, fields)


def _tfidf_logreg(train, valid, test, seed, fields):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    x_train = vectorizer.fit_transform([row_text(r, fields) for r, _ in train])
    x_valid = vectorizer.transform([row_text(r, fields) for r, _ in valid])
    x_test = vectorizer.transform([row_text(r, fields) for r, _ in test])
    x_train, (x_valid, x_test) = span_features(x_train, x_valid, x_test)
    y_train, y_valid, y_test = (np.array([str(label) for _, label in rows]) for rows in (train, valid, test))
    if len(set(y_train)) < 2:
        constant = y_train[0]
        return {"method": NAME, "valid_acc": float(np.mean(y_valid == constant)),
                "test_acc": float(np.mean(y_test == constant)), "C": None, "train_rows": len(train)}
    best = None
    for c in C_GRID:  # each fit from scratch (a warm start stops elsewhere within L-BFGS' tolerance)
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x_train, y_train)
        valid_acc = float(np.mean(model.predict(x_valid) == y_valid))
        if best is None or valid_acc > best[0]:
            best = (valid_acc, c, model.predict(x_test))
    valid_acc, c, predicted = best
    return {"method": NAME, "valid_acc": valid_acc, "test_acc": float(np.mean(predicted == y_test)),
            "test_macro_f1": float(f1_score(y_test, predicted, average="macro")), "C": c, "train_rows": len(train)}
