"""EPRSTMT: e-commerce review sentiment, Positive / Negative (not shipped in ../shared: its patterns
are Su's sentiment ones, not measured on its dev)."""
from few_shot.tasks.base import Task

TASK = Task(
    "eprstmt", "e-commerce review sentiment (2 classes)", ("sentence",),
    verbalizer={"Negative": "不", "Positive": "很"},
    ptuning_pattern="[u1][u2][u3][u4][MASK][u5][u6][u7][u8]{sentence}",
    zero_shot_patterns=("[MASK]满意。{sentence}",))
