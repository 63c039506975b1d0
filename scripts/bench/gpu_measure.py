"""scripts/gpu_bench.py's measurements: the matmul peak, transformers' BertForMaskedLM eval and few_shot's
Keras model (eval + p-tuning train step) on the active Keras backend."""
import gc
import sys
import time
import traceback

from bench.gpu_common import (MASK_POSITION, SHAPES, SIZES, TEST, VOCAB, attention_flops, best_of, device_info,
                              emit, encode_rows, eval_batches, guarded, ptuning_ids, read_texts, sig)

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
