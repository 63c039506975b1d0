"""RunConfig: every option of a training or zero-shot run, checked in one place.

Library functions take a RunConfig; only the scripts touch argparse (`RunConfig.from_namespace`).
`check()` raises FewShotError for a value no run could use, before anything loads (it imports
neither TensorFlow nor Keras).
"""
import dataclasses
from typing import Optional

from few_shot.errors import FewShotError
from few_shot.methods import get_method, methods, option_classes
from few_shot.methods.registry import flag
from few_shot.paths import DEFAULT_DATA

OBJECTIVES = ("label", "vocab")
STRATEGIES = ("mirrored", "multiworker", "none")
CALIBRATIONS = ("content-free", "unlabeled")
FEWCLUE_FOLDS = ("0", "1", "2", "3", "4", "all")


def flag_of(field_name):
    """The command-line flag of a RunConfig field (a method option's own, e.g. lora_rank -> --lora)."""
    for cls in option_classes():
        if field_name in {f.name for f in dataclasses.fields(cls)}:
            return flag(cls, field_name)
    return {"progress_seconds": "--progress-every"}.get(field_name, "--" + field_name.replace("_", "-"))


def steps_per_epoch(train_rows, passes, batch_size):
    """A training epoch: `passes` over the labelled rows in batches (the last one may be short)."""
    return max(1, -(-train_rows * passes // batch_size))


@dataclasses.dataclass
class RunConfig(*option_classes()):
    """Every option of a run. The fields of the methods' options dataclasses (few_shot/methods/) come
    first, inherited; then those every method shares."""
    method: str = "ptuning"
    # data
    data: str = DEFAULT_DATA
    text_field: Optional[str] = None
    label_field: Optional[str] = None
    fewclue_fold: Optional[str] = None     # 0-4 or "all": read --data as a FewCLUE task folder
    task: Optional[str] = None             # a FewCLUE task (few_shot/tasks/): its reader, patterns, verbalizer
    k: Optional[int] = None                # stratified k-shot sample, else the first train_fraction
    train_fraction: float = 0.01
    max_valid: Optional[int] = None
    max_test: Optional[int] = None
    # model and prompt
    model: Optional[str] = None            # None: the bundled models/zh-bert-mini
    pattern: Optional[str] = None          # None: the method's default (see resolved_pattern)
    verbalizer: Optional[str] = None       # None: sentiment 1:很,0:不
    prompt_length: Optional[int] = None    # builds [u1..uN][MASK]{text}
    calibrate: Optional[str] = None        # content-free | unlabeled: contextual calibration of the scores
    maxlen: int = 128
    # training
    seed: int = 42
    epochs: int = 20
    passes_per_epoch: int = 50
    batch_size: int = 32
    eval_batch_size: int = 128
    lr: Optional[float] = None             # None: the method's default_lr
    objective: str = "label"
    strategy: str = "mirrored"
    # semi-supervised (few_shot/semi.py)
    semi: bool = False
    unlabeled: Optional[str] = None
    mlm_weight: float = 1.0
    unlabeled_batch_size: Optional[int] = None
    max_unlabeled: Optional[int] = None
    early_stopping: Optional[int] = None  # stop after this many epochs without a better valid accuracy
    progress_seconds: float = 60.0         # not on a terminal: a progress line this often
    # output
    output: Optional[str] = None
    overwrite: bool = False
    resume: bool = False                   # continue the interrupted or crashed run in `output`

    @classmethod
    def from_namespace(cls, args, **overrides):
        """The fields of an argparse Namespace (other attributes ignored), then `overrides`."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in vars(args).items() if k in names}, **overrides})

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def for_method(self, name):
        """This config run with method `name`: the options of methods it does not use back to their defaults."""
        keep = get_method(name).options
        reset = {f.name: f.default for cls in option_classes() if cls not in keep for f in dataclasses.fields(cls)}
        return dataclasses.replace(self, method=name, **reset)

    @property
    def learning_rate(self):
        """--lr, else the method's default (chosen by measured accuracy on sentiment valid: the frozen MLM
        tolerates a large prompt-encoder step, the trainable MLM does not)."""
        return get_method(self.method).default_lr if self.lr is None else self.lr

    def resolved_pattern(self):
        """--pattern, else the method's default (few_shot/methods/) from the soft pattern (the task's or
        the package's P-tuning pattern, or `[u1..uN][MASK]{text}` for --prompt-length N) and the
        hand-written one (the task's, or the verbalizer's)."""
        from few_shot.pattern import PTUNING_PATTERN
        from few_shot.verbalizers import zero_shot_pattern
        if self.pattern is not None:
            return self.pattern
        task = None
        if self.task is not None:
            from few_shot.tasks import get_task
            task = get_task(self.task)
        hand_written = task.zero_shot_pattern if task else zero_shot_pattern(self.verbalizer)
        soft = (prompt_pattern(self.prompt_length) if self.prompt_length is not None
                else task.ptuning_pattern if task else PTUNING_PATTERN)
        return get_method(self.method).default_pattern(hand_written, soft, self.prompt_length)

    def check(self):
        """Every value a run could not use -> FewShotError naming the flag and the fix. Returns self."""
        method = get_method(self.method)
        positive = {"epochs": self.epochs, "passes-per-epoch": self.passes_per_epoch, "batch-size": self.batch_size,
                    "eval-batch-size": self.eval_batch_size, "maxlen": self.maxlen, "k": self.k,
                    "max-valid": self.max_valid, "max-test": self.max_test, "prompt-length": self.prompt_length,
                    "unlabeled-batch-size": self.unlabeled_batch_size, "max-unlabeled": self.max_unlabeled,
                    "early-stopping": self.early_stopping}
        for name, value in positive.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise FewShotError(f"--{name} {value}: must be a positive integer")
        if not 0 < self.train_fraction <= 1:
            raise FewShotError(f"--train-fraction {self.train_fraction}: must be in (0, 1]")
        if self.lr is not None and not self.lr > 0:
            raise FewShotError(f"--lr {self.lr}: must be > 0 (e.g. {method.default_lr or 1e-3:g})")
        if not self.mlm_weight > 0:
            raise FewShotError(f"--mlm-weight {self.mlm_weight}: must be > 0")
        if self.resume and (self.overwrite or not self.output):
            raise FewShotError("--resume continues the run in --output DIR: pass --output, and not --overwrite")
        for name, value, choices in (("objective", self.objective, OBJECTIVES), ("strategy", self.strategy, STRATEGIES),
                                     ("calibrate", self.calibrate, (None, *CALIBRATIONS))):
            if value not in choices:
                raise FewShotError(f"--{name} {value!r}: choose one of {', '.join(c for c in choices if c)}")
        if self.strategy == "multiworker" and not self.output and method.trains:
            raise FewShotError("--strategy multiworker needs --output DIR, the same on every worker: the chief "
                               "writes the run there and every worker keeps its backup there for --resume")
        if self.fewclue_fold is not None and str(self.fewclue_fold) not in FEWCLUE_FOLDS:
            raise FewShotError(f"--fewclue-fold {self.fewclue_fold!r}: use 0, 1, 2, 3, 4 or all")
        if self.pattern is not None and self.prompt_length is not None:
            raise FewShotError("--pattern and --prompt-length both set the pattern; pass one of them")
        if self.task is not None:
            from few_shot.tasks import get_task
            get_task(self.task)
            if self.fewclue_fold is None:
                raise FewShotError(f"--task {self.task} reads a FewCLUE folder: add --fewclue-fold 0-4 or all")
        self._check_method_options(method)
        method.check(self)
        return self

    def _check_method_options(self, method):
        """Each method's options check themselves; an option of another method, set away from its default,
        is named with the method it belongs to (e.g. --trainable-layers in a --lora run)."""
        for cls in option_classes():
            if cls in method.options:
                cls.check(self)
                continue
            for field in dataclasses.fields(cls):
                if getattr(self, field.name) != field.default:
                    owners = [m for m in methods() if cls in m.options]
                    name = flag(cls, field.name)
                    asks = [m.cli for m in owners if m.cli and m.cli != name and m.script == method.script]
                    fix = f"add {asks[0]} or drop {name}" if asks and not method.cli else f"drop {name}"
                    chosen = f" ({method.cli})" if method.cli else ""
                    raise FewShotError(f"{name} is an option of {'/'.join(m.name for m in owners)} runs, not of "
                                       f"{method.name} runs{chosen}: {fix}")


def prompt_pattern(length):
    """[u1..uN] around [MASK], then {text}."""
    if length < 1:
        raise FewShotError(f"--prompt-length {length}: must be at least 1")
    slots = [f"[u{i}]" for i in range(1, length + 1)]
    half = length // 2
    return "".join(slots[:half]) + "[MASK]" + "".join(slots[half:]) + "{text}"
