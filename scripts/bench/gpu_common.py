"""scripts/gpu_bench.py's shared pieces: constants, JSON-lines records, the encoded inputs, timing and the
device. FLOPs: bench/flops.py (the formulas scripts/benchmark.py counts with)."""
import json
import os
import platform
import time
import traceback

from bench import flops

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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
    return flops.attention_flops(shape, batches)

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

