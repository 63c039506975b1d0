"""CSL: are these (all) the paper's keywords? 0 / 1. `{keyword}` is a list, joined with "，"; the
long abstract is what truncation cuts."""
from few_shot.tasks.base import Task

VERBALIZER = {"0": "不", "1": "都"}

TASK = Task(
    name="csl", description="keyword recognition (abstract + keyword list, 2 classes)",
    fields=("abst", "keyword"), label_field="label", verbalizer=VERBALIZER,
    zero_shot_pattern="{keyword}[MASK]是这篇论文的关键词。{abst}",
    ptuning_pattern="[u1][u2][u3][u4]{keyword}[MASK][u5][u6][u7][u8]{abst}",
    zero_shot_candidates=(("{keyword}[MASK]是这篇论文的关键词。{abst}", VERBALIZER),
                          ("关键词[MASK]是：{keyword}[SEP]{abst}", VERBALIZER),
                          ("{abst}[SEP]{keyword}[MASK]是关键词。", VERBALIZER)),
)
