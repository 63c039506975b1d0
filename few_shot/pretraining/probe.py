"""The zero-shot probe of a pretraining run: `[MASK]满意。{text}` scored with 很 / 不 at each checkpoint."""
import numpy as np

from few_shot.errors import FewShotError

PROBE_PATTERN = "[MASK]满意。{text}"
PROBE_WORDS = {"0": "不", "1": "很"}


def read_probe(path, limit=None):
    """`text<TAB>label` rows (label 0/1; a first row labelled `label` is a header) -> [(text, int)]."""
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                text, tab, label = line.rpartition("\t")
                if lineno == 1 and label.strip().lower() == "label":
                    continue
                if not tab or label.strip() not in ("0", "1"):
                    raise FewShotError(f"--probe {path}: line {lineno} is not 'text<TAB>0|1'; fix the row (labels: "
                                       f"1 = positive/很, 0 = negative/不)")
                rows.append((text, int(label)))
    except FileNotFoundError:
        raise FewShotError(f"--probe {path}: file not found; pass a tsv file of text<TAB>label rows") from None
    except UnicodeDecodeError as e:
        raise FewShotError(f"--probe {path}: not UTF-8 ({e.reason} at byte {e.start}); re-save it as UTF-8") \
            from None
    if not rows:
        raise FewShotError(f"--probe {path}: no rows; pass a tsv file of text<TAB>label rows")
    return rows[:limit] if limit else rows


class ZeroShotProbe:
    """Accuracy of `[MASK]满意。{text}` with 很 (1) vs 不 (0) at the mask: the zero-shot model of
    few_shot.methods scored by training.Scorer, as `few_shot_ptuning.py --zero-shot` does. Built once
    per run (rows encoded, the scoring function traced once); every call reads the current weights."""

    def __init__(self, bert, tokenizer, rows, maxlen, batch_size=64):
        from few_shot.builder import build_model
        from few_shot.preprocessor import PromptPreprocessor
        from few_shot.training import Scorer
        preprocessor = PromptPreprocessor(tokenizer, PROBE_PATTERN, PROBE_WORDS, maxlen)
        self.data = preprocessor.encode([(text, str(label)) for text, label in rows])
        trainable = bert.trainable  # a prompt model freezes its backbone; pretraining trains this one
        self.scorer = Scorer(build_model("zeroshot", bert, preprocessor), batch_size)
        bert.trainable = trainable
        self.positive = preprocessor.labels.index("1")

    def __call__(self):
        predictions = self.scorer.scores(self.data).argmax(-1)
        return {"accuracy": float(np.mean(predictions == self.data.labels)), "rows": len(self.data),
                "predicted_1": float(np.mean(predictions == self.positive))}
