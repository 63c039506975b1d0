"""CLUEWSC: does the pronoun (target.span2_text) refer to the noun (target.span1_text)? true /
false. The spans are nested fields, read by the pattern as {target.span1_text}."""
from few_shot.tasks.base import Task

VERBALIZER = {"false": "不", "true": "就"}

TASK = Task(
    name="cluewsc", description="pronoun coreference (2 classes)",
    fields=("text", "target.span1_text", "target.span2_text"), label_field="label", verbalizer=VERBALIZER,
    zero_shot_pattern="{text}{target.span2_text}指的[MASK]是{target.span1_text}。",
    ptuning_pattern="[u1][u2][u3][u4]{text}[SEP]{target.span2_text}[u5][u6][MASK]{target.span1_text}[u7][u8]",
    zero_shot_candidates=(("{text}{target.span2_text}指的[MASK]是{target.span1_text}。", VERBALIZER),
                          ("{text}[SEP]{target.span2_text}[MASK]是{target.span1_text}。", VERBALIZER),
                          ("{target.span2_text}指的[MASK]是{target.span1_text}：{text}", VERBALIZER)),
)
