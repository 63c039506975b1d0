"""scripts/gpu_bench.py's other subcommands: the MLM data pipeline's rate, the zero-shot probe of a pretrained
folder (+ transformers loads it), and `collect` (the JSON-lines records -> bench.json)."""
import json
import os
import time

from bench.gpu_common import (LABEL_WORDS, MAXLEN, NOTES, PROBE_PATTERN, REPO, VOCAB, eval_batches, guarded,
                              read_texts, sig)

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
    from few_shot.loading import load_mlm
    from few_shot.paths import DEFAULT_MODEL
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
