"""Named verbalizers (`--verbalizer sentiment|tnews`) with the hand-written zero-shot pattern of each."""
from few_shot.datasets import TNEWS_VERBALIZER
from few_shot.pattern import SENTIMENT_VERBALIZER, ZERO_SHOT_PATTERN, Verbalizer

TNEWS_ZERO_SHOT_PATTERN = "这是一条[MASK]新闻。{text}"
# name -> (label words, zero-shot pattern used when --pattern is not given)
NAMED_VERBALIZERS = {"sentiment": (SENTIMENT_VERBALIZER, ZERO_SHOT_PATTERN),
                     "tnews": (TNEWS_VERBALIZER, TNEWS_ZERO_SHOT_PATTERN)}


def make_verbalizer(spec, task=None):
    """--verbalizer: a named shortcut (sentiment, tnews), label:word pairs, JSON or a JSON file;
    None -> the task's verbalizer (few_shot/tasks/) with --task, else the sentiment one."""
    if spec is None and task is not None:
        from few_shot.tasks import get_task
        return get_task(task).make_verbalizer()
    if spec is None or spec in NAMED_VERBALIZERS:
        return Verbalizer(NAMED_VERBALIZERS[spec or "sentiment"][0])
    return Verbalizer.parse(spec)


def zero_shot_pattern(spec):
    """The hand-written pattern of a named verbalizer (the sentiment one for any other)."""
    return NAMED_VERBALIZERS.get(spec or "sentiment", (None, ZERO_SHOT_PATTERN))[1]
