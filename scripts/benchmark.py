#!/usr/bin/env python
"""Speed and memory of few_shot's inference and training paths, against a naive Keras path and
transformers, measured on this machine in one run on the same inputs.

    python scripts/benchmark.py --quick --json runs/bench_quick.json     # mini, eval + epoch, ~2.7 min on 2 cores
    python scripts/benchmark.py --json runs/bench.json                   # full test set, mini + base (hours
                                                                         # on 2 cores, minutes on a workstation)
    python scripts/benchmark.py --models mini --rows 512 --repeats 2     # a middle ground

Models: `mini` (the bundled models/zh-bert-mini, 4 layers, hidden 256), `base` (BERT-base shape,
12 layers, hidden 768, random weights: transformers' BertForMaskedLM saved to a temporary folder
and loaded from there by both sides), or a path to a HF BERT folder. Pattern
[u1][u2][u3][u4][MASK][u5][u6][u7][u8]{text}, verbalizer 1:很,0:不, the main scripts' defaults.

Stages (each in its own forked process, so peak memory and threads are per stage):
  eval   label scores of the sentiment test rows (first --rows) by three paths:
           fast         PtuningModel + training.Scorer: rows sorted by length, batches of 128 padded
                        to their longest row, hidden states at [MASK] only dotted with the label
                        words' rows. The ratios are of this path as the scripts run it (no XLA);
                        `fast_xla` (XLA, lengths rounded up to multiples of 16) is a reference row
           naive        the same MLM's full-vocabulary logits at every position
                        (PretrainedMLM.predict_logits), rows padded to --maxlen, batches of 32,
                        label columns read at [MASK]
           transformers torch BertForMaskedLM, no_grad, batches of 32 padded to --maxlen, the same
                        token ids, label columns at [MASK]
         The p-tuning prompt (untrained, seeded) reaches naive and transformers folded into the
         [unused1..8] rows of their embedding table (what serving it with a plain MLM means);
         label scores must agree, so argmax equality is checked on every row.
         samples/s = rows / seconds of the best of --repeats full passes, after warm-up (fast: one
         whole pass, its time kept as `first_pass`, tracing and XLA compiles included).
  train  train_on_batch samples/s, batch 32, dynamic padding: p-tuning (BiLSTM prompt encoder,
         frozen MLM) against full finetune (encoder none, the MLM trains); warm-up steps excluded.
  epoch  one p-tuning epoch (first 1% of train = 168 rows x --passes passes, then valid and test
         accuracy), after warm-up: ours (training.training_dataset bucketed dynamic padding,
         label words scored at [MASK] only, Scorer eval) against naive, the seed's way (bert4keras
         with_mlm=True): every batch padded to --maxlen, full-vocabulary logits at every position
         in training and evaluation, the mask slots read from them. Same prompt encoder, seed,
         batches and objective; the two runs reach the same loss and accuracy.
Writes --json (ratios, raw timings, rows per stage, machine, command) and prints a markdown table.
"""
import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
import warnings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BASE_CONFIG = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
STAGES = ("eval", "train", "epoch")
# --quick fits in ~2.7 minutes on 2 idle cores (tracing and the naive epoch are most of it; the train stage
# would add ~45 s, so it is left to full runs); the full defaults take hours there, minutes on a workstation.
QUICK = dict(models="mini", stages="eval,epoch", rows=64, base_rows=32, repeats=1, train_steps=3, passes=1,
             epoch_eval_rows=32)
FULL = dict(models="mini,base", stages="eval,train,epoch", rows=None, base_rows=256, repeats=3, train_steps=20,
            passes=50, epoch_eval_rows=None)


def build_parser():
    def default(key):
        full, quick = FULL[key], QUICK[key]
        return f"(default {full or 'all'}; --quick {quick})"

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--quick", action="store_true", help="small settings, see the defaults below")
    a("--json", default=None, help="write the results here (refused if it exists, unless --overwrite)")
    a("--overwrite", action="store_true", help="replace an existing --json file")
    a("--models", default=None, help="comma-separated: mini, base, or HF BERT folders " + default("models"))
    a("--stages", default=None, help="comma-separated subset of eval,train,epoch " + default("stages"))
    a("--base-stages", default="eval", help="stages run on the base model (default eval: training it on 2 CPU "
                                            "cores takes seconds per step)")
    a("--rows", type=int, default=None, help="eval: the first N test rows " + default("rows"))
    a("--base-rows", type=int, default=None, help="eval rows for the base model " + default("base_rows"))
    a("--repeats", type=int, default=None, help="timed eval passes, the best one counts " + default("repeats"))
    a("--train-steps", type=int, default=None, help="timed train steps per method " + default("train_steps"))
    a("--passes", type=int, default=None, help="epoch stage: passes over the 168 labelled rows (50 as the main "
                                               "scripts) " + default("passes"))
    a("--epoch-eval-rows", type=int, default=None, help="epoch stage: the first N valid and N test rows " +
      default("epoch_eval_rows"))
    a("--maxlen", type=int, default=128)
    a("--seed", type=int, default=42)
    a("--threads", type=int, default=None, help="intra-op threads for TensorFlow and torch alike (default: the "
                                                "CPUs this process may use)")
    a("--isolation", choices=("fork", "none"), default=None,
      help="fork: each stage in a child forked before TensorFlow starts (default on Linux); none: all in this "
           "process (peak memory numbers then overlap)")
    a("--data", default=None, help="sentiment-style data folder (default data/sentiment)")
    return p


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


# -- what every stage gets: one model, its encoded data, the main scripts' settings -------------

class Bench:
    """One model's inputs for the stages (plain attributes; forked children inherit them)."""

    def __init__(self, name, model_dir, preprocessor, eval_set, train_set, valid_set, test_set, settings):
        self.name, self.model_dir, self.preprocessor = name, model_dir, preprocessor
        self.tokenizer = preprocessor.tokenizer
        self.eval_set, self.train_set, self.valid_set, self.test_set = eval_set, train_set, valid_set, test_set
        self.label_ids, self.prompt_ids = preprocessor.label_token_ids, preprocessor.prompt_token_ids
        self.settings = settings  # dict: maxlen, seed, threads, repeats, train_steps, passes, ...


def build_model(method, bench, mlm):
    """PtuningModel exactly as few_shot_ptuning.py / few_shot_finetune.py build it -> (model, RunConfig)."""
    import keras

    from few_shot.config import RunConfig
    from few_shot.methods import build_model as build
    s = bench.settings
    config = RunConfig(method=method, seed=s["seed"], maxlen=s["maxlen"], passes_per_epoch=s["passes"])
    keras.utils.set_random_seed(config.seed)
    return build(method, mlm, bench.preprocessor, config), config


def setup_threads(threads):
    """Same intra-op thread count for TensorFlow and torch; -> what each ended up with."""
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:  # --isolation none after TensorFlow started: keep what it has
        pass
    return {"tensorflow_intra_op": tf.config.threading.get_intra_op_parallelism_threads() or "default",
            "tensorflow_inter_op": tf.config.threading.get_inter_op_parallelism_threads() or "default"}


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


def eval_record(bench, clocks, scores, batch_size, memory, **extra):
    rows, seconds = len(bench.eval_set), [c.seconds for c in clocks]
    cpu = [c.cpu_seconds for c in clocks]
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


def naive_scores(mlm, data, label_ids, batch_size, maxlen, rows=None):
    """The naive path: full-vocabulary logits at every position of rows padded to `maxlen`."""
    import numpy as np

    from few_shot.loading import pad_batch
    rows = np.arange(len(data)) if rows is None else np.asarray(rows)
    out = np.zeros((len(rows), len(label_ids)), dtype="float32")
    for start in range(0, len(rows), batch_size):
        idx = rows[start:start + batch_size]
        ids = pad_batch([data.token_ids[i] for i in idx], mlm.tokenizer.pad_id, maxlen)
        logits = mlm.predict_logits(ids, batch_size=batch_size)  # [B, maxlen, vocab]
        out[start:start + len(idx)] = label_scores_at_mask(logits, data.mask_positions[idx], label_ids)
    return out


def write_prompt_rows(backbone, prompt_ids, prompts):
    """Serve a p-tuned prompt with a plain MLM: its [unusedN] embedding rows become the prompt vectors.
    Only those rows change, so the label words' logits are the PtuningModel's."""
    import keras
    table = keras.ops.convert_to_numpy(backbone.embedding_matrix).copy()
    table[prompt_ids] = prompts
    backbone.embedding_matrix.assign(table)


# -- stages: each returns a plain dict (numbers, lists, numpy arrays) -----------------------------

def stage_make_base(folder, vocab_path, seed):
    """A BERT-base-shaped BertForMaskedLM with random weights, saved as safetensors + vocab.txt."""
    import torch
    import transformers
    transformers.logging.set_verbosity_error()
    with open(vocab_path, encoding="utf-8") as f:
        vocab_size = sum(1 for _ in f)
    torch.manual_seed(seed)
    model = transformers.BertForMaskedLM(transformers.BertConfig(vocab_size=vocab_size, **BASE_CONFIG)).eval()
    model.save_pretrained(folder)
    shutil.copyfile(vocab_path, os.path.join(folder, "vocab.txt"))
    return {"folder": folder, "parameters": sum(p.numel() for p in model.parameters())}


def stage_eval_fast(bench, jit_compile):
    """PtuningModel scored by training.Scorer (mask slots only, dynamic padding, big batches)."""
    from few_shot.loading import load_mlm
    from few_shot.portable import fold_prompt
    from few_shot.training import Scorer
    s = bench.settings
    threads = setup_threads(s["threads"])
    with MemoryMeter() as memory:
        mlm = load_mlm(bench.model_dir)
        model, cfg = build_model("ptuning", bench, mlm)
        scorer = Scorer(model, cfg.eval_batch_size, jit_compile=jit_compile)
        data, multiple = bench.eval_set, scorer.pad_multiple
        first = {}

        def warmup():  # one whole pass: the tracing (or, with XLA, one compile per padded length) it costs
            with Clock() as clock:
                scorer.scores(data)
            first.update(seconds=round(clock.seconds, 4), cpu_seconds=round(clock.cpu_seconds, 4))
        scores, clocks = timed_passes(lambda: scorer.scores(data), warmup, s["repeats"])
    return eval_record(bench, clocks, scores, cfg.eval_batch_size, memory.result(), jit_compile=jit_compile,
                       threads=threads, prompts=fold_prompt(model), prompt_ids=list(model.prompt_token_ids),
                       first_pass=first, pad_multiple=multiple,
                       padded_tokens=int(sum(data.batch(idx, multiple=multiple)[0]["token_ids"].size
                                             for idx in scorer.batches(data))))


def stage_eval_naive(bench, prompts, batch_size=32):
    """Full-vocabulary logits (the MLM's own call), fixed padding, the prompt folded into the table."""
    from few_shot.loading import load_mlm
    s = bench.settings
    threads = setup_threads(s["threads"])
    with MemoryMeter() as memory:
        mlm = load_mlm(bench.model_dir)
        write_prompt_rows(mlm.model, bench.prompt_ids, prompts)
        data, n = bench.eval_set, len(bench.eval_set)

        def warmup():  # a full batch and the last, shorter one
            naive_scores(mlm, data, bench.label_ids, batch_size, s["maxlen"], rows=range(min(batch_size, n)))
            if n % batch_size:
                naive_scores(mlm, data, bench.label_ids, batch_size, s["maxlen"], rows=range(n - n % batch_size, n))
        scores, clocks = timed_passes(lambda: naive_scores(mlm, data, bench.label_ids, batch_size, s["maxlen"]),
                                      warmup, s["repeats"])
    return eval_record(bench, clocks, scores, batch_size, memory.result(), threads=threads,
                       padded_tokens=n * s["maxlen"])


def stage_eval_transformers(bench, prompts, batch_size=32):
    """transformers BertForMaskedLM in torch on the same token ids, padded to maxlen as usual."""
    import numpy as np
    import torch
    import transformers  # imported before measuring, as TensorFlow is for the other stages

    from few_shot.loading import pad_batch
    transformers.logging.set_verbosity_error()
    s = bench.settings
    torch.set_num_threads(s["threads"])
    with MemoryMeter() as memory:
        model = transformers.BertForMaskedLM.from_pretrained(bench.model_dir).eval()
        with torch.no_grad():
            model.get_input_embeddings().weight[bench.prompt_ids] = torch.from_numpy(np.asarray(prompts))
        data, pad = bench.eval_set, bench.tokenizer.pad_id
        label_ids = torch.as_tensor(bench.label_ids)

        def run(rows):
            out = []
            with torch.no_grad():
                for start in range(0, len(rows), batch_size):
                    idx = rows[start:start + batch_size]
                    ids = torch.as_tensor(pad_batch([data.token_ids[i] for i in idx], pad, s["maxlen"]),
                                          dtype=torch.long)
                    logits = model(input_ids=ids, attention_mask=(ids != pad).long(),
                                   token_type_ids=torch.zeros_like(ids)).logits
                    masks = torch.as_tensor(data.mask_positions[idx], dtype=torch.long)
                    out.append(label_scores_at_mask(logits, masks, label_ids).numpy())
            return np.concatenate(out).astype("float32")
        n = len(data)
        scores, clocks = timed_passes(lambda: run(np.arange(n)), lambda: run(np.arange(min(batch_size, n))),
                                      s["repeats"])
    return eval_record(bench, clocks, scores, batch_size, memory.result(),
                       threads={"torch_intra_op": torch.get_num_threads(),
                                "torch_inter_op": torch.get_num_interop_threads()},
                       attention=getattr(model.config, "_attn_implementation", None),
                       padded_tokens=n * s["maxlen"])


def stage_train_step(bench, method, warmup_steps=2):
    """train_on_batch on the same dynamically padded batches (training.training_batches)."""
    import keras

    from few_shot.loading import load_mlm
    from few_shot.ptuning import count_params
    from few_shot.training import training_batches
    s = bench.settings
    threads = setup_threads(s["threads"])
    with MemoryMeter() as memory:
        mlm = load_mlm(bench.model_dir)
        model, cfg = build_model(method, bench, mlm)
        model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss=model.loss_function())
        batches = training_batches(bench.train_set, cfg.batch_size, cfg.seed)
        for _ in range(warmup_steps):  # two shapes: the train function's relaxed-shape trace
            model.train_on_batch(*next(batches))
        clocks, samples, tokens = [], 0, 0
        for _ in range(s["train_steps"]):
            x, y = next(batches)
            with Clock() as clock:
                model.train_on_batch(x, y)  # returns the loss as a float: the step has finished
            clocks.append(clock)
            samples += len(y)
            tokens += x["token_ids"].size
    seconds, cpu = sum(c.seconds for c in clocks), sum(c.cpu_seconds for c in clocks)
    return {"method": method, "steps": len(clocks), "batch_size": cfg.batch_size, "samples": samples,
            "padded_tokens": tokens, "seconds": [round(c.seconds, 4) for c in clocks], "total_seconds": seconds,
            "total_cpu_seconds": cpu, "samples_per_s": samples / seconds, "samples_per_cpu_s": samples / cpu,
            "trainable_params": count_params(model.trainable_weights),
            "lr": cfg.learning_rate, "jit_compile": bool(model.jit_compile), "memory": memory.result(), "threads": threads}


def fixed_padding_dataset(data, batch_size, seed, length, pad_id=0):
    """The naive training input: training_batches' very batches, every one padded to `length`."""
    import numpy as np
    import tensorflow as tf

    from few_shot.loading import pad_batch
    from few_shot.training import training_batches

    def batches():
        for inputs, labels in training_batches(data, batch_size, seed):
            ids = pad_batch(inputs["token_ids"], pad_id, length)
            yield {**inputs, "token_ids": ids, "segment_ids": np.zeros_like(ids)}, labels
    m = data.mask_positions.shape[1]
    signature = ({"token_ids": tf.TensorSpec((None, length), tf.int32),
                  "segment_ids": tf.TensorSpec((None, length), tf.int32),
                  "mask_positions": tf.TensorSpec((None, m), tf.int32)}, tf.TensorSpec((None,), tf.int32))
    return tf.data.Dataset.from_generator(batches, output_signature=signature).prefetch(tf.data.AUTOTUNE)


def full_logits_trainer(model):
    """The naive training path, as the seed (bert4keras `with_mlm=True`): full-vocabulary logits at
    every position of the padded batch, then the mask slots are read from them. Same prompt
    encoder (its weights are `model`'s), same objective, same scores as `model`; only the work differs."""
    import keras
    from keras import ops

    from few_shot.bert import gather_positions

    class FullLogitsTrainer(keras.Model):
        def __init__(self, ptuning):
            super().__init__()
            self.ptuning = ptuning
            self.built = True  # builds nothing of its own: the weights are the p-tuning model's

        def call(self, inputs, training=False):
            m, backbone = self.ptuning, self.ptuning.backbone
            hidden = m.hidden_states(inputs, training)
            logits = backbone.mlm_logits(hidden)  # [B, T, vocab]
            at_mask = gather_positions(logits, inputs["mask_positions"])  # [B, M, vocab]
            if training and m.objective == "vocab":
                at_mask = at_mask - ops.logsumexp(at_mask, axis=-1, keepdims=True)
            words = ops.one_hot(ops.convert_to_tensor(m.label_token_ids, dtype="int32"), ops.shape(logits)[-1],
                                dtype=logits.dtype)  # [C, M, vocab]
            return ops.einsum("bmv,cmv->bc", at_mask, words)
    return FullLogitsTrainer(model)


def stage_epoch(bench, variant):
    """One p-tuning epoch as cli.run_training runs it (fit, then valid and test accuracy), after a
    warm-up (1 step + 2 eval batches) so that tracing is not counted; `variant` ours or naive."""
    import keras
    import numpy as np

    from few_shot.loading import load_mlm
    from few_shot.portable import fold_prompt
    from few_shot.training import Scorer, training_dataset
    s = bench.settings
    threads = setup_threads(s["threads"])
    with MemoryMeter() as memory:
        mlm = load_mlm(bench.model_dir)
        model, cfg = build_model("ptuning", bench, mlm)
        trainer = model if variant == "ours" else full_logits_trainer(model)
        trainer.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss=model.loss_function())
        steps = max(1, -(-len(bench.train_set) * cfg.passes_per_epoch // cfg.batch_size))  # as run_training
        valid = bench.valid_set
        if variant == "ours":
            dataset = training_dataset(bench.train_set, cfg.batch_size, cfg.seed)
            scorer = Scorer(model, cfg.eval_batch_size)
            size = cfg.eval_batch_size

            def accuracy(data):
                return scorer.accuracy(data)

            def eval_batch(idx):
                scorer.fn(valid.batch(idx)[0])
            order = np.argsort(valid.lengths, kind="stable")  # Scorer's batch order
        else:
            dataset = fixed_padding_dataset(bench.train_set, cfg.batch_size, cfg.seed, cfg.maxlen,
                                            bench.tokenizer.pad_id)
            size = 32

            def accuracy(data):
                write_prompt_rows(mlm.model, model.prompt_token_ids, fold_prompt(model))
                return float(np.mean(naive_scores(mlm, data, bench.label_ids, size, cfg.maxlen).argmax(-1)
                                     == data.labels))

            def eval_batch(idx):
                naive_scores(mlm, valid, bench.label_ids, size, cfg.maxlen, idx)
            order = np.arange(len(valid))
        start = time.perf_counter()
        # one step traces the train function (tf.data gives it unknown lengths: no retrace later)
        trainer.fit(dataset, epochs=1, steps_per_epoch=1, shuffle=False, verbose=0)
        eval_batch(order[:size])
        if len(order) > size:
            eval_batch(order[(len(order) - 1) // size * size:])
        warmup = time.perf_counter() - start
        with Clock() as epoch:
            with Clock() as train:
                history = trainer.fit(dataset, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
            valid_acc, test_acc = accuracy(bench.valid_set), accuracy(bench.test_set)
    return {"variant": variant, "steps": steps, "train_rows": len(bench.train_set), "passes": cfg.passes_per_epoch,
            "valid_rows": len(bench.valid_set), "test_rows": len(bench.test_set), "warmup_seconds": warmup,
            "train_seconds": train.seconds, "eval_seconds": epoch.seconds - train.seconds, "seconds": epoch.seconds,
            "cpu_seconds": epoch.cpu_seconds, "loss": float(history.history["loss"][-1]), "valid_acc": valid_acc,
            "test_acc": test_acc,
            "memory": memory.result(), "threads": threads}


# -- running a stage in its own process -------------------------------------------------------------

def tensorflow_started():
    """Has this process started the TensorFlow runtime? (Forking after that is unsafe.)"""
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


# -- the run ----------------------------------------------------------------------------------------

def resolve_settings(args):
    """--quick / full defaults filled in, checked."""
    from few_shot.errors import FewShotError
    defaults = QUICK if args.quick else FULL
    s = {key: getattr(args, key) if getattr(args, key) is not None else value for key, value in defaults.items()}
    models = [m.strip() for m in s["models"].split(",") if m.strip()]
    stages = [x.strip() for x in s["stages"].split(",") if x.strip()]
    base_stages = [x.strip() for x in args.base_stages.split(",") if x.strip()]
    bad = [x for x in stages + base_stages if x not in STAGES]
    if bad:
        raise FewShotError(f"--stages/--base-stages: unknown {', '.join(bad)}; choose from {', '.join(STAGES)}")
    if not models or len(set(models)) != len(models):
        raise FewShotError(f"--models {s['models']!r}: give distinct names (mini, base) or model folders")
    for m in models:
        if m not in ("mini", "base") and not os.path.isdir(m):
            raise FewShotError(f"--models: {m} is neither mini, base nor a model folder; pass an HF BERT folder "
                               f"(config.json + model.safetensors + vocab.txt)")
    for key in ("rows", "base_rows", "repeats", "train_steps", "passes", "epoch_eval_rows"):
        if s[key] is not None and s[key] < 1:
            raise FewShotError(f"--{key.replace('_', '-')} {s[key]}: must be at least 1")
    if args.json and os.path.exists(args.json) and not args.overwrite:
        raise FewShotError(f"{args.json}: exists; pass --overwrite to replace it or choose another --json")
    threads = args.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    isolation = args.isolation or ("fork" if sys.platform.startswith("linux") else "none")
    if isolation == "fork" and tensorflow_started():
        warnings.warn("TensorFlow already runs in this process, so stages cannot be forked safely; running them "
                      "in-process (--isolation none): peak memory numbers overlap")
        isolation = "none"
    return dict(s, models=models, stages=stages, base_stages=base_stages, maxlen=args.maxlen, seed=args.seed,
                threads=threads, isolation=isolation)


def machine_info():
    import keras
    info = {"cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(
        os, "sched_getaffinity") else os.cpu_count(), "processor": platform.processor(),
        "machine": platform.machine(), "platform": platform.platform(), "python": platform.python_version(),
        "keras": keras.__version__, "backend": keras.backend.backend()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), None)
    except OSError:
        pass
    from importlib import metadata
    for package in ("tensorflow", "torch", "transformers", "numpy"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = None
    if hasattr(os, "getloadavg"):
        info["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def load_rows(folder):
    """-> (train first 1% as the main scripts, valid, test); duplicate-text warnings are not news here."""
    from few_shot import datasets
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", datasets.DataWarning)
        splits = datasets.load_task(folder)
    return datasets.first_fraction(splits["train"], 0.01), splits["valid"], splits["test"]


def make_bench(name, model_dir, rows, settings, eval_rows):
    from few_shot.pattern import PTUNING_PATTERN
    from few_shot.preprocessor import PromptPreprocessor
    from few_shot.tokenizer import Tokenizer
    from few_shot.verbalizers import make_verbalizer
    train, valid, test = rows
    tokenizer = Tokenizer(os.path.join(model_dir, "vocab.txt"))
    preprocessor = PromptPreprocessor(tokenizer, PTUNING_PATTERN, make_verbalizer(None), settings["maxlen"])
    n = settings["epoch_eval_rows"]
    return Bench(name, model_dir, preprocessor, preprocessor.encode(test[:eval_rows]), preprocessor.encode(train),
                 preprocessor.encode(valid[:n]), preprocessor.encode(test[:n]), settings)


def compare_eval(results):
    """Agreement of the paths' label scores: max |diff| and argmax equality per row."""
    import numpy as np
    fast = results["fast"]["scores"]
    out = {}
    for other in ("fast_xla", "naive", "transformers"):
        if other in results:
            scores = results[other]["scores"]
            out[f"max_abs_diff_fast_vs_{other}"] = float(np.max(np.abs(fast - scores)))
            out[f"argmax_mismatches_fast_vs_{other}"] = int(np.sum(fast.argmax(-1) != scores.argmax(-1)))
    if "naive" in results and "transformers" in results:
        out["max_abs_diff_naive_vs_transformers"] = float(np.max(np.abs(results["naive"]["scores"] -
                                                                        results["transformers"]["scores"])))
    top2 = np.sort(fast, axis=-1)[:, -2:]
    out["smallest_label_margin"] = float(np.min(top2[:, 1] - top2[:, 0]))  # how close the closest call was
    out["predictions_identical"] = out.get("argmax_mismatches_fast_vs_naive", 1) == 0
    out["predictions_identical_transformers"] = out.get("argmax_mismatches_fast_vs_transformers", 1) == 0
    return out


def plan_stages(settings):
    """-> [(model, stage, variant)] in run order (the tqdm bar's length)."""
    plan = []
    for name in settings["models"]:
        if name == "base":
            plan.append((name, "setup", "random BERT-base"))
        for stage in settings["base_stages"] if name == "base" else settings["stages"]:
            variants = {"eval": ("fast", "fast_xla", "naive", "transformers"), "train": ("ptuning", "finetune"),
                        "epoch": ("ours", "naive")}[stage]
            plan += [(name, stage, v) for v in variants]
    return plan


def run_benchmark(settings, data_folder, progress=True):
    """All stages -> the report dict (see the module docstring)."""
    from tqdm.auto import tqdm

    from few_shot.loading import DEFAULT_MODEL
    plan = plan_stages(settings)
    rows = load_rows(data_folder)
    iso = settings["isolation"]
    report = {"models": {}}
    bar = tqdm(total=len(plan), desc="benchmark", unit="stage", file=sys.stderr, dynamic_ncols=True,
               disable=not progress)
    tmp = tempfile.mkdtemp(prefix="few_shot_bench_")
    try:
        for name in settings["models"]:
            model_dir = {"mini": DEFAULT_MODEL}.get(name, name)
            entry = report["models"].setdefault(name, {})
            if name == "base":
                bar.set_postfix_str("base: random BERT-base to a temporary HF folder")
                model_dir = os.path.join(tmp, "bert-base-random")
                entry["setup"] = run_stage(stage_make_base, iso, folder=model_dir,
                                           vocab_path=os.path.join(DEFAULT_MODEL, "vocab.txt"), seed=settings["seed"])
                bar.update(1)
            eval_rows = settings["base_rows"] if name == "base" else settings["rows"]
            bench = make_bench(name, model_dir, rows, settings, eval_rows)
            entry.update(path=model_dir if name != "base" else "(random weights, temporary folder)",
                         config=_model_config(model_dir))
            for stage in settings["base_stages"] if name == "base" else settings["stages"]:
                results = {}
                for variant in [v for m, st, v in plan if m == name and st == stage]:
                    bar.set_postfix_str(f"{name}: {stage} {variant}")
                    if stage == "eval":
                        fn, kwargs = {"fast": (stage_eval_fast, {"jit_compile": False}),
                                      "fast_xla": (stage_eval_fast, {"jit_compile": True}),
                                      "naive": (stage_eval_naive, {"prompts": results.get("fast", {}).get("prompts")}),
                                      "transformers": (stage_eval_transformers,
                                                       {"prompts": results.get("fast", {}).get("prompts")})}[variant]
                    elif stage == "train":
                        fn, kwargs = stage_train_step, {"method": variant}
                    else:
                        fn, kwargs = stage_epoch, {"variant": variant}
                    results[variant] = run_stage(fn, iso, bench=bench, **kwargs)
                    bar.update(1)
                    tqdm.write(f"{name} {stage} {variant}: {_headline(stage, results[variant])}", file=sys.stderr)
                entry[stage] = _finish_stage(stage, results)
    finally:
        bar.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _model_config(model_dir):
    try:
        with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    return {k: config.get(k) for k in ("num_hidden_layers", "hidden_size", "num_attention_heads",
                                       "intermediate_size", "vocab_size")}


def _headline(stage, result):
    if stage == "epoch":
        return (f"{result['seconds']:.1f} s (train {result['train_seconds']:.1f} s + eval "
                f"{result['eval_seconds']:.1f} s)")
    return f"{result['samples_per_s']:.1f} samples/s"


def _finish_stage(stage, results):
    """Ratios and agreement for one stage; numpy arrays dropped (the JSON keeps numbers)."""
    out = {"variants": results}
    if stage == "eval":
        out.update(compare_eval(results))
        # the ratios are those of the path the scripts run (Scorer without XLA); XLA is a reference row
        fast = results["fast"]
        out["fast_jit_compile"] = fast["jit_compile"]
        if "fast_xla" in results:
            out["xla_vs_fast"] = results["fast_xla"]["samples_per_s"] / fast["samples_per_s"]
        out["fast_samples_per_s"] = fast["samples_per_s"]
        for other in ("naive", "transformers"):
            out[f"speedup_vs_{other}"] = fast["samples_per_s"] / results[other]["samples_per_s"]
            out[f"speedup_vs_{other}_cpu"] = fast["samples_per_cpu_s"] / results[other]["samples_per_cpu_s"]
        for r in results.values():
            r.pop("scores", None)
            r.pop("prompts", None)
    elif stage == "train":
        p, f = results["ptuning"], results["finetune"]
        out["speedup_ptuning_vs_finetune"] = p["samples_per_s"] / f["samples_per_s"]
        out["speedup_ptuning_vs_finetune_cpu"] = p["samples_per_cpu_s"] / f["samples_per_cpu_s"]
    else:
        out["speedup_vs_naive"] = results["naive"]["seconds"] / results["ours"]["seconds"]
        out["speedup_vs_naive_cpu"] = results["naive"]["cpu_seconds"] / results["ours"]["cpu_seconds"]
    return out


def headline(report, settings):
    """The top-level keys: the first model's ratios, `_<name>` suffixes for the others."""
    out = {}
    identical = []
    for i, name in enumerate(settings["models"]):
        entry, suffix = report["models"][name], "" if i == 0 else f"_{name}"
        if "eval" in entry:
            for key in ("speedup_vs_transformers", "speedup_vs_naive"):
                out[f"eval_{key}{suffix}"] = entry["eval"][key]
                out[f"eval_{key}_cpu{suffix}"] = entry["eval"][f"{key}_cpu"]
            identical.append(entry["eval"]["predictions_identical"])
        if "train" in entry:
            out[f"train_speedup_ptuning_vs_finetune{suffix}"] = entry["train"]["speedup_ptuning_vs_finetune"]
            out[f"train_speedup_ptuning_vs_finetune_cpu{suffix}"] = entry["train"]["speedup_ptuning_vs_finetune_cpu"]
        if "epoch" in entry:
            out[f"epoch_speedup_vs_naive{suffix}"] = entry["epoch"]["speedup_vs_naive"]
            out[f"epoch_speedup_vs_naive_cpu{suffix}"] = entry["epoch"]["speedup_vs_naive_cpu"]
    if identical:
        out["predictions_identical"] = all(identical)
    out["headline_model"] = settings["models"][0]
    return out


VARIANT_LABELS = {"fast": "few_shot fast (Scorer)", "fast_xla": "few_shot fast (Scorer, XLA)",
                  "naive": "few_shot naive (full vocab, pad {maxlen})", "transformers": "transformers (torch)",
                  "ptuning": "p-tuning (BiLSTM prompt, frozen MLM)", "finetune": "finetune (whole MLM)",
                  "ours": "ours (bucketed padding, Scorer eval)",
                  "naive_epoch": "naive (pad {maxlen}, full-vocab logits everywhere)"}


def markdown(report, settings):
    lines = ["| model | stage | variant | rows | batch | result (wall) | per CPU-second | peak RSS MB (+ stage) |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for name, entry in report["models"].items():
        for stage in STAGES:
            if stage not in entry:
                continue
            for variant, r in entry[stage]["variants"].items():
                label = VARIANT_LABELS["naive_epoch" if (stage, variant) == ("epoch", "naive") else variant]
                label = label.format(maxlen=settings["maxlen"])
                if stage == "eval":
                    chosen = variant == "fast"
                    rows, batch = r["rows"], r["batch_size"]
                    result = f"{'**' if chosen else ''}{r['samples_per_s']:.1f} samples/s{'**' if chosen else ''}"
                    cpu = f"{r['samples_per_cpu_s']:.1f} samples"
                elif stage == "train":
                    rows, batch, result = f"{r['steps']} steps", r["batch_size"], f"{r['samples_per_s']:.1f} samples/s"
                    cpu = f"{r['samples_per_cpu_s']:.1f} samples"
                else:
                    rows = f"{r['train_rows']}x{r['passes']} + {r['valid_rows']} + {r['test_rows']}"
                    batch, result, cpu = 32, f"{r['seconds']:.1f} s", f"{r['cpu_seconds']:.1f} CPU-s"
                m = r["memory"]
                lines.append(f"| {name} | {stage} | {label} | {rows} | {batch} | {result} | {cpu} | "
                             f"{m['peak_rss_mb']:.0f} (+{m['peak_delta_mb']:.0f}) |")
    lines.append("")
    for name, entry in report["models"].items():
        parts = []
        if "eval" in entry:
            e = entry["eval"]
            parts.append(f"eval fast/transformers **{e['speedup_vs_transformers']:.2f}x** (CPU time "
                         f"{e['speedup_vs_transformers_cpu']:.2f}x), fast/naive {e['speedup_vs_naive']:.2f}x "
                         f"({e['speedup_vs_naive_cpu']:.2f}x)" + (f"; XLA/no XLA {e['xla_vs_fast']:.2f}x" if "xla_vs_fast" in e else "") + "; "
                         f"predictions identical (fast vs naive): {'yes' if e['predictions_identical'] else 'NO'}; "
                         f"max |diff| of label logits: fast-naive {e['max_abs_diff_fast_vs_naive']:.1e}, "
                         f"fast-transformers {e['max_abs_diff_fast_vs_transformers']:.1e}")
        if "train" in entry:
            t = entry["train"]
            parts.append(f"train step p-tuning/finetune {t['speedup_ptuning_vs_finetune']:.2f}x "
                         f"({t['speedup_ptuning_vs_finetune_cpu']:.2f}x)")
        if "epoch" in entry:
            parts.append(f"epoch naive/ours **{entry['epoch']['speedup_vs_naive']:.2f}x** "
                         f"({entry['epoch']['speedup_vs_naive_cpu']:.2f}x)")
        lines.append(f"- {name}: " + "; ".join(parts))
    lines.append("- (x): the same ratio on CPU seconds of the timed part (all threads), steadier than wall "
                 "time while other jobs share the CPU")
    lines.append(f"- samples/s: rows / best of {settings['repeats']} timed passes after warm-up; "
                 f"{settings['threads']} intra-op threads for TensorFlow and torch; stages isolated by "
                 f"{settings['isolation']}; peak RSS is the stage process's VmHWM, (+) its growth during the stage")
    lines.append(f"- CPU share: the stages used {cpu_share(report):.2f} CPU-seconds per wall second "
                 f"(of {settings['threads']} threads; well below that = other jobs had the CPU, timings are noisy)")
    lines += [f"- note: {n}" for n in notes(report, settings)]
    return "\n".join(lines)


def cpu_share(report):
    """CPU seconds / wall seconds summed over all stages (loading and warm-up included)."""
    runs = [r for entry in report["models"].values() for stage in entry.values()
            if isinstance(stage, dict) and "variants" in stage for r in stage["variants"].values()]
    wall = sum(r["stage_wall_seconds"] for r in runs)
    return sum(r["stage_cpu_seconds"] for r in runs) / wall if wall else float("nan")


def notes(report, settings):
    """What a reader of the numbers should know about this run's subsets."""
    out = []
    for name, entry in report["models"].items():
        if "eval" in entry:
            fast = entry["eval"]["variants"]["fast"]
            if fast["rows"] <= fast["batch_size"]:
                out.append(f"{name}: {fast['rows']} eval rows are one batch of the fast path, so its dynamic "
                           f"padding saves nothing here; the full test set shows its whole gain")
        if "epoch" in entry:
            r = entry["epoch"]["variants"]["ours"]
            if r["passes"] != 50 or r["valid_rows"] < 2111:
                out.append(f"{name}: the epoch is {r['passes']} pass(es) over {r['train_rows']} rows (the main "
                           f"scripts do 50) and is evaluated on the first {r['valid_rows']} valid / "
                           f"{r['test_rows']} test rows, the same for ours and naive")
    if "base" in report["models"]:
        out.append("base: random weights (the shape of BERT-base, not its predictions)")
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    from few_shot.cli import DEFAULT_DATA, user_errors
    from few_shot.errors import FewShotError

    with user_errors():
        settings = resolve_settings(args)
        import keras
        if keras.backend.backend() != "tensorflow":
            raise FewShotError(f"the benchmark measures the TensorFlow backend (tf.function, XLA, tf.data); "
                               f"KERAS_BACKEND is {keras.backend.backend()}; run with KERAS_BACKEND=tensorflow")
        info = machine_info()
        start = time.time()
        report = run_benchmark(settings, args.data or DEFAULT_DATA)
        if hasattr(os, "getloadavg"):
            info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        table = markdown(report, settings)
        result = {**headline(report, settings), "wall_seconds": round(time.time() - start, 1),
                  "command": [os.path.relpath(os.path.abspath(__file__))] + argv, "quick": args.quick,
                  "settings": settings, "machine": info,
                  "rows": _rows_summary(report), "cpu_share": cpu_share(report), "notes": notes(report, settings),
                  "table": table, **report}
        print(table)
        if args.json:
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(_plain(result), f, indent=2, ensure_ascii=False)
            print(f"wrote {args.json}")
        return result


def _rows_summary(report):
    out = {}
    for name, entry in report["models"].items():
        out[name] = {}
        if "eval" in entry:
            out[name]["eval"] = entry["eval"]["variants"]["fast"]["rows"]
        if "train" in entry:
            r = entry["train"]["variants"]["ptuning"]
            out[name]["train_step"] = {"steps": r["steps"], "batch_size": r["batch_size"]}
        if "epoch" in entry:
            r = entry["epoch"]["variants"]["ours"]
            out[name]["epoch"] = {k: r[k] for k in ("train_rows", "passes", "steps", "valid_rows", "test_rows")}
    return out


def _plain(value):
    """numpy scalars/arrays -> JSON types."""
    import numpy as np
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


if __name__ == "__main__":
    main()
