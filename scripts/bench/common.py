"""What every benchmark stage shares: one model's inputs (Bench), clocks, peak memory, forked stages,
machine information."""
import json
import os
import platform
import sys
import time
import traceback
import warnings

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE_CONFIG = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)


# -- memory: peak resident set per stage ----------------------------------------------------------

def _status_mb(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    if key == "VmHWM":
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return float("nan")


def reset_peak_rss():
    """Linux: restart the peak-RSS counter (VmHWM) from the current RSS; a forked child starts
    with its own counter anyway, this makes in-process (--isolation none) numbers per stage."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


class MemoryMeter:
    """with MemoryMeter() as m: ... -> m.result(): RSS at start, peak RSS, their difference (MB)."""

    def __enter__(self):
        reset_peak_rss()
        self.start = _status_mb("VmRSS")
        return self

    def __exit__(self, *exc):
        self.peak = _status_mb("VmHWM")
        return False

    def result(self):
        return {"rss_start_mb": round(self.start, 1), "peak_rss_mb": round(self.peak, 1),
                "peak_delta_mb": round(self.peak - self.start, 1)}


class Clock:
    """Wall and CPU seconds of a block. CPU seconds (all threads of this process) barely change when
    other jobs share the machine, so their ratios back up the wall-clock ones on a busy host."""

    def __enter__(self):
        self.start, self.start_cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.process_time() - self.start_cpu
        return False


def timed_passes(run_pass, warmup, repeats):
    """warmup() (tracing, excluded), then `repeats` timed run_pass() -> (last output, [Clock])."""
    warmup()
    clocks, out = [], None
    for _ in range(repeats):
        with Clock() as clock:
            out = run_pass()
        clocks.append(clock)
    return out, clocks


def eval_record(rows, clocks, scores, batch_size, memory, **extra):
    seconds, cpu = [c.seconds for c in clocks], [c.cpu_seconds for c in clocks]
    return {"rows": rows, "batch_size": batch_size, "seconds": [round(x, 4) for x in seconds],
            "cpu_seconds": [round(x, 4) for x in cpu], "best_seconds": min(seconds),
            "samples_per_s": rows / min(seconds), "median_samples_per_s": rows / sorted(seconds)[len(seconds) // 2],
            "samples_per_cpu_s": rows / min(cpu), "scores": scores, "memory": memory, **extra}


def label_scores_at_mask(logits, mask_positions, label_ids):
    """Full logits [B, T, V] -> label scores [B, C]: sum over mask slots m of logits[b, mask_m, label_ids[c, m]]
    (numpy or torch alike)."""
    import numpy as np
    rows = np.arange(len(mask_positions))[:, None]
    at_mask = logits[rows, mask_positions]  # [B, M, V]
    slots = np.arange(mask_positions.shape[1])[None, :]
    return at_mask[:, slots, np.asarray(label_ids)].sum(-1)  # [B, C, M] -> [B, C]


def setup_tf_threads(intra, inter=None):
    """tf.config.threading before TensorFlow starts -> what it ended up with (0 = TensorFlow's default)."""
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        if inter is not None:
            tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:  # --isolation none after TensorFlow started: keep what it has
        pass
    return {"tensorflow_intra_op": tf.config.threading.get_intra_op_parallelism_threads() or "default",
            "tensorflow_inter_op": tf.config.threading.get_inter_op_parallelism_threads() or "default"}


def setup_torch_threads(threads):
    import torch
    torch.set_num_threads(threads)
    return {"torch_intra_op": torch.get_num_threads(), "torch_inter_op": torch.get_num_interop_threads()}


# -- one model's inputs -----------------------------------------------------------------------------

class Bench:
    """One model's inputs for the stages (plain attributes; forked children inherit them)."""

    def __init__(self, name, model_dir, preprocessor, eval_set, train_set, valid_set, test_set, settings,
                 shape=None):
        self.name, self.model_dir, self.preprocessor = name, model_dir, preprocessor
        self.tokenizer = preprocessor.tokenizer
        self.eval_set, self.train_set, self.valid_set, self.test_set = eval_set, train_set, valid_set, test_set
        self.label_ids, self.prompt_ids = preprocessor.label_token_ids, preprocessor.prompt_token_ids
        self.settings = settings  # dict: maxlen, seed, threads, repeats, train_steps, passes, ...
        self.shape = shape or model_shape(model_dir)  # layers, hidden, heads, intermediate, vocab


def model_shape(model_dir):
    """config.json -> {layers, hidden, heads, intermediate, vocab} (None if unreadable)."""
    try:
        with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
            c = json.load(f)
    except (OSError, ValueError):
        return None
    return {"layers": c.get("num_hidden_layers"), "hidden": c.get("hidden_size"),
            "heads": c.get("num_attention_heads"), "intermediate": c.get("intermediate_size"),
            "vocab": c.get("vocab_size")}


def load_rows(folder):
    """-> (train first 1% as the main scripts, valid, test); duplicate-text warnings are not news here."""
    from few_shot import datasets
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", datasets.DataWarning)
        splits = datasets.load_task(folder)
    return datasets.first_fraction(splits["train"], 0.01), splits["valid"], splits["test"]


def make_bench(name, model_dir, rows, settings, eval_rows):
    """The main scripts' P-tuning pattern and sentiment verbalizer over the model's vocabulary."""
    from few_shot.pattern import PTUNING_PATTERN
    from few_shot.preprocessor import PromptPreprocessor
    from few_shot.tokenizer import Tokenizer
    from few_shot.tasks import make_verbalizer
    train, valid, test = rows
    tokenizer = Tokenizer(os.path.join(model_dir, "vocab.txt"))
    preprocessor = PromptPreprocessor(tokenizer, PTUNING_PATTERN, make_verbalizer(None), settings["maxlen"])
    n = settings["epoch_eval_rows"]
    return Bench(name, model_dir, preprocessor, preprocessor.encode(test[:eval_rows]), preprocessor.encode(train),
                 preprocessor.encode(valid[:n]), preprocessor.encode(test[:n]), settings)


def build_ours(method, bench, mlm, **changes):
    """few_shot's model exactly as the main scripts build it (few_shot.methods.build_model, the one
    builder) -> (model, RunConfig)."""
    import keras

    from few_shot.config import RunConfig
    from few_shot.builder import build_model
    s = bench.settings
    config = RunConfig(method=method, seed=s["seed"], maxlen=s["maxlen"], passes_per_epoch=s["passes"], **changes)
    keras.utils.set_random_seed(config.seed)
    return build_model(method, mlm, bench.preprocessor, config), config


# -- running a stage in its own process -------------------------------------------------------------

def tensorflow_started():
    """Has this process started the TensorFlow runtime? (Forking after that is unsafe.)"""
    if "tensorflow" not in sys.modules:
        return False
    try:
        from tensorflow.python.eager import context
        return context.context()._context_handle is not None
    except Exception:  # private API moved: assume the worst
        return True


def _child(fn, kwargs, conn):
    try:
        result = fn(**kwargs)
        conn.send((True, {**result, "stage_cpu_seconds": time.process_time()}))
    except BaseException:  # report anything, the parent raises it
        conn.send((False, traceback.format_exc()))
    finally:
        conn.close()


def run_stage(fn, isolation, **kwargs):
    """fn(**kwargs) in a forked child (its own threads and peak memory) or in this process."""
    start, cpu = time.perf_counter(), time.process_time()
    if isolation == "none":
        result = fn(**kwargs)
        return {**result, "stage_wall_seconds": time.perf_counter() - start,
                "stage_cpu_seconds": time.process_time() - cpu}
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(fn, kwargs, send), daemon=True)
    process.start()
    send.close()
    try:
        ok, payload = receive.recv()
    except EOFError:
        ok, payload = False, None
    process.join()
    if not ok:
        raise RuntimeError(f"stage {fn.__name__} failed (exit code {process.exitcode}):\n{payload or ''}")
    # with loading and warm-up; CPU seconds well below wall seconds x threads = other jobs took the CPU
    return {**payload, "stage_wall_seconds": time.perf_counter() - start}


# -- the machine --------------------------------------------------------------------------------------

def load_average():
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def machine_info():
    import keras
    info = {"cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(
        os, "sched_getaffinity") else os.cpu_count(), "processor": platform.processor(),
        "machine": platform.machine(), "platform": platform.platform(), "python": platform.python_version(),
        "keras": keras.__version__, "backend": keras.backend.backend()}
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
        info["cpu_model"] = next((l.split(":", 1)[1].strip() for l in lines if l.startswith("model name")), None)
        flags = next((l.split(":", 1)[1].split() for l in lines if l.startswith("flags")), [])
        info["cpu_flags"] = sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma")))
        with open("/proc/meminfo") as f:
            info["memory_gib"] = round(int(f.readline().split()[1]) / 2 ** 20, 1)
    except (OSError, ValueError, IndexError):
        pass
    from importlib import metadata
    for package in ("tensorflow", "torch", "transformers", "numpy"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = None
    info["load_average_start"] = load_average()
    return info


def plain(value):
    """numpy scalars/arrays -> JSON types."""
    import numpy as np
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
