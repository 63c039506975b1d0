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
pattern. Importing a task loads neither TensorFlow nor Keras. `load_splits(config, verbalizer)` and
`make_verbalizer(spec, task)` are what a run reads: a task's own reader and verbalizer, or the generic ones.
"""
import importlib
import os

from few_shot import datasets, verbalizers
from few_shot.errors import FewShotError
from few_shot.paths import DEFAULT_DATA

# FewCLUE's own table order
TASK_NAMES = ("eprstmt", "bustm", "ocnli", "csldcp", "tnews", "cluewsc", "iflytek", "csl", "chid")


def get_task(name):
    """The Task of a FewCLUE task name (bustm, chid, ...)."""
    if name not in TASK_NAMES:
        raise FewShotError(f"--task {name!r}: choose one of {', '.join(sorted(TASK_NAMES))}")
    return importlib.import_module(f"few_shot.tasks.{name}").TASK


def make_verbalizer(spec, task=None):
    """--verbalizer: a named shortcut (sentiment, tnews), label:word pairs, JSON or a JSON file;
    None -> the task's verbalizer (few_shot/tasks/) with --task, else the sentiment one."""
    if spec is None and task is not None:
        return get_task(task).make_verbalizer()
    if spec is None or spec in verbalizers.NAMED_VERBALIZERS:
        return verbalizers.Verbalizer(verbalizers.NAMED_VERBALIZERS[spec or "sentiment"][0])
    return verbalizers.Verbalizer.parse(spec)


def load_splits(config, verbalizer):
    """-> (train, valid, test) example lists for a RunConfig: train sampled as asked (k-shot or the
    first fraction), valid/test cut to max_valid/max_test; labels checked against the verbalizer."""
    if getattr(config, "task", None) is not None:  # a FewCLUE task's own reader (few_shot/tasks/): dict rows
        if os.path.abspath(config.data) == os.path.abspath(DEFAULT_DATA):
            raise FewShotError(f"--task {config.task}: pass --data with the FewCLUE {config.task} folder (e.g. "
                               f"../shared/data/fewclue/{config.task})")
        splits = get_task(config.task).load(config.data, config.fewclue_fold)
    elif config.fewclue_fold is not None:
        splits = datasets.load_fewclue(config.data, config.fewclue_fold, config.text_field, config.label_field)
    else:
        splits = datasets.load_task(config.data, config.text_field, config.label_field)
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    for name, rows in (("train", train), ("valid", valid), ("test", test)):
        verbalizer.check_labels([label for _, label in rows], f"{config.data} ({name})")
    if config.k is not None:
        train = datasets.stratified_sample(train, config.k, config.seed)
    elif config.fewclue_fold is None:
        train = datasets.first_fraction(train, config.train_fraction)
    return (train, datasets.first_rows(valid, config.max_valid, "--max-valid"),
            datasets.first_rows(test, config.max_test, "--max-test"))


def __getattr__(name):
    if name in ("Task", "fixed_length_words"):
        from few_shot.tasks import base
        return getattr(base, name)
    raise AttributeError(f"module 'few_shot.tasks' has no attribute {name!r}")
