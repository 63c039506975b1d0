"""CHID: idiom cloze. `content` holds the blank #idiom# once; each row has its own 7 candidate
idioms and the label is the index of the right one. The blank becomes 4 [MASK]s (an idiom's 4
characters); a candidate scores the sum of its characters' log-probabilities there (log-softmax
over the whole vocabulary) and training is a softmax over the row's 7 candidates. Truncation
cuts `content` around the blank (a window), never the blank."""
from few_shot.verbalizers import Candidates
from few_shot.tasks.base import Task, candidate_problem

BLANK, COUNT, LENGTH = "#idiom#", 7, 4
VERBALIZER = Candidates("candidates", COUNT, LENGTH)


def check_row(row, label):
    if row["content"].count(BLANK) != 1:
        return (f"'content' holds the blank {BLANK} {row['content'].count(BLANK)} times; a chid row needs it exactly "
                f"once")
    return candidate_problem(row["candidates"], LENGTH, COUNT)


TASK = Task(
    "chid", "idiom cloze (7 candidates per row)", ("content", "candidates"), label_field="answer",
    verbalizer=VERBALIZER, check_row=check_row,
    ptuning_pattern="[u1][u2][u3][u4][u5][u6][u7][u8]{content:#idiom#}",
    zero_shot_patterns=("成语填空：{content:#idiom#}", "{content:#idiom#}"))
