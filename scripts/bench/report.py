"""Benchmark reporting: each stage's ratios and agreement, FLOP rates against the machine's matmul peak,
the headline keys of the JSON and the markdown table."""
import numpy as np

# fp32 peers whose argmax must equal few_shot's on every row; int8 is judged by its own threshold
AGREEING = ("transformers_dynamic", "transformers_grouped", "transformers_grouped_at_mask", "transformers_padded",
            "seed", "naive", "fast_xla")
PEERS = ("transformers_dynamic", "transformers_grouped", "seed")  # the comparisons the targets are about
INT8_MIN_AGREEMENT = 0.995
TARGETS = {"eval_speedup_vs_transformers_dynamic": 2.0, "epoch_speedup_vs_seed_path": 3.0}
LABELS = {
    "fast": "**few_shot** (Scorer: sorted, batches of 128 padded per batch, label words at [MASK])",
    "fast_xla": "few_shot, Scorer with XLA (reference)",
    "fast_int8": "few_shot, Keras int8 (`model.quantize(\"int8\")`)",
    "transformers_dynamic": "transformers, dynamic padding, data order, full logits",
    "transformers_grouped": "transformers, dynamic padding, length-grouped, full logits",
    "transformers_grouped_at_mask": "transformers, length-grouped, MLM head at [MASK] only (reference)",
    "transformers_padded": "transformers, padded to {maxlen} (reference)",
    "seed": "seed path (torch): per-batch padding, data order, full logits",
    "naive": "few_shot's MLM, full logits, padded to {maxlen} (reference)",
    "ptuning": "**few_shot** p-tuning (train_on_batch, bucketed batches)",
    "finetune": "few_shot finetune (whole MLM trains)",
    "seed_train": "seed path (torch): its loss over full logits, random masking",
    "ours": "**few_shot** default epoch (MirroredStrategy, fit + Scorer)",
    "ours_none": "few_shot epoch without MirroredStrategy (`--strategy none`)",
    "seed_epoch": "seed path (torch), same steps, its eval loop",
}


def rate(record, peak, seconds_key):
    """GFLOP/s of a record and its fraction of the machine's fp32 matmul peak."""
    seconds = record[seconds_key]
    gflops = record["flops"] / seconds / 1e9 if record.get("flops") and seconds else float("nan")
    return {"gflops_per_s": gflops, "peak_fraction": gflops / peak if peak else float("nan")}


def finish_eval(results, peak):
    fast = results["fast"]
    out = {"variants": results, "fast_samples_per_s": fast["samples_per_s"], "fast_jit_compile": fast["jit_compile"]}
    for name, r in results.items():
        r.update(rate(r, peak, "best_seconds"))
        if name == "fast":
            continue
        scores = r["scores"]
        out[f"speedup_vs_{name}"] = fast["samples_per_s"] / r["samples_per_s"]
        out[f"speedup_vs_{name}_cpu"] = fast["samples_per_cpu_s"] / r["samples_per_cpu_s"]
        out[f"max_abs_diff_fast_vs_{name}"] = float(np.max(np.abs(fast["scores"] - scores)))
        out[f"argmax_mismatches_fast_vs_{name}"] = int(np.sum(fast["scores"].argmax(-1) != scores.argmax(-1)))
        out[f"argmax_agreement_fast_vs_{name}"] = float(np.mean(fast["scores"].argmax(-1) == scores.argmax(-1)))
    top2 = np.sort(fast["scores"], axis=-1)[:, -2:]
    out["smallest_label_margin"] = float(np.min(top2[:, 1] - top2[:, 0]))  # how close the closest call was
    compared = [name for name in AGREEING if name in results]
    out["predictions_compared"] = compared
    out["predictions_identical"] = all(out[f"argmax_mismatches_fast_vs_{n}"] == 0 for n in compared)
    if "fast_int8" in results:
        agreement = out["argmax_agreement_fast_vs_fast_int8"]
        faster = (results["fast_int8"]["samples_per_s"] > fast["samples_per_s"] and  # on the wall and the CPU clock
                  results["fast_int8"]["samples_per_cpu_s"] > fast["samples_per_cpu_s"])
        out["int8"] = {"speedup": 1 / out["speedup_vs_fast_int8"], "speedup_cpu": 1 / out["speedup_vs_fast_int8_cpu"],
                       "argmax_agreement": agreement, "faster": faster,
                       "kept": bool(faster and agreement >= INT8_MIN_AGREEMENT),
                       "rule": f"kept only if faster (wall and CPU time) and argmax agrees on >= {INT8_MIN_AGREEMENT:.1%} of the rows"}
    for r in results.values():
        for key in ("scores", "prompts", "prompt_weights"):
            r.pop(key, None)
    return out


def finish_train(results, peak):
    for r in results.values():
        r.update(rate(r, peak, "total_seconds"))
    out = {"variants": results}
    p = results["ptuning"]
    for other in ("finetune", "seed"):
        if other in results:
            out[f"speedup_ptuning_vs_{other}"] = p["samples_per_s"] / results[other]["samples_per_s"]
            out[f"speedup_ptuning_vs_{other}_cpu"] = p["samples_per_cpu_s"] / results[other]["samples_per_cpu_s"]
    return out


def finish_epoch(results, peak):
    for r in results.values():
        r.update(rate(r, peak, "seconds"))
    out = {"variants": results}
    ours, seed = results["ours"], results.get("seed")
    total = ours["seconds"]
    out["split"] = {"tracing_train_s": ours["warmup_train_seconds"], "tracing_eval_s": ours["warmup_eval_seconds"],
                    "train_s": ours["train_seconds"], "eval_s": ours["eval_seconds"],
                    "train_share": ours["train_seconds"] / total, "eval_share": ours["eval_seconds"] / total,
                    "tracing_share_of_first_epoch": ours["warmup_seconds"] / ours["first_epoch_seconds"]}
    if seed:
        out["speedup_vs_seed_path"] = seed["seconds"] / ours["seconds"]
        out["speedup_vs_seed_path_cpu"] = seed["cpu_seconds"] / ours["cpu_seconds"]
        out["speedup_vs_seed_path_first_epoch"] = seed["first_epoch_seconds"] / ours["first_epoch_seconds"]
        out["train_speedup_vs_seed_path"] = seed["train_seconds"] / ours["train_seconds"]
        out["eval_speedup_vs_seed_path"] = seed["eval_seconds"] / max(1e-9, ours["eval_seconds"])
    if "ours_none" in results:
        plain = results["ours_none"]
        out["mirrored_strategy_cost"] = {"train": ours["train_seconds"] / plain["train_seconds"],
                                         "train_cpu": ours["train_cpu_seconds"] / plain["train_cpu_seconds"],
                                         "epoch": ours["seconds"] / plain["seconds"]}
        if seed:
            out["speedup_vs_seed_path_without_strategy"] = seed["seconds"] / plain["seconds"]
    return out


def finish_threads(results):
    best = max(results, key=lambda k: results[k]["samples_per_s"])
    return {"variants": results, "best": best,
            "samples_per_s": {k: r["samples_per_s"] for k, r in results.items()},
            "train_samples_per_s": {k: r["train_samples_per_s"] for k, r in results.items()},
            "samples_per_cpu_s": {k: r["samples_per_cpu_s"] for k, r in results.items()},
            "train_samples_per_cpu_s": {k: r["train_samples_per_cpu_s"] for k, r in results.items()}}


def headline(report, settings):
    """The top-level keys: the first model's ratios, `_<name>` suffixes for the others."""
    out, identical = {}, []
    peak = report.get("peak", {}).get("fp32_gflops")
    out["peak_gflops"] = peak
    for i, name in enumerate(settings["models"]):
        entry, suffix = report["models"][name], "" if i == 0 else f"_{name}"
        if "eval" in entry:
            e = entry["eval"]
            for key, value in e.items():
                if key.startswith("speedup_vs_"):
                    other = key[len("speedup_vs_"):].replace("seed", "seed_path")
                    out[f"eval_speedup_vs_{other}{suffix}"] = value
            identical.append(e["predictions_identical"])
            out[f"peak_fraction{suffix}"] = e["variants"]["fast"]["peak_fraction"]
            out[f"peak_fractions_eval{suffix}"] = {k: r["peak_fraction"] for k, r in e["variants"].items()}
            if "int8" in e:
                out[f"int8{suffix}"] = e["int8"]
        if "train" in entry:
            for key, value in entry["train"].items():
                if key.startswith("speedup_ptuning_vs_"):
                    out[f"train_{key.replace('seed', 'seed_path')}{suffix}"] = value
            out[f"peak_fractions_train{suffix}"] = {k: r["peak_fraction"]
                                                     for k, r in entry["train"]["variants"].items()}
        if "epoch" in entry:
            ep = entry["epoch"]
            for key in ("speedup_vs_seed_path", "speedup_vs_seed_path_cpu", "speedup_vs_seed_path_first_epoch",
                        "speedup_vs_seed_path_without_strategy", "train_speedup_vs_seed_path",
                        "eval_speedup_vs_seed_path"):
                if key in ep:
                    out[f"epoch_{key}{suffix}".replace("epoch_train_", "epoch_train_part_").replace(
                        "epoch_eval_", "epoch_eval_part_")] = ep[key]
            out[f"epoch_split{suffix}"] = ep["split"]
            if "mirrored_strategy_cost" in ep:
                out[f"mirrored_strategy_cost{suffix}"] = ep["mirrored_strategy_cost"]
            out[f"peak_fractions_epoch{suffix}"] = {k: r["peak_fraction"] for k, r in ep["variants"].items()}
    if identical:
        out["predictions_identical"] = all(identical)
    out["targets"] = {key: {"target": goal, "value": out.get(key), "met": out.get(key) is not None and out[key] >= goal}
                      for key, goal in TARGETS.items()}
    out["headline_model"] = settings["models"][0]
    return out


def _fmt_rate(r):
    g = r.get("gflops_per_s")
    return "-" if g is None or g != g else f"{g:.1f} ({r['peak_fraction']:.0%})"


def markdown(report, settings):
    peak = report.get("peak", {})
    lines = [f"fp32 matmul peak (tf.matmul {peak.get('n')}², {settings['threads']} threads): "
             f"**{peak.get('fp32_gflops', float('nan')):.1f} GFLOP/s**; torch fp32 "
             f"{peak.get('torch_fp32_gflops', float('nan')):.1f}; TensorFlow int8 matmul (int8 x int8 -> int32) "
             f"{peak.get('int8_gops', float('nan')):.1f} GOP/s", "",
             "| model | stage | path | rows | batch | tokens/row | result (wall) | per CPU-second | GFLOP/s (of peak) "
             "| peak RSS MB (+ stage) |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, entry in report["models"].items():
        for stage in ("eval", "train", "epoch"):
            for variant, r in entry.get(stage, {}).get("variants", {}).items():
                key = f"{variant}_{stage}" if variant == "seed" and stage != "eval" else variant
                label = LABELS.get(key, variant).format(maxlen=settings["maxlen"])
                if stage == "eval":
                    rows, tok = r["rows"], r["padded_tokens"] / r["rows"]
                    result, cpu = f"{r['samples_per_s']:.1f} rows/s", f"{r['samples_per_cpu_s']:.1f} rows"
                elif stage == "train":
                    rows, tok = f"{r['steps']} steps", r["padded_tokens"] / r["samples"]
                    result, cpu = f"{r['samples_per_s']:.1f} samples/s", f"{r['samples_per_cpu_s']:.1f} samples"
                else:
                    rows = f"{r['steps']} steps + {r['valid_rows']} + {r['test_rows']}"
                    tok = r["train_padded_tokens"] / r["samples"]
                    result = (f"{r['seconds']:.1f} s (train {r['train_seconds']:.1f} + eval {r['eval_seconds']:.1f}; "
                              f"warm-up {r['warmup_seconds']:.1f})")
                    cpu = f"{r['cpu_seconds']:.1f} CPU-s"
                m = r["memory"]
                lines.append(f"| {name} | {stage} | {label} | {rows} | {r.get('batch_size', 32)} | {tok:.1f} | {result} "
                             f"| {cpu} | {_fmt_rate(r)} | {m['peak_rss_mb']:.0f} (+{m['peak_delta_mb']:.0f}) |")
    lines.append("")
    for name, entry in report["models"].items():
        lines.append(f"- {name}: " + "; ".join(summary_parts(entry)))
    if "threads" in report:
        t = report["threads"]
        lines.append("- threads (tf.config.threading intra x inter): Scorer rows/s (per CPU-s) " + ", ".join(
            f"{k} {v:.1f} ({t['samples_per_cpu_s'][k]:.1f})" for k, v in t["samples_per_s"].items()) +
            "; p-tuning train samples/s (per CPU-s) " + ", ".join(
            f"{k} {v:.1f} ({t['train_samples_per_cpu_s'][k]:.1f})" for k, v in t["train_samples_per_s"].items()))
    lines.append("- (x): the same ratio on CPU seconds (all threads of the stage's process), steadier than wall time "
                 "while other jobs share the CPU; GFLOP/s count the model's matmuls on the padded tokens "
                 "(bench/flops.py), divided by the measured matmul peak")
    lines.append(f"- eval: rows / best of {settings['repeats']} timed passes after a warm-up; {settings['threads']} "
                 f"intra-op threads for TensorFlow and torch; stages isolated by {settings['isolation']}; peak RSS is "
                 f"the stage process's VmHWM, (+) its growth during the stage")
    lines.append(f"- CPU share: the stages used {cpu_share(report):.2f} CPU-seconds per wall second (of "
                 f"{settings['threads']} threads; well below that = other jobs had the CPU, timings are noisy)")
    lines += [f"- note: {n}" for n in notes(report)]
    return "\n".join(lines)


def summary_parts(entry):
    parts = []
    if "eval" in entry:
        e = entry["eval"]
        parts.append("eval " + ", ".join(f"vs {p} **{e[f'speedup_vs_{p}']:.2f}x** ({e[f'speedup_vs_{p}_cpu']:.2f}x)"
                                         for p in PEERS if f"speedup_vs_{p}" in e))
        parts.append(f"predictions identical to {', '.join(e['predictions_compared']) or 'nothing'}: "
                     f"{'yes' if e['predictions_identical'] else 'NO'} (closest call: label margin "
                     f"{e['smallest_label_margin']:.2e})")
        if "int8" in e:
            i = e["int8"]
            parts.append(f"int8 {i['speedup']:.2f}x the fp32 speed ({i['speedup_cpu']:.2f}x), argmax agreement "
                         f"{i['argmax_agreement']:.2%}: {'kept' if i['kept'] else 'not kept'}")
    if "train" in entry:
        t = entry["train"]
        parts += [f"train step p-tuning vs {o} {t[f'speedup_ptuning_vs_{o}']:.2f}x "
                  f"({t[f'speedup_ptuning_vs_{o}_cpu']:.2f}x)" for o in ("seed", "finetune")
                  if f"speedup_ptuning_vs_{o}" in t]
    if "epoch" in entry:
        ep = entry["epoch"]
        if "speedup_vs_seed_path" in ep:
            parts.append(f"epoch vs seed path **{ep['speedup_vs_seed_path']:.2f}x** ({ep['speedup_vs_seed_path_cpu']:.2f}x;"
                         f" first epoch, tracing included: {ep['speedup_vs_seed_path_first_epoch']:.2f}x)")
        if "mirrored_strategy_cost" in ep:
            c = ep["mirrored_strategy_cost"]
            parts.append(f"MirroredStrategy on one device: train time x{c['train']:.2f} (CPU x{c['train_cpu']:.2f})")
        sp = ep["split"]
        parts.append(f"our epoch: train {sp['train_share']:.0%}, eval {sp['eval_share']:.0%}; tracing "
                     f"{sp['tracing_train_s'] + sp['tracing_eval_s']:.1f} s once per run "
                     f"({sp['tracing_share_of_first_epoch']:.0%} of a first epoch)")
    return parts


def cpu_share(report):
    """CPU seconds / wall seconds summed over all stages (loading and warm-up included)."""
    runs = [r for entry in report["models"].values() for stage in entry.values()
            if isinstance(stage, dict) and "variants" in stage for r in stage["variants"].values()]
    wall = sum(r["stage_wall_seconds"] for r in runs)
    return sum(r["stage_cpu_seconds"] for r in runs) / wall if wall else float("nan")


def notes(report):
    """What a reader of the numbers should know about this run's subsets."""
    out = []
    for name, entry in report["models"].items():
        if "eval" in entry:
            fast = entry["eval"]["variants"]["fast"]
            if fast["rows"] <= fast["batch_size"]:
                out.append(f"{name}: {fast['rows']} eval rows are one batch of the fast path, so its length sorting "
                           f"saves little here; the full test set shows its whole gain")
        if "epoch" in entry:
            r = entry["epoch"]["variants"]["ours"]
            if r["passes"] != 50 or r["valid_rows"] < 2111:
                out.append(f"{name}: the epoch is {r['steps']} steps ({r['passes']} pass(es) over {r['train_rows']} "
                           f"rows; the default is 50) evaluated on the first {r['valid_rows']} valid / "
                           f"{r['test_rows']} test rows, the same for every path")
    if "base" in report["models"]:
        out.append("base: random weights (the shape of BERT-base, not its predictions)")
    return out
