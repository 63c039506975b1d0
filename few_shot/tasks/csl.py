"""CSL: are these (all) the paper's keywords? 0 / 1. `{keyword}` is a list, joined with "，"; the
long abstract is what truncation cuts."""
from few_shot.tasks.base import Task

# the keyword list comes first: truncation then cuts the abstract, never the keywords
TASK = Task(
    "csl", "keyword recognition (abstract + keyword list, 2 classes)", ("abst", "keyword"),
    verbalizer={"0": "不", "1": "都"},
    ptuning_pattern="[u1][u2][u3][u4]{keyword}[MASK][u5][u6][u7][u8]{abst}",
    zero_shot_patterns=("{keyword}[MASK]是这篇论文的关键词。{abst}", "关键词[MASK]是：{keyword}[SEP]{abst}",
                        "{abst}[SEP]{keyword}[MASK]是关键词。"))
