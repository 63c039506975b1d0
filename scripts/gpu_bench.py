#!/usr/bin/env python3
"""Measurements for scripts/gpu_job.sh. Each subcommand appends JSON records (one per line) to --out as
soon as each is measured, so a crash or a timeout keeps what came before; `collect` turns them into
bench.json. Every subcommand runs on a CPU too (`--tiny`: 2 layers x hidden 64, a few rows).

    python3 scripts/gpu_bench.py peak --out R.jsonl                    # torch matmul peak (bf16, fp32, tf32)
    python3 scripts/gpu_bench.py transformers --out R.jsonl            # the peer: BertForMaskedLM eval
    KERAS_BACKEND=torch python3 scripts/gpu_bench.py keras --out R.jsonl   # few_shot's model, eval + train step
    KERAS_BACKEND=jax   python3 scripts/gpu_bench.py keras --out R.jsonl
    KERAS_BACKEND=numpy python3 scripts/gpu_bench.py pipeline --corpus F.txt --out R.jsonl   # MLM data rate
    KERAS_BACKEND=torch python3 scripts/gpu_bench.py probe HF_DIR --out R.jsonl   # zero-shot + HF check
    python3 scripts/gpu_bench.py collect R.jsonl --pretrain-log DIR/pretrain_log.json --json bench.json

Model: BERT-base shape (12 layers, hidden 768, 12 heads, intermediate 3072, vocab 21128), random
weights. Inputs: the first 2048 rows of data/sentiment/sentiment.test.data in the P-tuning pattern
[CLS][u1..u4][MASK][u5..u8]text[SEP] (maxlen 128), sorted by length and batched by 128 with per-batch
padding as few_shot's Scorer does (JAX: lengths rounded up to multiples of 32, one XLA compile per
shape; the first pass, compiles included, is kept as first_pass_s). Label scores (不/很) at [MASK].
Train step: P-tuning (frozen MLM, BiLSTM prompt encoder, label objective), one batch of 32 rows of
median length, padded to its longest row, Adam; samples/s after warm-up steps.
FLOPs (see NOTES): eval 2*P*tokens + attention, p-tuning train 4*P*tokens + 3*attention, where P is
the parameters of the encoder layers and tokens the padded tokens computed.
"""
import argparse
import gc
import json
import os
import platform
import sys
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHAPES = {"full": dict(layers=12, hidden=768, heads=12, intermediate=3072),
          "tiny": dict(layers=2, hidden=64, heads=2, intermediate=128)}
SIZES = {"full": dict(rows=2048, eval_batch=128, train_batch=32, train_steps=10, warmup_steps=2, repeats=3,
                      matmul=8192, matmul_iters=30, jax_multiple=32),
         "tiny": dict(rows=32, eval_batch=16, train_batch=8, train_steps=2, warmup_steps=1, repeats=1,
                      matmul=256, matmul_iters=3, jax_multiple=32)}
VOCAB = os.path.join(REPO, "models", "zh-bert-mini", "vocab.txt")
TEST = os.path.join(REPO, "data", "sentiment", "sentiment.test.data")
VALID = os.path.join(REPO, "data", "sentiment", "sentiment.valid.data")
MAXLEN, MASK_POSITION, PROMPT_LENGTH = 128, 5, 8
LABEL_WORDS = ("不", "很")  # label 0, 1 (the package's sentiment verbalizer)
PROBE_PATTERN = "[MASK]满意。{text}"  # the zero-shot pattern of pretrain_mlm --probe
NOTES = {
    "flops_eval": "2 * P * T + 4 * L * H * sum(B * t^2): P = parameters of the encoder layers (all weights "
                  "and biases of the L transformer blocks; embeddings and the head are not counted), T = padded "
                  "tokens computed (sum over batches of rows x padded length t), the second term the attention "
                  "score and context matmuls; the [MASK]-only head is negligible",
    "flops_train_ptuning": "4 * P * T + 3 * attention: frozen MLM, so the backward pass computes activation "
                           "gradients (2 * P * T) but no weight gradients of the encoder (full training would be "
                           "6 * P * T); the prompt encoder is negligible",
    "fraction_of_peak": "achieved TFLOP/s / the torch matmul peak measured here in the same precision (bf16 runs "
                        "against the bf16 peak, fp32 runs against the strict-fp32 peak; fp32 runs also against "
                        "the TF32 peak, which XLA/JAX may use for fp32 matmuls by default)",
    "keras_eval": "Keras predict_on_batch of PtuningModel (torch: eager under no_grad; JAX: jit per input shape)",
    "transformers_eval": "BertForMaskedLM under torch.inference_mode: at_mask = encoder + MLM head at [MASK] "
                         "only (the same work as few_shot); full_logits = the plain forward (logits at every "
                         "position); bf16 = torch.autocast",
    "pipeline": "pretrain_mlm's data pipeline (tokenise + pack + mask) on one thread: the MLM training input "
                "rate the CPU side can sustain (Keras feeds it from Python threads, so about one core)",
}


# -- records ------------------------------------------------------------------------------------

def sig(x, digits=4):
    """Round to `digits` significant digits (TFLOP/s span 1e-4 on a busy CPU to 1e3 on a GPU)."""
    return float(f"{x:.{digits}g}")


def emit(out, record):
    record = {"t": round(time.time(), 3), **record}
    with open(out, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    keys = ("kind", "name", "rows_per_s", "samples_per_s", "tflops", "tokens_per_s", "accuracy", "error")
    print("bench: " + " ".join(f"{k}={record[k]}" for k in keys if k in record), flush=True)


def guarded(out, kind, name, fn, **extra):
    """Run one measurement; on failure record the error and carry on."""
    t0 = time.perf_counter()
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001 -- any failure is a result to report
        emit(out, {"kind": kind, "name": name, **extra, "error": f"{type(e).__name__}: {e}"[:2000],
                   "traceback": traceback.format_exc()[-3000:], "seconds": round(time.perf_counter() - t0, 2)})
        return None
    emit(out, {"kind": kind, "name": name, **extra, **result, "seconds": round(time.perf_counter() - t0, 2)})
    return result


# -- inputs -------------------------------------------------------------------------------------

def read_texts(path, limit=None):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            text, tab, label = line.rstrip("\r\n").rpartition("\t")
            if tab and text.strip() and label.strip() in ("0", "1"):
                rows.append((text, int(label)))
    return rows[:limit] if limit else rows


def ptuning_ids(tokenizer):
    prompt = [tokenizer.token_to_id(f"[unused{i}]") for i in range(1, PROMPT_LENGTH + 1)]
    labels = [[tokenizer.token_to_id(w)] for w in LABEL_WORDS]
    return prompt, labels


def encode_rows(tokenizer, texts):
    """[CLS][u1..u4][MASK][u5..u8]text[SEP], truncated to MAXLEN: the package's P-tuning pattern."""
    prompt, _ = ptuning_ids(tokenizer)
    head = [tokenizer.cls_id] + prompt[:4] + [tokenizer.mask_id] + prompt[4:]
    assert head[MASK_POSITION] == tokenizer.mask_id
    budget = MAXLEN - len(head) - 1
    return [head + tokenizer.tokens_to_ids(tokenizer.tokenize(t))[:budget] + [tokenizer.sep_id] for t in texts]


def eval_batches(encoded, batch_size, multiple=1):
    """Rows sorted by length, batches padded to their longest row (rounded up to `multiple`)."""
    import numpy as np
    order = np.argsort([len(e) for e in encoded], kind="stable")
    out = []
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        length = max(len(encoded[i]) for i in idx)
        length = min(MAXLEN, -(-length // multiple) * multiple)
        ids = np.zeros((len(idx), length), dtype="int32")
        for r, i in enumerate(idx):
            ids[r, :len(encoded[i])] = encoded[i]
        out.append(ids)
    return out


def attention_flops(shape, batches):
    return 4 * shape["layers"] * shape["hidden"] * sum(b.shape[0] * b.shape[1] ** 2 for b in batches)


def best_of(run, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times), times


def device_info():
    info = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        import torch
        info["torch"] = torch.__version__
        info["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["device"] = torch.cuda.get_device_name(0)
            info["cuda"] = torch.version.cuda
            info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2 ** 30, 1)
        else:
            info["device"] = "cpu"
    except ImportError:
        info["device"] = "cpu"
    return info


# -- peak ---------------------------------------------------------------------------------------

def cmd_peak(args):
    import torch
    emit(args.out, {"kind": "env", "name": "machine", **device_info()})
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    n, iters = SIZES[args.size]["matmul"], SIZES[args.size]["matmul_iters"]

    def sync():
        if dev == "cuda":
            torch.cuda.synchronize()

    def measure(dtype, tf32):
        def run():
            old = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
            try:
                a = torch.randn(n, n, device=dev, dtype=dtype)
                b = torch.randn(n, n, device=dev, dtype=dtype)
                for _ in range(3):
                    a @ b
                sync()
                t0 = time.perf_counter()
                for _ in range(iters):
                    a @ b
                sync()
                seconds = time.perf_counter() - t0
            finally:
                torch.backends.cuda.matmul.allow_tf32 = old
            return {"tflops": sig(2 * n ** 3 * iters / seconds / 1e12), "n": n, "iters": iters, "device": dev}
        return run

    for name, dtype, tf32 in (("bf16", torch.bfloat16, False), ("fp32", torch.float32, False),
                              ("tf32", torch.float32, True)):
        guarded(args.out, "peak", name, measure(dtype, tf32))


# -- transformers -------------------------------------------------------------------------------

def cmd_transformers(args):
    import numpy as np
    import torch
    import transformers

    from few_shot.tokenizer import Tokenizer
    shape, size = SHAPES[args.size], SIZES[args.size]
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    tok = Tokenizer(VOCAB)
    _, labels = ptuning_ids(tok)
    label_ids = torch.tensor([ids[0] for ids in labels], device=dev)
    rows = read_texts(TEST, size["rows"])
    batches = eval_batches(encode_rows(tok, [t for t, _ in rows]), size["eval_batch"])
    config = transformers.BertConfig(vocab_size=tok.vocab_size, hidden_size=shape["hidden"],
                                     num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
                                     intermediate_size=shape["intermediate"], max_position_embeddings=512)
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(config).to(dev).eval()
    params = sum(p.numel() for p in model.bert.encoder.parameters())
    tensors = [(torch.from_numpy(b).long().to(dev), torch.from_numpy((b != 0).astype("int64")).to(dev))
               for b in batches]
    tokens = sum(b.size for b in batches)
    flops = 2 * params * tokens + attention_flops(shape, batches)

    def run_pass(variant, bf16):
        out = []
        with torch.inference_mode(), torch.autocast(dev, dtype=torch.bfloat16, enabled=bf16):
            for ids, mask in tensors:
                if variant == "at_mask":
                    hidden = model.bert(input_ids=ids, attention_mask=mask).last_hidden_state[:, MASK_POSITION]
                    scores = model.cls(hidden[:, None])[:, 0][:, label_ids]
                else:
                    scores = model(input_ids=ids, attention_mask=mask).logits[:, MASK_POSITION][:, label_ids]
                out.append(scores.float().cpu().numpy())
        return np.concatenate(out)

    def measure(variant, bf16):
        def run():
            t0 = time.perf_counter()
            run_pass(variant, bf16)
            first = time.perf_counter() - t0
            best, times = best_of(lambda: run_pass(variant, bf16), size["repeats"])
            return {"rows": len(rows), "rows_per_s": round(len(rows) / best, 1), "best_s": round(best, 4),
                    "first_pass_s": round(first, 3), "times_s": [round(t, 4) for t in times],
                    "padded_tokens": tokens, "encoder_params": params, "flops": flops,
                    "tflops": sig(flops / best / 1e12), "device": dev,
                    "attn_implementation": getattr(model.config, "_attn_implementation", None)}
        return run

    for bf16 in (True, False):
        for variant in ("at_mask", "full_logits"):
            precision = "bf16" if bf16 else "fp32"
            guarded(args.out, "eval", f"transformers_{variant}_{precision}", measure(variant, bf16),
                    path="transformers", precision=precision, transformers=transformers.__version__)


# -- few_shot's Keras model ---------------------------------------------------------------------

def cmd_keras(args):
    import keras
    import numpy as np

    backend = keras.backend.backend()
    t0 = time.perf_counter()
    try:
        from few_shot.bert import BertMaskedLM
        from few_shot.ptuning import PtuningModel
        from few_shot.tokenizer import Tokenizer
    except Exception as e:  # noqa: BLE001
        emit(args.out, {"kind": "env", "name": f"keras_{backend}", "error": f"{type(e).__name__}: {e}",
                        "traceback": traceback.format_exc()[-3000:]})
        return
    tf = sys.modules.get("tensorflow")
    env = {"keras": keras.__version__, "backend": backend, "import_s": round(time.perf_counter() - t0, 2),
           "few_shot_ptuning_imports_tensorflow": tf is not None}
    if backend == "jax":
        import jax
        env.update(jax=jax.__version__, jax_devices=[str(d) for d in jax.devices()],
                   jax_default_matmul_precision=str(jax.config.jax_default_matmul_precision))
    else:
        import torch
        env.update(torch=torch.__version__, cuda_available=torch.cuda.is_available())
    emit(args.out, {"kind": "env", "name": f"keras_{backend}", **env})

    shape, size = SHAPES[args.size], SIZES[args.size]
    tok = Tokenizer(VOCAB)
    prompt, labels = ptuning_ids(tok)
    rows = read_texts(TEST, size["rows"])
    encoded = encode_rows(tok, [t for t, _ in rows])
    multiple = size["jax_multiple"] if backend == "jax" else 1
    batches = eval_batches(encoded, size["eval_batch"], multiple)
    inputs = [{"token_ids": b, "segment_ids": np.zeros_like(b),
               "mask_positions": np.full((len(b), 1), MASK_POSITION, dtype="int32")} for b in batches]
    # the train batch: train_batch rows around the median length, padded to the longest of them
    order = np.argsort([len(e) for e in encoded], kind="stable")
    mid = max(0, len(order) // 2 - size["train_batch"] // 2)
    pick = order[mid:mid + size["train_batch"]]
    train_ids = eval_batches([encoded[i] for i in pick], len(pick))[0]
    train_x = {"token_ids": train_ids, "segment_ids": np.zeros_like(train_ids),
               "mask_positions": np.full((len(pick), 1), MASK_POSITION, dtype="int32")}
    train_y = np.array([rows[i][1] for i in pick], dtype="int32")

    def build(policy):
        keras.mixed_precision.set_global_policy(policy)
        keras.utils.set_random_seed(0)
        backbone = BertMaskedLM(vocab_size=tok.vocab_size, hidden_size=shape["hidden"], num_layers=shape["layers"],
                                num_heads=shape["heads"], intermediate_size=shape["intermediate"], max_position=512)
        model = PtuningModel(backbone, label_token_ids=labels, prompt_token_ids=prompt, encoder="lstm")
        params = int(sum(np.prod(w.shape) for layer in backbone.encoder_layers for w in layer.weights))
        return model, params

    def eval_measure(model, params):
        def run():
            def one_pass():
                return [model.predict_on_batch(x) for x in inputs]
            t0 = time.perf_counter()
            one_pass()
            first = time.perf_counter() - t0
            best, times = best_of(one_pass, size["repeats"])
            tokens = sum(b.size for b in batches)
            flops = 2 * params * tokens + attention_flops(shape, batches)
            return {"rows": len(rows), "rows_per_s": round(len(rows) / best, 1), "best_s": round(best, 4),
                    "first_pass_s": round(first, 3), "times_s": [round(t, 4) for t in times],
                    "padded_tokens": tokens, "pad_multiple": multiple,
                    "distinct_shapes": len({b.shape for b in batches}), "encoder_params": params,
                    "flops": flops, "tflops": sig(flops / best / 1e12)}
        return run

    def train_measure(model, params):
        def run():
            try:
                loss = model.loss_function()
            except AttributeError:
                loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
            t0 = time.perf_counter()
            for _ in range(size["warmup_steps"]):
                model.train_on_batch(train_x, train_y)
            warm = time.perf_counter() - t0
            t0 = time.perf_counter()
            for _ in range(size["train_steps"]):
                value = model.train_on_batch(train_x, train_y)
            seconds = time.perf_counter() - t0
            b, t = train_ids.shape
            flops_step = 4 * params * b * t + 3 * attention_flops(shape, [train_ids])
            return {"batch": int(b), "padded_length": int(t), "steps": size["train_steps"],
                    "warmup_s": round(warm, 3), "step_s": round(seconds / size["train_steps"], 4),
                    "samples_per_s": round(b * size["train_steps"] / seconds, 1), "encoder_params": params,
                    "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
                    "loss": float(np.asarray(value[0] if isinstance(value, (list, tuple)) else value)),
                    "flops_per_step": flops_step, "tflops": sig(flops_step * size["train_steps"] / seconds / 1e12)}
        return run

    policies = {"bf16": "mixed_bfloat16", "fp32": "float32"}
    for precision in args.precisions.split(","):
        policy = policies[precision]
        try:
            model, params = build(policy)
        except Exception as e:  # noqa: BLE001
            emit(args.out, {"kind": "eval", "name": f"keras_{backend}_{precision}", "path": f"keras_{backend}",
                            "precision": precision, "error": f"build: {type(e).__name__}: {e}"[:2000],
                            "traceback": traceback.format_exc()[-3000:]})
            continue
        extra = {"path": f"keras_{backend}", "precision": precision, "backend": backend}
        guarded(args.out, "eval", f"keras_{backend}_{precision}", eval_measure(model, params), **extra)
        guarded(args.out, "train", f"keras_{backend}_{precision}_ptuning", train_measure(model, params), **extra)
        del model
        gc.collect()
        keras.backend.clear_session()
        if backend == "torch":
            import torch
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    keras.mixed_precision.set_global_policy("float32")


# -- the MLM data pipeline ----------------------------------------------------------------------

def cmd_pipeline(args):
    def run():
        from few_shot.pretraining import BlockStream, DocumentTokenizer, Masker
        from few_shot.tokenizer import Tokenizer
        tok = Tokenizer(VOCAB)
        docs = []
        for path in args.corpus:
            with open(path, encoding="utf-8") as f:
                for i, line in enumerate(f):
                    if i >= args.max_docs:
                        break
                    if line.strip():
                        docs.append(line.strip())
        stream = BlockStream(docs, DocumentTokenizer(tok), args.maxlen, 0)
        masker = Masker(tok, 0.15, -(-args.maxlen * 15 // 100), 0)
        import numpy as np
        steps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            made = [stream.next_block() for _ in range(args.batch_size)]
            masker.mask_batch(np.stack([m[0] for m in made]), np.stack([m[1] for m in made]), steps)
            steps += 1
        seconds = time.perf_counter() - t0
        tokens = steps * args.batch_size * args.maxlen
        return {"tokens_per_s": round(tokens / seconds, 1), "steps_per_s": round(steps / seconds, 3),
                "batch_size": args.batch_size, "maxlen": args.maxlen, "documents_read": len(docs)}
    guarded(args.out, "pipeline", "mlm_data", run)


# -- zero-shot probe of a pretrained folder + HF check --------------------------------------------

def probe_accuracy(pretrained, rows, batch_size=64):
    import keras
    import numpy as np
    tok, bert = pretrained.tokenizer, pretrained.model
    label_ids = [tok.token_to_id(w) for w in LABEL_WORDS]
    encoded = [tok.encode(PROBE_PATTERN.replace("{text}", text), maxlen=MAXLEN)[0] for text, _ in rows]
    order = np.argsort([len(e) for e in encoded], kind="stable")
    predictions = np.zeros(len(rows), dtype="int64")
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        ids = eval_batches([encoded[i] for i in idx], len(idx))[0]
        hidden = bert.encode(ids, np.zeros_like(ids))[:, 1]  # [MASK] is the first token after [CLS]
        logits = keras.ops.convert_to_numpy(bert.mlm_logits(hidden))
        predictions[idx] = np.argmax(logits[:, label_ids], axis=-1)
    labels = np.array([label for _, label in rows])
    return {"accuracy": round(float(np.mean(predictions == labels)), 4), "rows": len(rows),
            "predicted_1": round(float(np.mean(predictions == 1)), 4)}


def cmd_probe(args):
    from few_shot.loading import DEFAULT_MODEL, load_mlm
    rows = read_texts(args.rows, args.limit)
    loaded = {}

    def probe(folder):
        def run():
            loaded[folder] = load_mlm(folder)
            m = loaded[folder].model
            return {"folder": folder, "layers": m.num_layers, "hidden": m.hidden_size, "pattern": PROBE_PATTERN,
                    "data": os.path.relpath(args.rows, REPO), **probe_accuracy(loaded[folder], rows)}
        return run

    guarded(args.out, "probe", "pretrained", probe(args.folder))
    if not args.no_reference:
        guarded(args.out, "probe", "bundled_zh_bert_mini", probe(DEFAULT_MODEL))

    def hf_check():
        import keras
        import numpy as np
        import torch
        import transformers
        pretrained = loaded.get(args.folder) or load_mlm(args.folder)
        tok, bert = pretrained.tokenizer, pretrained.model
        ids = eval_batches([tok.encode(PROBE_PATTERN.replace("{text}", t), maxlen=MAXLEN)[0] for t, _ in rows[:8]],
                           8)[0]
        ours = keras.ops.convert_to_numpy(bert.mlm_logits(bert.encode(ids, np.zeros_like(ids))))
        model = transformers.BertForMaskedLM.from_pretrained(args.folder, dtype=torch.float32).eval()
        with torch.inference_mode():
            theirs = model(input_ids=torch.from_numpy(ids).long(),
                           attention_mask=torch.from_numpy((ids != 0).astype("int64"))).logits.numpy()
        real = ids != 0
        return {"max_abs_diff_logits": float(np.max(np.abs(ours - theirs)[real])),
                "argmax_agree": float(np.mean(ours.argmax(-1)[real] == theirs.argmax(-1)[real]))}

    guarded(args.out, "probe", "transformers_loads_export", hf_check)


# -- bench.json ---------------------------------------------------------------------------------

def pretraining_summary(path):
    with open(path, encoding="utf-8") as f:
        log = json.load(f)
    losses = log.get("loss") or []

    def avg(xs):
        return round(sum(xs) / len(xs), 4) if xs else None
    c = log.get("config", {})
    keep = ("steps", "tokens_per_step", "tokens_per_second", "wall_time_s", "train_time_s", "backend",
            "stopped_at_time_limit", "diverged_at_step", "model", "checkpoints", "exports")
    return {**{k: log[k] for k in keep if k in log},
            "loss_first20": avg(losses[:20]), "loss_last20": avg(losses[-20:]),
            "loss_every_100": [round(x, 4) for x in losses[::100]],
            "config": {k: c.get(k) for k in ("layers", "hidden", "heads", "intermediate", "maxlen", "batch_size",
                                              "lr", "warmup_steps", "steps", "whole_word", "mixed_precision",
                                              "max_minutes", "seed")},
            "corpus": log.get("corpus")}


def cmd_collect(args):
    records = []
    for path in args.records:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass  # a line cut by a kill
    peak = {r["name"]: r["tflops"] for r in records if r.get("kind") == "peak" and "tflops" in r}
    for r in records:
        if r.get("kind") in ("eval", "train") and "tflops" in r and r.get("precision") in peak:
            r["fraction_of_peak"] = sig(r["tflops"] / peak[r["precision"]])
            if r["precision"] == "fp32" and "tf32" in peak:
                r["fraction_of_tf32_peak"] = sig(r["tflops"] / peak["tf32"])
    out = {"machine": next((r for r in records if r.get("kind") == "env" and r.get("name") == "machine"), None),
           "environments": [r for r in records if r.get("kind") == "env" and r.get("name") != "machine"],
           "peak_tflops": peak,
           "eval": [r for r in records if r.get("kind") == "eval"],
           "train": [r for r in records if r.get("kind") == "train"],
           "pipeline": next((r for r in records if r.get("kind") == "pipeline"), None),
           "pretraining": None, "probe": [r for r in records if r.get("kind") == "probe"],
           "errors": [f"{r.get('kind')}/{r.get('name')}: {r['error']}" for r in records if "error" in r],
           "notes": NOTES, "job": args.job_info}
    if args.pretrain_log and os.path.exists(args.pretrain_log):
        try:
            out["pretraining"] = pretraining_summary(args.pretrain_log)
        except (OSError, ValueError, KeyError) as e:
            out["pretraining"] = {"error": f"{type(e).__name__}: {e}"}
    tmp = args.json + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
    os.replace(tmp, args.json)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("peak", "transformers", "keras", "pipeline", "probe"):
        s = sub.add_parser(name)
        s.add_argument("--out", required=True, help="JSON-lines file to append records to")
        s.add_argument("--tiny", dest="size", action="store_const", const="tiny", default="full")
        if name in ("transformers", "keras"):
            s.add_argument("--rows", type=int, help="override the number of test rows (quick checks)")
        if name == "keras":
            s.add_argument("--precisions", default="bf16,fp32", help="comma-separated, in this order: bf16, fp32")
        if name == "pipeline":
            s.add_argument("--corpus", nargs="+", required=True)
            s.add_argument("--batch-size", type=int, default=128)
            s.add_argument("--maxlen", type=int, default=128)
            s.add_argument("--seconds", type=float, default=8.0)
            s.add_argument("--max-docs", type=int, default=100000, help="documents read per corpus file")
        if name == "probe":
            s.add_argument("folder")
            s.add_argument("--rows", default=VALID, help="text<TAB>label rows (default: sentiment valid)")
            s.add_argument("--limit", type=int)
            s.add_argument("--no-reference", action="store_true", help="skip the bundled model's probe")
    c = sub.add_parser("collect")
    c.add_argument("records", nargs="+")
    c.add_argument("--json", required=True)
    c.add_argument("--pretrain-log")
    c.add_argument("--job-info", type=json.loads, default=None, help="a JSON object stored as bench.json's job")
    args = p.parse_args(argv)
    if getattr(args, "rows", None) and args.command in ("transformers", "keras"):
        SIZES[args.size] = dict(SIZES[args.size], rows=args.rows)
    {"peak": cmd_peak, "transformers": cmd_transformers, "keras": cmd_keras, "pipeline": cmd_pipeline,
     "probe": cmd_probe, "collect": cmd_collect}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
