"""Use a trained run folder (model.keras) to label new texts."""
import os

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
    def load(cls, path, mlm=None):
        """`path`: a run folder, its model.keras (or any few_shot .keras file), or the small file a run
        wrote (prompt.safetensors, lora.safetensors; its frozen MLM is `mlm` (a PretrainedMLM or model
        folder), else the one the file names)."""
        from few_shot.saving import load_model
        if os.path.isfile(path) and path.endswith(".safetensors"):
            from few_shot.methods import method_for_format
            from few_shot.portable import file_format
            fmt = file_format(path)
            method = method_for_format(fmt)
            if method is None:
                raise FewShotError(f"{path}: not a file few_shot wrote ({fmt or 'no format in its header'}); pass a "
                                   f"run folder, its prompt.safetensors or its lora.safetensors")
            model = method.load_file(path, mlm)
            if model.preprocessor is None:
                raise FewShotError(f"{path}: needs a PretrainedMLM (with its tokenizer) or a model folder as mlm")
            return cls(model)
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        model = load_model(os.path.join(path, "model.keras") if os.path.isdir(path) else path)
        if getattr(model, "preprocessor", None) is None:
            return cls(model, legacy_preprocessor(model, folder))
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
