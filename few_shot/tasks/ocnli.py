"""OCNLI: natural language inference, entailment / neutral / contradiction. Rows whose label is
"-" (annotators disagreed: no gold label) are skipped with a count in a warning."""
from few_shot.tasks.base import Task

TASK = Task(
    "ocnli", "NLI (sentence pair, 3 classes)", ("sentence1", "sentence2"), skip_labels=("-",),
    verbalizer={"entailment": "是的", "neutral": "可能", "contradiction": "不是"},
    ptuning_pattern="[u1][u2][u3][u4]{sentence1}[SEP][MASK][u5][u6][u7][u8]{sentence2}",
    zero_shot_patterns=("{sentence1}？[MASK]，{sentence2}", "{sentence1}[SEP][MASK]，{sentence2}",
                        "{sentence1}？[SEP][MASK]，{sentence2}"))
