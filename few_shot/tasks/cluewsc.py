"""CLUEWSC: does the pronoun (target.span2_text) refer to the noun (target.span1_text)? true /
false. The spans are nested fields, read by the pattern as {target.span1_text}."""
from few_shot.tasks.base import Task

TASK = Task(
    "cluewsc", "pronoun coreference (2 classes)", ("text", "target.span1_text", "target.span2_text"),
    verbalizer={"false": "不", "true": "就"},
    ptuning_pattern="[u1][u2][u3][u4]{text}[SEP]{target.span2_text}[u5][u6][MASK]{target.span1_text}[u7][u8]",
    zero_shot_patterns=("{text}{target.span2_text}指的[MASK]是{target.span1_text}。",
                        "{text}[SEP]{target.span2_text}[MASK]是{target.span1_text}。",
                        "{target.span2_text}指的[MASK]是{target.span1_text}：{text}"))
