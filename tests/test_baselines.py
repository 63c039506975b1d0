"""The TF-IDF + logistic-regression reference (few_shot/baselines.py): fitted in the span of the
training rows (issue 27), the same model as on the raw n-gram columns."""
import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from few_shot.baselines import span_features, tfidf_logreg


def random_rows(rng, n, features=3000, density=0.01):
    return sp.random(n, features, density=density, format="csr", random_state=rng, dtype=np.float64)


def test_span_features_keep_every_inner_product_with_the_training_rows():
    rng = np.random.default_rng(0)
    x = random_rows(rng, 40)
    x = sp.vstack([x, x[:3]]).tocsr()  # repeated rows: a rank-deficient Gram matrix
    y = random_rows(rng, 25)
    z, (zy,) = span_features(x, y)
    assert z.shape[1] <= 40
    np.testing.assert_allclose(z @ z.T, (x @ x.T).toarray(), atol=1e-10)
    np.testing.assert_allclose(zy @ z.T, (y @ x.T).toarray(), atol=1e-10)


def test_logistic_regression_in_the_span_is_the_model_on_the_raw_columns():
    rng = np.random.default_rng(1)
    x, y = random_rows(rng, 60), random_rows(rng, 30)
    labels = rng.integers(0, 4, 60)
    z, (zy,) = span_features(x, y)
    for c in (0.1, 10.0):
        raw = LogisticRegression(C=c, tol=1e-10, max_iter=10000).fit(x, labels)
        span = LogisticRegression(C=c, tol=1e-10, max_iter=10000).fit(z, labels)
        np.testing.assert_allclose(span.decision_function(zy), raw.decision_function(y), atol=1e-5)


def test_span_features_of_all_zero_training_rows():
    z, (zy,) = span_features(sp.csr_matrix((3, 5)), sp.random(2, 5, density=0.5, format="csr", random_state=0))
    assert z.shape == (3, 1) and zy.shape == (2, 1) and not z.any() and not zy.any()


def test_sentiment_reference_accuracy(sentiment_rows):
    train = sentiment_rows("train")[:168]
    result = tfidf_logreg(train, sentiment_rows("valid")[:400], sentiment_rows("test")[:400])
    assert result["train_rows"] == 168 and 0.6 < result["test_acc"] < 0.9
