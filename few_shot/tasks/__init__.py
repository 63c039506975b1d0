"""FewCLUE tasks, one small module each (the keras-hub habit of a file per model):

    bustm    sentence pair, paraphrase 0/1                 [SEP] in the pattern: segment 1
    chid     idiom cloze, 7 candidates per row             {content:#idiom#} blank + Candidates
    cluewsc  coreference true/false                        nested {target.span1_text} fields
    csl      keywords of an abstract 0/1                   {keyword} list joined with ，
    csldcp   67 subjects, long abstracts                   fixed-length words from the names
    eprstmt  sentiment Positive/Negative                   (not shipped in ../shared)
    iflytek  119 app categories, long descriptions         fixed-length words from the names
    ocnli    NLI entailment/neutral/contradiction          rows labelled "-" skipped
    tnews    15 news categories                            the dataset's 2-character names

`get_task(name)` -> Task (few_shot/tasks/base.py): fields, labels, a reader that checks every row,
the zero-shot pattern + verbalizer (chosen on dev_0, few_shot/tasks/select.py) and the P-tuning
pattern. Importing a task loads neither TensorFlow nor Keras.
"""
import importlib

from few_shot.errors import FewShotError

# FewCLUE's own table order
TASK_NAMES = ("eprstmt", "bustm", "ocnli", "csldcp", "tnews", "cluewsc", "iflytek", "csl", "chid")


def get_task(name):
    """The Task of a FewCLUE task name (bustm, chid, ...)."""
    if name not in TASK_NAMES:
        raise FewShotError(f"--task {name!r}: choose one of {', '.join(sorted(TASK_NAMES))}")
    return importlib.import_module(f"few_shot.tasks.{name}").TASK


def __getattr__(name):
    if name in ("Task", "fixed_length_words"):
        from few_shot.tasks import base
        return getattr(base, name)
    raise AttributeError(f"module 'few_shot.tasks' has no attribute {name!r}")
