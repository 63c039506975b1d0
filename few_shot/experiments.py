"""What the experiment scripts (scripts/fewshot_curve.py, tnews.py, ablations.py, fewclue.py,
methods_table.py) share: one run =
the main scripts' own code (run.run_training / run.zero_shot) on a RunConfig, so every default
matches; runs live in OUTPUT/runs/<name>/ and a finished run is read back instead of redone."""
import contextlib
import dataclasses
import gc
import json
import math
import os
import sys

from few_shot.config import RunConfig
from few_shot.errors import FewShotError

CONFIG_FILE = "experiment.json"


def base_config(args, **fixed):
    """RunConfig from an experiment script's pass-through options (cli.add_run_args(..., pass_through=True)):
    the ones the user typed (not None) override RunConfig's defaults, then `fixed`."""
    names = {f.name for f in dataclasses.fields(RunConfig)} - {"output", "overwrite", "method"}
    typed = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return RunConfig(**{**typed, **fixed})


def options_of(config):
    """The config's values that differ from RunConfig's defaults (for experiment.json and the tables)."""
    default = RunConfig()
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(RunConfig)
            if f.name not in ("method", "seed", "k", "output", "overwrite")
            and getattr(config, f.name) != getattr(default, f.name)}


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
    from few_shot.methods import get_method
    if not get_method(method).trains:
        return metrics if "test_acc" in metrics else None
    finished = (os.path.isfile(os.path.join(run_dir, "model.keras")) and len(metrics.get("epochs", ())) >= epochs
                and metrics.get("status", "completed") == "completed")
    return metrics if finished and metrics.get("test_acc_at_best") is not None else None


def run_one(config, run_dir):
    """Train (or zero-shot score) `config` into `run_dir`, its stdout going to `<run_dir>.log`
    -> (metrics, reused). A finished run is read back; an unfinished one is redone from scratch."""
    done = run_complete(run_dir, config.method, config.epochs)
    if done is not None:
        return done, True
    from few_shot.quiet import start_tensorflow
    start_tensorflow()
    import keras

    from few_shot import compat, run
    from few_shot.methods import get_method
    config = config.replace(output=run_dir, overwrite=True)  # replaces an unfinished run's own files
    os.makedirs(os.path.dirname(run_dir), exist_ok=True)
    keras.backend.clear_session()
    gc.collect()
    # released_gradients: a finished run's graphs, and the MLM and model they hold, must not outlive it
    with open(run_dir + ".log", "w", encoding="utf-8") as f, contextlib.redirect_stdout(f), compat.released_gradients():
        metrics = run.run_training(config) if get_method(config.method).trains else run.zero_shot(config)
    keras.backend.clear_session()
    gc.collect()
    return metrics, False


def check_all(configs):
    """Every run's config and data checked before the first one trains (a bad option fails at once)."""
    from few_shot import run
    for config in configs:
        run.prepare(config)


def classical_reference(config):
    """The char TF-IDF + logistic-regression row on exactly the rows `config`'s run trains and is
    tested on (few_shot/baselines.py; seconds, no model)."""
    from few_shot import baselines
    from few_shot.tasks import load_splits, make_verbalizer
    train, valid, test = load_splits(config, make_verbalizer(config.verbalizer, config.task))
    return baselines.tfidf_logreg(train, valid, test, seed=config.seed)


def test_acc(method, metrics):
    return metrics["test_acc_at_best"] if "test_acc_at_best" in metrics else metrics["test_acc"]


def valid_acc(method, metrics):
    return metrics["best_valid_acc"] if "best_valid_acc" in metrics else metrics["valid_acc"]


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


def write_report(output, stem, data, lines):
    """OUTPUT/<stem>.json (`data`) and OUTPUT/<stem>.md (the markdown `lines`); prints the lines after
    the title and its description (the tables)."""
    with open(os.path.join(output, f"{stem}.json"), "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
    with open(os.path.join(output, f"{stem}.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines[4:]))


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


def progress(total, desc):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="run", file=sys.stderr, dynamic_ncols=True)
