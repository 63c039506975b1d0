"""The classical reference row of every results table: character 1-3-gram TF-IDF + logistic
regression (scikit-learn), trained on the same labelled rows as the prompt methods.

On the bundled demo model this simple baseline beats P-tuning (0.726 test accuracy on the default
168 sentiment rows against ~0.62): a weak MLM gives a prompt little to work with, and a reader
should see that next to every prompt number. Multi-field rows (sentence pairs) are joined with
[SEP] so the n-grams stay within a field.
"""
import numpy as np

from few_shot.pattern import field_names, field_text, has_field, row_fields

NAME = "tfidf-lr"


def row_text(row, fields=None):
    """A row's fields joined with [SEP] (lists with ，); nested fields (cluewsc's target.*) flattened."""
    values = row_fields(row)
    keys = fields or sorted(field_names(values))
    return " [SEP] ".join(field_text(values, k) for k in keys if has_field(values, k))


def tfidf_logreg(train, valid, test, seed=0, fields=None):
    """Fit on `train` [(row, label)], score `valid` and `test` -> {"valid_acc", "test_acc", ...}.
    C is chosen on valid from a small grid (as the prompt methods choose their epoch)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    x_train = vectorizer.fit_transform([row_text(r, fields) for r, _ in train])
    x_valid = vectorizer.transform([row_text(r, fields) for r, _ in valid])
    x_test = vectorizer.transform([row_text(r, fields) for r, _ in test])
    y_train, y_valid, y_test = (np.array([str(label) for _, label in rows]) for rows in (train, valid, test))
    if len(set(y_train)) < 2:
        constant = y_train[0]
        return {"method": NAME, "valid_acc": float(np.mean(y_valid == constant)),
                "test_acc": float(np.mean(y_test == constant)), "C": None, "train_rows": len(train)}
    best = None
    for c in (0.1, 1.0, 10.0, 100.0):
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x_train, y_train)
        valid_acc = float(np.mean(model.predict(x_valid) == y_valid))
        if best is None or valid_acc > best[0]:
            best = (valid_acc, c, model)
    valid_acc, c, model = best
    predicted = model.predict(x_test)
    return {"method": NAME, "valid_acc": valid_acc, "test_acc": float(np.mean(predicted == y_test)),
            "test_macro_f1": float(f1_score(y_test, predicted, average="macro")), "C": c, "train_rows": len(train)}
