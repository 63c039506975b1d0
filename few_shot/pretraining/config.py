"""Pretraining configuration: `PretrainConfig`, its defaults (`resolve`, from the checkpoint when
resuming), the argument checks that need no file, and the output folder's own files."""
import dataclasses
import math
import os

from few_shot.checkpoints import GOOGLE_FILES, HF_FILES
from few_shot.errors import FewShotError
from few_shot.owned_files import remove_owned
from few_shot.run_folder import check_output_flags

CHECKPOINT_DIR, HF_DIR, GOOGLE_DIR, LOG_FILE = "checkpoint", "hf", "google", "pretrain_log.json"
STATE_FILE, OPTIMIZER_FILE = "state.json", "optimizer.npz"
# The files a pretraining run writes (glob patterns under --output): --overwrite, the checkpoint rotation
# and the export remove these and nothing else (few_shot/owned_files.py).
CHECKPOINT_FILES = (*HF_FILES, OPTIMIZER_FILE, STATE_FILE)
OUTPUTS = (*(f"{folder}/{name}" for folder in (CHECKPOINT_DIR, CHECKPOINT_DIR + ".tmp", CHECKPOINT_DIR + ".old")
             for name in CHECKPOINT_FILES),
           *(f"{HF_DIR}/{name}" for name in HF_FILES), *(f"{GOOGLE_DIR}/{name}" for name in GOOGLE_FILES),
           LOG_FILE, LOG_FILE + ".tmp")


@dataclasses.dataclass
class PretrainConfig:
    """Everything `run_pretraining` needs. `None` means "the default" (or, with `resume`, "what the
    checkpoint was trained with"); see `resolve`."""
    corpus: list
    output: str
    init_from: str = None
    vocab: str = None
    layers: int = None
    hidden: int = None
    heads: int = None
    intermediate: int = None
    max_position: int = None
    maxlen: int = None
    whole_word: bool = None
    mask_rate: float = None
    max_predictions: int = None
    steps: int = 1000
    batch_size: int = None
    lr: float = None
    warmup_steps: int = None
    weight_decay: float = None
    clip_norm: float = None
    seed: int = None
    save_every: int = 500
    resume: bool = False
    overwrite: bool = False
    probe: str = None
    probe_limit: int = None
    on_bad_line: str = "stop"
    progress: bool = True  # a tqdm bar on a terminal; off, or not on a terminal: status lines
    progress_seconds: float = 60.0  # a status line this often when no bar is shown
    mixed_precision: bool = False  # Keras "mixed_bfloat16": bf16 compute, float32 weights (GPUs/TPUs)
    max_minutes: float = None  # stop cleanly (checkpoint + export) once the run is this old


# Settings a checkpoint fixes: on --resume they come from the checkpoint, and passing a different
# value is an error (the run would not be a continuation any more).
RESUME_FIXED = ("init_from", "vocab", "layers", "hidden", "heads", "intermediate", "max_position", "maxlen",
                "whole_word", "mask_rate", "max_predictions", "batch_size", "lr", "warmup_steps",
                "weight_decay", "clip_norm", "seed")
ARCH_FLAGS = {"layers": "num_layers", "hidden": "hidden_size", "heads": "num_heads",
              "intermediate": "intermediate_size", "max_position": "max_position"}


def flag(name):
    return "--" + name.replace("_", "-")


def resolve(config, saved=None):
    """-> a copy of `config` with every default filled in (from `saved`, the checkpoint's resolved
    config, when resuming)."""
    c = dataclasses.replace(config, corpus=list(config.corpus))
    if saved is not None:
        for key in RESUME_FIXED:
            mine, theirs = getattr(c, key), saved.get(key)
            if key in ("vocab", "init_from") and mine is not None and theirs is not None:
                same = os.path.abspath(mine) == os.path.abspath(theirs)
            else:
                same = mine == theirs
            if mine is not None and not same:
                raise FewShotError(f"{flag(key)} {mine} differs from the checkpoint's {theirs!r}; a resumed run keeps "
                                   f"the checkpoint's settings: drop {flag(key)} or start a new run")
            setattr(c, key, theirs)
        return c
    c.whole_word = bool(c.whole_word)
    c.maxlen = 128 if c.maxlen is None else c.maxlen
    c.mask_rate = 0.15 if c.mask_rate is None else c.mask_rate
    if c.max_predictions is None:
        c.max_predictions = max(1, math.ceil(c.maxlen * c.mask_rate))
    c.batch_size = 32 if c.batch_size is None else c.batch_size
    c.lr = (1e-4 if c.init_from else 1e-3) if c.lr is None else c.lr
    c.warmup_steps = max(0, c.steps // 10) if c.warmup_steps is None else c.warmup_steps
    c.weight_decay = 0.01 if c.weight_decay is None else c.weight_decay
    c.clip_norm = 1.0 if c.clip_norm is None else c.clip_norm
    c.seed = 0 if c.seed is None else c.seed
    if c.init_from is None:
        c.layers = 4 if c.layers is None else c.layers
        c.hidden = 256 if c.hidden is None else c.hidden
        c.heads = 4 if c.heads is None else c.heads
        c.intermediate = 4 * c.hidden if c.intermediate is None else c.intermediate
        c.max_position = max(512, c.maxlen) if c.max_position is None else c.max_position
    return c


def check_config(c):
    """Argument-level checks (the ones that need no file)."""
    positive = {"steps": c.steps, "batch_size": c.batch_size, "save_every": c.save_every}
    if c.init_from is None:
        positive.update(layers=c.layers, hidden=c.hidden, heads=c.heads, intermediate=c.intermediate)
    for key, value in positive.items():
        if value is None or value < 1:
            raise FewShotError(f"{flag(key)} {value}: must be a positive integer")
    if c.maxlen < 8:
        raise FewShotError(f"--maxlen {c.maxlen}: too short to pack documents; use --maxlen 64 or more")
    if not 0 < c.mask_rate < 1:
        raise FewShotError(f"--mask-rate {c.mask_rate}: must be between 0 and 1 (BERT uses 0.15)")
    if c.max_predictions < 1 or c.max_predictions > c.maxlen:
        raise FewShotError(f"--max-predictions {c.max_predictions}: must be between 1 and --maxlen {c.maxlen}")
    if c.lr <= 0 or c.weight_decay < 0 or c.warmup_steps < 0 or c.clip_norm < 0:
        raise FewShotError("--lr must be > 0 and --weight-decay, --warmup-steps, --clip-norm >= 0")
    if c.init_from is None:
        if c.hidden % c.heads:
            raise FewShotError(f"--hidden {c.hidden} is not divisible by --heads {c.heads}; pick heads that divide "
                               f"it (e.g. --heads {max(h for h in range(1, 17) if c.hidden % h == 0)})")
        if c.maxlen > c.max_position:
            raise FewShotError(f"--maxlen {c.maxlen} exceeds --max-position {c.max_position}; raise --max-position")
    if c.on_bad_line not in ("stop", "skip"):
        raise FewShotError(f"--on-bad-line {c.on_bad_line!r}: use 'stop' or 'skip'")
    if c.probe_limit is not None and c.probe_limit < 1:
        raise FewShotError(f"--probe-limit {c.probe_limit}: must be a positive integer")
    if c.progress_seconds is None or not c.progress_seconds > 0:
        raise FewShotError(f"--progress-every {c.progress_seconds}: must be a positive number of seconds")
    if c.max_minutes is not None and not c.max_minutes > 0:
        raise FewShotError(f"--max-minutes {c.max_minutes}: must be a positive number of minutes")


def check_output(config):
    """Refuse a non-empty output folder unless --overwrite or --resume (nothing is deleted here)."""
    out = config.output
    check_output_flags(out, config.resume, config.overwrite)
    if config.resume:
        if not os.path.exists(os.path.join(out, CHECKPOINT_DIR, STATE_FILE)):
            raise FewShotError(f"{os.path.join(out, CHECKPOINT_DIR)}: no checkpoint to resume from; run without "
                               f"--resume (add --overwrite to start over in {out})")
    elif os.path.isdir(out) and os.listdir(out) and not config.overwrite:
        raise FewShotError(f"--output {out}: exists and is not empty; pass --resume to continue its checkpoint, "
                           f"--overwrite to start over, or choose a new folder")


def prepare_output(config):
    """Create the output folder; with --overwrite remove the files of a previous run (only those: a
    user's file inside hf/ or checkpoint/ stays, and so does its folder). Runs after every check."""
    if config.overwrite and os.path.isdir(config.output):
        kept = remove_owned(config.output, OUTPUTS)
        if kept:
            print(f"--overwrite: kept {', '.join(kept)} (files there are not this package's)")
    os.makedirs(config.output, exist_ok=True)
