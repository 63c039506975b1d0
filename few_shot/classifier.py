"""Use a trained run folder (model.keras) to label new texts."""
import os

import keras
import numpy as np

from few_shot.errors import FewShotError


class PromptClassifier:
    """`PromptClassifier.load("runs/ptuning-...").predict(["这家酒店很好"])` -> [("1", 0.93)].

    The model's own PromptPreprocessor (saved inside model.keras) encodes the texts."""

    def __init__(self, model, preprocessor=None):
        self.model = model
        self.preprocessor = preprocessor or model.preprocessor
        if self.preprocessor is None:
            raise FewShotError("this model has no preprocessor; pass PromptClassifier(model, PromptPreprocessor(...))")
        # contextual calibration (few_shot/calibration.py): "content-free" or "unlabeled", and the unlabelled
        # texts (None: the texts being labelled)
        self.calibrate, self.unlabeled = None, None

    @classmethod
    def load(cls, output_dir):
        import few_shot.ptuning  # noqa: F401  (registers the classes for deserialisation)
        import few_shot.preprocessor  # noqa: F401  (likewise)
        import few_shot.deep, few_shot.lora  # noqa: F401,E401  (deep-prompt and LoRA runs)
        path = os.path.join(output_dir, "model.keras")
        if not os.path.isfile(path):
            raise FewShotError(f"{path}: not found; pass the --output folder of a finished training run")
        import zipfile
        if not zipfile.is_zipfile(path):  # Keras would say "File not found" for a truncated file
            raise FewShotError(f"{path}: cannot be read as a few_shot model (not a complete .keras zip file); the "
                               f"file is damaged or not from few_shot: rerun the training")
        try:
            model = keras.models.load_model(path, compile=False)
        except Exception as e:  # a foreign file: h5 or config errors of every kind
            first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            raise FewShotError(f"{path}: cannot be read as a few_shot model ({first}); the file is damaged or not "
                               f"from few_shot: rerun the training") from None
        if getattr(model, "preprocessor", None) is None:
            return cls(model, legacy_preprocessor(model, output_dir))
        return cls(model)

    def predict_proba(self, texts):
        from few_shot.training import Scorer
        scorer = Scorer(self.model)
        if self.calibrate:
            from few_shot.calibration import CalibratedScorer
            scorer = CalibratedScorer(scorer, self.preprocessor, self.calibrate, self.unlabeled or texts)
        scores = scorer.scores(self.preprocessor.encode_texts(texts))
        e = np.exp(scores - scores.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    def predict(self, texts):
        probs = self.predict_proba(texts)
        labels = self.preprocessor.labels
        return [(labels[i], float(p[i])) for p, i in zip(probs, probs.argmax(-1))]


def legacy_preprocessor(model, output_dir):
    """model.keras files written before the preprocessor existed: pattern, verbalizer and maxlen
    were fields of the model, the vocabulary the run folder's vocab.txt."""
    from few_shot.preprocessor import PromptPreprocessor
    legacy = getattr(model, "legacy_text_config", {})
    vocab = os.path.join(output_dir, "vocab.txt")
    if not legacy or not os.path.isfile(vocab):
        raise FewShotError(f"{output_dir}: the model has no preprocessor and the folder no vocab.txt; rerun the "
                           f"training with this version")
    return PromptPreprocessor(vocab, legacy["pattern"], legacy["verbalizer"], legacy.get("maxlen", 128))
