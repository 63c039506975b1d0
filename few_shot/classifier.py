"""Use a trained run folder (model.keras + vocab.txt) to label new texts."""
import os

import keras
import numpy as np

from few_shot.errors import FewShotError
from few_shot.pattern import Pattern, Verbalizer
from few_shot.tokenizer import Tokenizer


class PromptClassifier:
    """`PromptClassifier.load("runs/ptuning-...").predict(["这家酒店很好"])` -> [("1", 0.93)]."""

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        self.pattern = Pattern(model.pattern)
        self.verbalizer = Verbalizer(model.verbalizer)

    @classmethod
    def load(cls, output_dir):
        import few_shot.ptuning  # noqa: F401  (registers the classes for deserialisation)
        path = os.path.join(output_dir, "model.keras")
        if not os.path.exists(path):
            raise FewShotError(f"{path}: not found; pass the --output folder of a finished training run")
        return cls(keras.models.load_model(path, compile=False), Tokenizer(os.path.join(output_dir, "vocab.txt")))

    def predict_proba(self, texts):
        from few_shot.training import EncodedSet, Scorer
        rows = [(t, self.verbalizer.labels[0]) for t in texts]
        data = EncodedSet(rows, self.tokenizer, self.pattern, self.verbalizer, self.model.maxlen,
                          self.model.label_token_ids)
        scores = Scorer(self.model).scores(data)
        e = np.exp(scores - scores.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    def predict(self, texts):
        probs = self.predict_proba(texts)
        return [(self.verbalizer.labels[i], float(p[i])) for p, i in zip(probs, probs.argmax(-1))]
