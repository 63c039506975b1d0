#!/usr/bin/env python
"""Speed, memory and FLOP rates of few_shot's inference and training against its peers, each run the
way its users run it, measured on this machine in one run on the same encoded rows.

    python scripts/benchmark.py --quick --json runs/bench_quick.json     # mini, eval + epoch, minutes
    python scripts/benchmark.py --models mini --json runs/bench_mini.json   # every stage, the whole test set
    python scripts/benchmark.py --models base --base-rows 256 --passes 1 --epoch-eval-rows 128 \\
        --base-stages eval,train,epoch --json runs/bench_base.json         # BERT-base shape

Models: `mini` (the bundled models/zh-bert-mini, 4 layers, hidden 256), `base` (BERT-base shape, 12 layers,
hidden 768, random weights: transformers' BertForMaskedLM saved to a temporary folder and loaded from
there by every path), or a path to a HF BERT folder. Pattern [u1][u2][u3][u4][MASK][u5][u6][u7][u8]{text},
verbalizer 1:很,0:不, maxlen 128: the main scripts' defaults.

Stages (each in its own forked process, so peak memory and threads are per stage):
  peak    once: fp32 tf.matmul 2048^2 (every GFLOP/s is divided by it), int8 and torch matmuls
  eval    label scores of the first --rows test rows (bench/ours.py, bench/peers.py):
            fast                  few_shot: build_model + training.Scorer (what the scripts run)
            fast_xla, fast_int8   the same with XLA / with Keras' model.quantize("int8") (references)
            transformers_dynamic  BertForMaskedLM, batches of 32 in data order padded per batch, full logits
            transformers_grouped  the same, rows grouped by length (group_by_length)
            transformers_grouped_at_mask, transformers_padded, naive   references (at-[MASK] head in
                                  torch; padded to maxlen in torch; padded to maxlen in Keras)
            seed                  the seed's eval loop (torch re-implementation, bench/seed.py)
          the untrained, seeded prompt reaches every path (folded into the [unusedN] rows, or the prompt
          encoder's weights copied into the seed's); argmax must agree on every row.
  train   steps/s after warm-up: p-tuning, finetune (train_on_batch), the seed's step (torch)
  epoch   one p-tuning epoch: few_shot as run_training runs it (MirroredStrategy, fit on the bucketed
          tf.data batches, Scorer on valid and test), split into tracing, train and eval; the seed's path
          the same number of steps on its own batches, then its eval loop on valid and test
          (ours_none: the same without MirroredStrategy, the cost of the strategy on one device)
  threads Scorer rows/s and train steps/s under tf.config.threading intra x inter settings
Writes --json (headline keys, ratios, raw timings, machine, load, command) and prints a markdown table.
"""
import argparse
import json
import os
import sys
import tempfile
import time
import warnings

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(SCRIPTS)
for path in (REPO, SCRIPTS):
    if path not in sys.path:
        sys.path.insert(0, path)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench import common, ours, peers, report  # noqa: E402

STAGES = ("eval", "train", "epoch", "threads")
EVAL_VARIANTS = ("fast", "fast_xla", "fast_int8", "transformers_dynamic", "transformers_grouped",
                 "transformers_grouped_at_mask", "transformers_padded", "seed", "naive")
QUICK_EVAL = ("fast", "transformers_dynamic", "transformers_grouped", "seed")
# --quick: mini, 256 eval rows, a 6-step epoch; the full defaults take most of an hour per model on 2 cores
EPOCH_VARIANTS = ("ours", "ours_none", "seed")
QUICK = dict(models="mini", stages="eval,epoch", rows=256, base_rows=32, repeats=1, train_steps=3, passes=1,
             epoch_eval_rows=64, eval_variants=",".join(QUICK_EVAL), epoch_variants="ours,seed")
FULL = dict(models="mini,base", stages="eval,train,epoch,threads", rows=None, base_rows=256, repeats=1,
            train_steps=10, passes=50, epoch_eval_rows=None, eval_variants=",".join(EVAL_VARIANTS),
            epoch_variants=",".join(EPOCH_VARIANTS))


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
    a("--stages", default=None, help="comma-separated subset of " + ",".join(STAGES) + " " + default("stages"))
    a("--base-stages", default="eval", help="stages run on the base model (default eval: training it on 2 CPU "
                                            "cores takes seconds per step)")
    a("--eval-variants", default=None, help="comma-separated eval paths (fast is always run) " +
      default("eval_variants"))
    a("--epoch-variants", default=None, help="comma-separated epoch paths (ours is always run; ours_none: "
                                              "without MirroredStrategy) " + default("epoch_variants"))
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


def resolve_settings(args):
    """--quick / full defaults filled in, checked."""
    from few_shot.errors import FewShotError
    defaults = QUICK if args.quick else FULL
    s = {key: getattr(args, key) if getattr(args, key) is not None else value for key, value in defaults.items()}

    def names(text):
        return [x.strip() for x in text.split(",") if x.strip()]
    models, stages, base_stages, variants, epochs = (names(x) for x in (s["models"], s["stages"], args.base_stages,
                                                                        s["eval_variants"], s["epoch_variants"]))
    bad = [x for x in stages + base_stages if x not in STAGES] + [v for v in variants if v not in EVAL_VARIANTS] + \
        [v for v in epochs if v not in EPOCH_VARIANTS]
    if bad:
        raise FewShotError(f"--stages/--base-stages/--eval-variants/--epoch-variants: unknown {', '.join(bad)}; "
                           f"choose stages from {', '.join(STAGES)}, eval variants from {', '.join(EVAL_VARIANTS)}, "
                           f"epoch variants from {', '.join(EPOCH_VARIANTS)}")
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
    if isolation == "fork" and common.tensorflow_started():
        warnings.warn("TensorFlow already runs in this process, so stages cannot be forked safely; running them "
                      "in-process (--isolation none): peak memory numbers overlap")
        isolation = "none"
    variants = ["fast"] + [v for v in variants if v != "fast"]
    epochs = ["ours"] + [v for v in epochs if v != "ours"]
    return dict(s, models=models, stages=stages, base_stages=base_stages, eval_variants=variants, epoch_variants=epochs,
                maxlen=args.maxlen, seed=args.seed, threads=threads, isolation=isolation)


def stage_variants(stage, settings):
    t = settings["threads"]
    return {"eval": settings["eval_variants"], "train": ["ptuning", "finetune", "seed"], "epoch": settings["epoch_variants"],
            "threads": [f"{t}x1", f"{t}x{t}", "1x1"]}[stage]


def plan_stages(settings):
    """-> [(model, stage, variant)] in run order (the progress bar's length)."""
    plan = [("machine", "peak", "fp32 matmul")]
    for name in settings["models"]:
        if name == "base":
            plan.append((name, "setup", "random BERT-base"))
        for stage in settings["base_stages"] if name == "base" else settings["stages"]:
            plan += [(name, stage, v) for v in stage_variants(stage, settings)]
    return plan


def stage_call(stage, variant, results):
    """-> (function, kwargs) of one variant; eval peers take the fast path's prompt."""
    fast = results.get("fast", {})
    if stage == "eval":
        prompts = {"prompts": fast.get("prompts")}
        return {"fast": (ours.stage_eval_fast, {}), "fast_xla": (ours.stage_eval_fast, {"jit_compile": True}),
                "fast_int8": (ours.stage_eval_fast, {"quantize": "int8"}),
                "transformers_dynamic": (peers.stage_eval_transformers, dict(prompts, batching="dynamic")),
                "transformers_grouped": (peers.stage_eval_transformers, dict(prompts, batching="grouped")),
                "transformers_grouped_at_mask": (peers.stage_eval_transformers,
                                                 dict(prompts, batching="grouped", head="mask")),
                "transformers_padded": (peers.stage_eval_transformers, dict(prompts, batching="padded")),
                "seed": (peers.stage_eval_seed, {"prompt_weights": fast.get("prompt_weights")}),
                "naive": (ours.stage_eval_naive, prompts)}[variant]
    if stage == "train":
        return (peers.stage_train_seed, {}) if variant == "seed" else (ours.stage_train_step, {"method": variant})
    if stage == "epoch":
        return {"ours": (ours.stage_epoch, {}), "ours_none": (ours.stage_epoch, {"strategy": "none"}),
                "seed": (peers.stage_epoch_seed, {})}[variant]
    intra, inter = (int(x) for x in variant.split("x"))
    return ours.stage_threads, {"intra": intra, "inter": inter}


def run_benchmark(settings, data_folder, progress=True):
    """All stages -> the report dict (see the module docstring)."""
    import shutil

    from tqdm.auto import tqdm

    from few_shot.paths import DEFAULT_MODEL
    plan = plan_stages(settings)
    rows = common.load_rows(data_folder)
    iso = settings["isolation"]
    out = {"models": {}}
    bar = tqdm(total=len(plan), desc="benchmark", unit="stage", file=sys.stderr, dynamic_ncols=True,
               disable=not progress)
    tmp = tempfile.mkdtemp(prefix="few_shot_bench_")
    try:
        bar.set_postfix_str("fp32 matmul peak")
        out["peak"] = common.run_stage(ours.stage_peak, iso, settings=settings)
        peak = out["peak"]["fp32_gflops"]
        bar.update(1)
        tqdm.write(f"peak: {peak:.1f} GFLOP/s fp32 matmul", file=sys.stderr)
        for name in settings["models"]:
            model_dir = {"mini": DEFAULT_MODEL}.get(name, name)
            entry = out["models"].setdefault(name, {})
            if name == "base":
                bar.set_postfix_str("base: random BERT-base to a temporary HF folder")
                model_dir = os.path.join(tmp, "bert-base-random")
                entry["setup"] = common.run_stage(peers.stage_make_base, iso, folder=model_dir, seed=settings["seed"],
                                                  vocab_path=os.path.join(DEFAULT_MODEL, "vocab.txt"))
                bar.update(1)
            bench = common.make_bench(name, model_dir, rows, settings,
                                      settings["base_rows"] if name == "base" else settings["rows"])
            entry.update(path=model_dir if name != "base" else "(random weights, temporary folder)",
                         config=bench.shape)
            for stage in settings["base_stages"] if name == "base" else settings["stages"]:
                results = {}
                for variant in stage_variants(stage, settings):
                    bar.set_postfix_str(f"{name}: {stage} {variant}")
                    fn, kwargs = stage_call(stage, variant, results)
                    results[variant] = common.run_stage(fn, iso, bench=bench, **kwargs)
                    bar.update(1)
                    tqdm.write(f"{name} {stage} {variant}: {headline_of(stage, results[variant])} "
                               f"(load {common.load_average()})", file=sys.stderr)
                entry[stage] = {"eval": lambda r: report.finish_eval(r, peak),
                                "train": lambda r: report.finish_train(r, peak),
                                "epoch": lambda r: report.finish_epoch(r, peak),
                                "threads": report.finish_threads}[stage](results)
            if "threads" in entry:
                out["threads"] = entry.pop("threads")
    finally:
        bar.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def headline_of(stage, result):
    if stage == "epoch":
        return (f"{result['seconds']:.1f} s (train {result['train_seconds']:.1f} s + eval "
                f"{result['eval_seconds']:.1f} s; warm-up {result['warmup_seconds']:.1f} s)")
    return f"{result['samples_per_s']:.1f} samples/s ({result['samples_per_cpu_s']:.1f} per CPU-s)"


def rows_summary(out):
    summary = {}
    for name, entry in out["models"].items():
        summary[name] = {}
        if "eval" in entry:
            summary[name]["eval"] = entry["eval"]["variants"]["fast"]["rows"]
        if "train" in entry:
            r = entry["train"]["variants"]["ptuning"]
            summary[name]["train_step"] = {"steps": r["steps"], "batch_size": r["batch_size"]}
        if "epoch" in entry:
            r = entry["epoch"]["variants"]["ours"]
            summary[name]["epoch"] = {k: r[k] for k in ("train_rows", "passes", "steps", "valid_rows", "test_rows")}
    return summary


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    from few_shot.errors import user_errors
    from few_shot.paths import DEFAULT_DATA
    from few_shot.errors import FewShotError

    with user_errors():
        settings = resolve_settings(args)
        import keras
        if keras.backend.backend() != "tensorflow":
            raise FewShotError(f"the benchmark measures the TensorFlow backend (tf.function, XLA, tf.data); "
                               f"KERAS_BACKEND is {keras.backend.backend()}; run with KERAS_BACKEND=tensorflow")
        info = common.machine_info()
        start = time.time()
        out = run_benchmark(settings, args.data or DEFAULT_DATA)
        info["load_average_end"] = common.load_average()
        table = report.markdown(out, settings)
        result = {**report.headline(out, settings), "wall_seconds": round(time.time() - start, 1),
                  "command": [os.path.relpath(os.path.abspath(__file__))] + argv, "quick": args.quick,
                  "settings": settings, "machine": info, "rows": rows_summary(out),
                  "cpu_share": report.cpu_share(out), "notes": report.notes(out), "table": table, **out}
        print(table)
        if args.json:
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(common.plain(result), f, indent=2, ensure_ascii=False)
            print(f"wrote {args.json}")
        return result


if __name__ == "__main__":
    main()
