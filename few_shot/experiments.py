"""What the experiment scripts (scripts/fewshot_curve.py, tnews.py, ablations.py) share: one run =
the main scripts' own code (cli.run_training / cli.zero_shot) with an argparse Namespace parsed by
the main scripts' parser, so every default matches; runs live in OUTPUT/runs/<name>/ and a
finished run is read back instead of redone."""
import argparse
import contextlib
import gc
import json
import math
import os
import sys

from few_shot.errors import FewShotError

METHODS = ("zeroshot", "ptuning", "prompt", "finetune")
CONFIG_FILE = "experiment.json"


def method_parser(method):
    """The parser of the main script behind `method` (common options + its own)."""
    from few_shot.cli import DEFAULT_LR, add_common_args
    from few_shot.ptuning import INITS
    parser = argparse.ArgumentParser(prog=method, add_help=False)
    add_common_args(parser, lr=DEFAULT_LR["finetune" if method == "finetune" else "ptuning"])
    parser.add_argument("--prompt-length", type=int, default=None)
    parser.add_argument("--init", choices=INITS, default="unused")
    parser.add_argument("--encoder", choices=("lstm", "mlp", "none"), default="lstm")
    parser.add_argument("--trainable-layers", type=int, default=None)
    return parser


def prompt_pattern(length):
    """[u1..uN] around [MASK], then {text} (as few_shot_ptuning.py --prompt-length)."""
    if length < 1:
        raise FewShotError(f"prompt length {length}: must be at least 1")
    slots = [f"[u{i}]" for i in range(1, length + 1)]
    half = length // 2
    return "".join(slots[:half]) + "[MASK]" + "".join(slots[half:]) + "{text}"


def method_args(method, forward, **overrides):
    """Namespace for one run: `forward` (argv strings, as a user would type them) parsed by the
    method's parser, then `overrides` (python values) set."""
    if method not in METHODS:
        raise FewShotError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    parser = method_parser(method)

    def error(message):
        raise FewShotError(f"{message}")
    parser.error = error
    args = parser.parse_args(list(forward))
    for key, value in overrides.items():
        setattr(args, key, value)
    if method == "prompt":
        args.encoder = "none"
    if getattr(args, "prompt_length", None) is not None:
        args.pattern = prompt_pattern(args.prompt_length)
    return args


def builder(method, args):
    """build_model(mlm, pattern, verbalizer, label_ids) for cli.run_training."""
    from few_shot.ptuning import PtuningModel

    def build(mlm, pattern, verbalizer, label_ids):
        prompt_ids = mlm.tokenizer.tokens_to_ids(pattern.prompt_tokens)
        common = dict(objective=args.objective, seed=args.seed, pattern=pattern.template,
                      verbalizer=verbalizer.mapping, maxlen=args.maxlen)
        if method == "finetune":
            return PtuningModel(mlm.model, label_ids, prompt_ids, encoder=None, train_backbone=True,
                                trainable_layers=args.trainable_layers, **common)
        return PtuningModel(mlm.model, label_ids, prompt_ids, encoder=args.encoder, init=args.init, **common)
    return build


def run_complete(run_dir, method, epochs):
    """The metrics of a finished run in `run_dir`, or None (absent or interrupted)."""
    path = os.path.join(run_dir, "metrics.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            metrics = json.load(f)
    except (OSError, ValueError):
        return None
    if method == "zeroshot":
        return metrics if "test_acc" in metrics else None
    finished = (os.path.isfile(os.path.join(run_dir, "model.keras")) and len(metrics.get("epochs", ())) >= epochs
                and metrics.get("status", "completed") == "completed")
    return metrics if finished and metrics.get("test_acc_at_best") is not None else None


def run_one(method, args, run_dir):
    """Train (or zero-shot score) into `run_dir`, its stdout going to `<run_dir>.log` -> (metrics, reused).
    A finished run is read back; an interrupted one is redone from scratch."""
    done = run_complete(run_dir, method, args.epochs)
    if done is not None:
        return done, True
    import keras

    from few_shot import cli
    args.output = run_dir
    args.overwrite = True  # replaces an interrupted run's leftovers
    os.makedirs(os.path.dirname(run_dir), exist_ok=True)
    keras.backend.clear_session()
    gc.collect()
    with open(run_dir + ".log", "w", encoding="utf-8") as f, contextlib.redirect_stdout(f):
        if method == "zeroshot":
            metrics = cli.zero_shot(args)
        else:
            metrics = cli.run_training(args, method, builder(method, args))
    return metrics, False


def test_acc(method, metrics):
    return metrics["test_acc"] if method == "zeroshot" else metrics["test_acc_at_best"]


def valid_acc(method, metrics):
    return metrics["valid_acc"] if method == "zeroshot" else metrics["best_valid_acc"]


def mean_std(values):
    """-> (mean, sample std; 0 for a single value)."""
    n = len(values)
    if not n:
        return float("nan"), float("nan")
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def format_mean_std(mean, std, n):
    """'0.5717 ± 0.0123' over several runs; one run: its value alone (its std would say nothing)."""
    return f"{mean:.4f} ± {std:.4f}" if n > 1 else f"{mean:.4f}"


def check_output(output, config):
    """An output folder is new, empty, or ours with the same training options (resume); else an error.
    Writes `experiment.json` (the options) there."""
    path = os.path.join(output, CONFIG_FILE)
    if os.path.isdir(output) and os.listdir(output):
        if not os.path.isfile(path):
            raise FewShotError(f"{output}: exists, is not empty and holds no {CONFIG_FILE}; choose a new --output "
                               f"(an existing one is only reused to resume the same experiment)")
        with open(path, encoding="utf-8") as f:
            before = json.load(f)
        changed = sorted(k for k in set(before) | set(config) if before.get(k) != config.get(k))
        if changed:
            diffs = "; ".join(f"{k} {before.get(k)!r} -> {config.get(k)!r}" for k in changed[:4])
            raise FewShotError(f"{output}: made with other options ({diffs}); resume with the same options or "
                               f"choose a new --output")
    os.makedirs(output, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)


def parse_list(text, flag, convert=str):
    try:
        items = [convert(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        raise FewShotError(f"{flag} {text!r}: expected a comma-separated list") from None
    if not items:
        raise FewShotError(f"{flag} {text!r}: empty list")
    return items


def forward_options(args, names):
    """argv strings for the pass-through options that were given (value not None)."""
    out = []
    for name in names:
        value = getattr(args, name.lstrip("-").replace("-", "_"))
        if value is not None:
            out += [name, str(value)]
    return out


def progress(total, desc):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="run", file=sys.stderr, dynamic_ncols=True)


def quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
