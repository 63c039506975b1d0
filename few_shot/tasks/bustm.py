"""BUSTM: do two short dialogue queries mean the same? 0 / 1. A sentence pair: `[SEP]` in the
pattern puts sentence2 in segment 1."""
from few_shot.tasks.base import Task

TASK = Task(
    "bustm", "dialogue query paraphrase (sentence pair, 2 classes)", ("sentence1", "sentence2"),
    verbalizer={"0": "不", "1": "相"},
    ptuning_pattern="[u1][u2][u3][u4][MASK][u5][u6][u7][u8]{sentence1}[SEP]{sentence2}",
    zero_shot_patterns=("两句话意思[MASK]同：{sentence1}[SEP]{sentence2}",
                        "{sentence1}[SEP]{sentence2}。两句话意思[MASK]同。", "{sentence1}和{sentence2}两句话意思[MASK]同。"))
