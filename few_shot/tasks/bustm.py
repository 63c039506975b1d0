"""BUSTM: do two short dialogue queries mean the same? 0 / 1. A sentence pair: `[SEP]` in the
pattern puts sentence2 in segment 1."""
from few_shot.tasks.base import Task

VERBALIZER = {"0": "不", "1": "相"}

TASK = Task(
    name="bustm", description="dialogue query paraphrase (sentence pair, 2 classes)",
    fields=("sentence1", "sentence2"), label_field="label", verbalizer=VERBALIZER,
    zero_shot_pattern="两句话意思[MASK]同：{sentence1}[SEP]{sentence2}",
    ptuning_pattern="[u1][u2][u3][u4][MASK][u5][u6][u7][u8]{sentence1}[SEP]{sentence2}",
    zero_shot_candidates=(("两句话意思[MASK]同：{sentence1}[SEP]{sentence2}", VERBALIZER),
                          ("{sentence1}[SEP]{sentence2}。两句话意思[MASK]同。", VERBALIZER),
                          ("{sentence1}和{sentence2}两句话意思[MASK]同。", VERBALIZER)),
)
