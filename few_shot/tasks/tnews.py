"""TNEWS: 15 news categories of a headline; label words are the dataset's own two-character
Chinese names (label_index2en2zh.json), so two [MASK] slots."""
from few_shot.datasets import TNEWS_VERBALIZER
from few_shot.tasks.base import Task

TASK = Task(
    "tnews", "news headline category (15 classes)", ("sentence",), verbalizer=TNEWS_VERBALIZER,
    ptuning_pattern="[u1][u2][u3][u4][MASK][u5][u6][u7][u8]{sentence}",
    zero_shot_patterns=("这是一条[MASK]新闻。{sentence}", "下面报导一则[MASK]新闻：{sentence}", "[MASK]：{sentence}"))
