"""RunConfig: every option of a training or zero-shot run, checked in one place.

Library functions take a RunConfig; only the scripts touch argparse (`RunConfig.from_namespace`).
`check()` raises FewShotError for a value no run could use, before anything loads (it imports
neither TensorFlow nor Keras).
"""
import dataclasses
import os
from typing import Optional

from few_shot.errors import FewShotError

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(PROJECT_ROOT, "data", "sentiment")

# encoder of each prompt method (the prompt encoder in front of the frozen MLM)
PROMPT_METHODS = {"ptuning": "lstm", "mlp": "mlp", "prompt": "none", "deep": "none"}
METHODS = (*PROMPT_METHODS, "finetune", "lora", "zeroshot")
# Chosen by measured accuracy on sentiment valid (README, "Defaults"): the frozen MLM tolerates a
# large prompt-encoder step, the trainable MLM does not.
DEFAULT_LR = {"ptuning": 1e-3, "mlp": 1e-3, "prompt": 1e-3, "finetune": 1e-4, "zeroshot": 0.0,
              "deep": 1e-3, "lora": 1e-3}
INITS = ("unused", "random", "vocab", "label")
OBJECTIVES = ("label", "vocab")
STRATEGIES = ("mirrored", "multiworker", "none")
# LoRA (few_shot/lora.py): --lora-targets names the Dense layers of every encoder block
LORA_LAYERS = ("query", "key", "value", "attention_output", "intermediate", "output")
LORA_TARGETS = {"qv": ("query", "value"), "all": LORA_LAYERS}
DEFAULT_LORA_RANK = 8
HEADS = ("mask", "cls")            # deep prompts: label words at [MASK], or a linear head on [CLS]
CALIBRATIONS = ("content-free", "unlabeled")


def steps_per_epoch(train_rows, passes, batch_size):
    """A training epoch: `passes` over the labelled rows in batches (the last one may be short)."""
    return max(1, -(-train_rows * passes // batch_size))


@dataclasses.dataclass
class RunConfig:
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
    init: str = "unused"
    trainable_layers: Optional[int] = None  # finetune: last N encoder layers + MLM head
    lora_rank: Optional[int] = None        # lora: rank of the adapters (None: DEFAULT_LORA_RANK)
    lora_targets: str = "qv"               # lora: qv, all, or comma-separated names of LORA_LAYERS
    deep_reparam: bool = False             # deep: prompt states through an MLP (P-tuning v2's reparameterisation)
    head: str = "mask"                     # deep: label words at [MASK], or "cls" (linear head on [CLS])
    calibrate: Optional[str] = None        # content-free | unlabeled: contextual calibration of the scores
    maxlen: int = 128
    # training
    seed: int = 42
    epochs: int = 20
    passes_per_epoch: int = 50
    batch_size: int = 32
    eval_batch_size: int = 128
    lr: Optional[float] = None             # None: DEFAULT_LR[method]
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

    @property
    def learning_rate(self):
        return DEFAULT_LR[self.method] if self.lr is None else self.lr

    @property
    def encoder(self):
        """The prompt encoder ("lstm", "mlp", "none"), or None for finetune/lora/zero-shot (deep prompts with
        --deep-reparam: "mlp", their input prompt reparameterised as the deeper ones are)."""
        return "mlp" if self.method == "deep" and self.deep_reparam else PROMPT_METHODS.get(self.method)

    def resolved_pattern(self):
        """--pattern, else [u1..uN][MASK]{text} for --prompt-length N, else the method's default:
        the P-tuning pattern for trained methods, the verbalizer's hand-written one for zero-shot."""
        from few_shot.pattern import PTUNING_PATTERN
        from few_shot.verbalizers import zero_shot_pattern
        if self.pattern is not None:
            return self.pattern
        if self.task is not None and self.prompt_length is None:
            from few_shot.tasks import get_task
            return get_task(self.task).pattern_for(self.method)
        if self.method == "zeroshot":
            return zero_shot_pattern(self.verbalizer)
        if self.prompt_length is not None:
            return prompt_pattern(self.prompt_length)
        return PTUNING_PATTERN

    def check(self):
        """Every value a run could not use -> FewShotError naming the flag and the fix. Returns self."""
        if self.method not in METHODS:
            raise FewShotError(f"method {self.method!r}: choose one of {', '.join(METHODS)}")
        positive = {"epochs": self.epochs, "passes-per-epoch": self.passes_per_epoch, "batch-size": self.batch_size,
                    "eval-batch-size": self.eval_batch_size, "maxlen": self.maxlen, "k": self.k,
                    "max-valid": self.max_valid, "max-test": self.max_test, "prompt-length": self.prompt_length,
                    "unlabeled-batch-size": self.unlabeled_batch_size, "max-unlabeled": self.max_unlabeled,
                    "early-stopping": self.early_stopping}
        for flag, value in positive.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise FewShotError(f"--{flag} {value}: must be a positive integer")
        if not 0 < self.train_fraction <= 1:
            raise FewShotError(f"--train-fraction {self.train_fraction}: must be in (0, 1]")
        if self.lr is not None and not self.lr > 0:
            raise FewShotError(f"--lr {self.lr}: must be > 0 (e.g. {DEFAULT_LR.get(self.method, 1e-3)})")
        if not self.mlm_weight > 0:
            raise FewShotError(f"--mlm-weight {self.mlm_weight}: must be > 0")
        if self.trainable_layers is not None and (self.method != "finetune" or self.trainable_layers < 0):
            raise FewShotError(f"--trainable-layers {self.trainable_layers}: a number >= 0, for finetune runs only")
        if self.resume and (self.overwrite or not self.output):
            raise FewShotError("--resume continues the run in --output DIR: pass --output, and not --overwrite")
        if self.init not in INITS:
            raise FewShotError(f"--init {self.init!r}: choose one of {', '.join(INITS)}")
        if self.objective not in OBJECTIVES:
            raise FewShotError(f"--objective {self.objective!r}: choose one of {', '.join(OBJECTIVES)}")
        if self.strategy not in STRATEGIES:
            raise FewShotError(f"--strategy {self.strategy!r}: choose one of {', '.join(STRATEGIES)}")
        if self.strategy == "multiworker" and not self.output and self.method != "zeroshot":
            raise FewShotError("--strategy multiworker needs --output DIR, the same on every worker: the chief "
                               "writes the run there and every worker keeps its backup there for --resume")
        if self.fewclue_fold is not None and str(self.fewclue_fold) not in ("0", "1", "2", "3", "4", "all"):
            raise FewShotError(f"--fewclue-fold {self.fewclue_fold!r}: use 0, 1, 2, 3, 4 or all")
        if self.pattern is not None and self.prompt_length is not None:
            raise FewShotError("--pattern and --prompt-length both set the pattern; pass one of them")
        if self.task is not None:
            from few_shot.tasks import get_task
            get_task(self.task)
            if self.fewclue_fold is None:
                raise FewShotError(f"--task {self.task} reads a FewCLUE folder: add --fewclue-fold 0-4 or all")
        self._check_methods()
        return self

    def _check_methods(self):
        """The options of the lora and deep methods and --calibrate (few_shot/lora.py, deep_prompt.py)."""
        if self.lora_rank is not None and (isinstance(self.lora_rank, bool) or not isinstance(self.lora_rank, int)
                                           or self.lora_rank < 1):
            raise FewShotError(f"--lora {self.lora_rank}: the rank must be a positive integer (e.g. 8)")
        if self.lora_rank is not None and self.method != "lora":
            raise FewShotError(f"--lora {self.lora_rank}: a rank is for LoRA runs only (method lora)")
        lora_target_names(self.lora_targets)
        if self.method == "lora" and self.trainable_layers is not None:
            raise FewShotError("--lora and --trainable-layers: pass one of them (LoRA trains adapters only)")
        if self.head not in HEADS:
            raise FewShotError(f"--head {self.head!r}: choose one of {', '.join(HEADS)}")
        if (self.head != "mask" or self.deep_reparam) and self.method != "deep":
            raise FewShotError("--head cls and --deep-reparam are options of deep prompts; add --deep")
        if self.calibrate is not None and self.calibrate not in CALIBRATIONS:
            raise FewShotError(f"--calibrate {self.calibrate!r}: choose one of {', '.join(CALIBRATIONS)}")
        if self.calibrate is not None and self.head == "cls":
            raise FewShotError("--calibrate divides label-word probabilities; a --head cls model has none")

    @property
    def rank(self):
        """The LoRA rank of a lora run."""
        return DEFAULT_LORA_RANK if self.lora_rank is None else self.lora_rank


def lora_target_names(spec):
    """--lora-targets: qv, all, or comma-separated layer names -> tuple of names of LORA_LAYERS."""
    names = LORA_TARGETS.get(spec) or tuple(n.strip() for n in str(spec).split(",") if n.strip())
    unknown = [n for n in names if n not in LORA_LAYERS]
    if not names or unknown:
        raise FewShotError(f"--lora-targets {spec!r}: {unknown[0] if unknown else 'nothing'} matches no layer of an "
                           f"encoder block; use qv, all, or names from {', '.join(LORA_LAYERS)}")
    return tuple(dict.fromkeys(names))


def prompt_pattern(length):
    """[u1..uN] around [MASK], then {text}."""
    if length < 1:
        raise FewShotError(f"--prompt-length {length}: must be at least 1")
    slots = [f"[u{i}]" for i in range(1, length + 1)]
    half = length // 2
    return "".join(slots[:half]) + "[MASK]" + "".join(slots[half:]) + "{text}"
