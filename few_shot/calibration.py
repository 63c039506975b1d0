"""Contextual calibration (Zhao et al. 2021, "Calibrate Before Use"): divide the label probabilities
by a reference distribution of the same model and pattern, then renormalise:

    q(y | x) = (p(y | x) / r(y)) / sum_y' p(y' | x) / r(y')

`--calibrate content-free`: r = the mean label probabilities of content-free inputs ("", "N/A",
"[MASK]") written into the same pattern (every {field} of the pattern gets the string).
`--calibrate unlabeled`: r = the mean over unlabelled texts (--unlabeled FILE, else the train rows
not used as labels, at most the first 1,000; for --predict without a file: the texts given).
The argmax equals Zhao et al.'s softmax(diag(r)^-1 p); only the reported probabilities differ.
`CalibratedScorer` wraps a Scorer and returns log calibrated probabilities, so everything that
takes an argmax or a softmax of scores (EpochLogger, PromptClassifier) uses them unchanged.
"""
import numpy as np

CONTENT_FREE = ("", "N/A", "[MASK]")
MAX_UNLABELED = 1000


def probabilities(scores):
    """Label scores (logits) [N, C] -> softmax probabilities."""
    scores = np.asarray(scores, dtype="float64")
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def calibrate(probs, reference):
    """probs [N, C] / reference [C], rows renormalised."""
    q = np.asarray(probs, dtype="float64") / np.asarray(reference, dtype="float64")[None, :]
    return q / q.sum(-1, keepdims=True)


def content_free_rows(pattern):
    """The content-free inputs as rows of `pattern` (a string for {text}, else every field set)."""
    fields = pattern.fields
    return [s if fields == ["text"] else {f: s for f in fields} for s in CONTENT_FREE]


class CalibratedScorer:
    """A Scorer whose `scores` are log calibrated probabilities. The reference is recomputed when the
    model's trainable weights have changed since the last call (training runs evaluate every epoch)."""

    def __init__(self, scorer, preprocessor, mode, texts=None):
        if mode not in ("content-free", "unlabeled"):
            raise ValueError(f"calibration {mode!r}: content-free or unlabeled")
        if mode == "unlabeled" and not texts:
            raise ValueError("unlabeled calibration needs texts")
        self.scorer, self.model, self.preprocessor, self.mode = scorer, scorer.model, preprocessor, mode
        rows = content_free_rows(preprocessor.pattern) if mode == "content-free" else list(texts)
        self.reference_set = preprocessor.encode_texts(rows)
        self._reference, self._weights_key = None, None

    def reference(self):
        """The mean label probabilities [C] of the content-free inputs / unlabelled texts."""
        import keras
        key = tuple(float(np.sum(keras.ops.convert_to_numpy(w))) for w in self.model.trainable_weights)
        if self._reference is None or key != self._weights_key:
            self._reference = probabilities(self.scorer.scores(self.reference_set)).mean(0)
            self._weights_key = key
        return self._reference

    def scores(self, data, progress=None):
        probs = calibrate(probabilities(self.scorer.scores(data, progress)), self.reference())
        return np.log(np.maximum(probs, 1e-30)).astype("float32")

    def accuracy(self, data, progress=None):
        return float(np.mean(self.scores(data, progress).argmax(-1) == data.labels))


def unlabeled_texts(config, labelled):
    """--calibrate unlabeled in a run: --unlabeled FILE, else the train rows not among `labelled`
    (the first MAX_UNLABELED unless --max-unlabeled) -> (texts, where they come from)."""
    from few_shot import datasets
    return datasets.unlabeled_texts(config.replace(semi=True, max_unlabeled=config.max_unlabeled or MAX_UNLABELED),
                                    labelled)


def calibrated(scorer, config, preprocessor, labelled):
    """`scorer` wrapped as `config.calibrate` says (unchanged without --calibrate); prints what it does."""
    if not config.calibrate:
        return scorer
    texts, source = (None, "content-free inputs " + ", ".join(map(repr, CONTENT_FREE)))
    if config.calibrate == "unlabeled":
        texts, where = unlabeled_texts(config, labelled)
        source = f"the mean over {len(texts)} unlabelled texts ({where})"
    print(f"calibration: label probabilities divided by those of {source}, through the same pattern")
    return CalibratedScorer(scorer, preprocessor, config.calibrate, texts)
