#!/usr/bin/env python
"""Few-shot learning curve: test accuracy against the number of labelled rows k, per method.

    python scripts/fewshot_curve.py                                  # k 0,8,16,32,64,168 x 4 methods x 3 seeds
    python scripts/fewshot_curve.py --ks 0,8 --methods zeroshot,ptuning --seeds 1 --epochs 1 --output runs/c
    python scripts/fewshot_curve.py --data ../shared/data/fewclue_tnews --fewclue-fold 0 --verbalizer tnews

Methods: zeroshot (hand-written pattern, untrained MLM), ptuning (BiLSTM+MLP prompt encoder),
prompt (prompt tuning: encoder none), finetune (the whole MLM trains, same pattern).
Each trained run samples k rows with datasets.stratified_sample(train, k, seed) (seeds 1..--seeds),
trains with few_shot.cli.run_training exactly as few_shot_ptuning.py / few_shot_finetune.py would
(same parser, same defaults), picks the epoch on valid and reports test accuracy there.

Zero-shot depends on neither k nor the seed: it is evaluated once and is the k=0 point of the
curve (drawn as a flat dashed line across all k). Trained methods skip k=0 (with no labelled rows
there is nothing to train; their k=0 accuracy would be an untrained soft prompt, not a baseline).

Writes OUTPUT/results.json (every run + mean/std per method and k), results.csv (one row per
run), curve.png (mean +- std band per method) and epochs_<method>_k<k>.png (valid/test accuracy
per epoch, one line per seed). Runs live in OUTPUT/runs/<method>_k<k>_s<seed>/ (log beside them);
rerunning the same command reads finished runs back, so an interrupted curve resumes and a
larger --ks/--seeds only trains what is new.
"""
import argparse
import csv
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")



def build_parser():
    from few_shot.cli import Parser, add_run_args
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ks", default="0,8,16,32,64,168", help="comma-separated k values (0 = zero-shot)")
    p.add_argument("--methods", default="zeroshot,ptuning,prompt,finetune",
                   help="comma-separated: zeroshot, ptuning, prompt (encoder none), finetune")
    p.add_argument("--seeds", type=int, default=3, help="seeds 1..N per trained method and k")
    p.add_argument("--output", default=os.path.join("runs", "fewshot_curve"),
                   help="results folder; rerun with the same one to resume (default runs/fewshot_curve)")
    p.add_argument("--zero-shot-pattern", default=None,
                   help="hand-written pattern for zeroshot (default: the verbalizer's, e.g. [MASK]满意。{text})")
    g = p.add_argument_group("passed to every run (defaults: those of few_shot_ptuning.py / few_shot_finetune.py; "
                             "--pattern: the trained methods' pattern)")
    add_run_args(g, "ptuning", pass_through=True, exclude=("--k", "--seed", "--train-fraction"))
    return p


def plan_runs(methods, ks, seeds):
    """-> [(method, k, seed, run name)]: zeroshot once (k 0, seed 0), trained methods for every k > 0 and seed."""
    runs = []
    if "zeroshot" in methods:
        runs.append(("zeroshot", 0, 0, "zeroshot"))
    for method in methods:
        if method == "zeroshot":
            continue
        for k in ks:
            if k > 0:
                runs += [(method, k, seed, f"{method}_k{k}_s{seed}") for seed in range(1, seeds + 1)]
    return runs


def plan_configs(runs, base, args):
    """RunConfig of each planned run (zero-shot: its own pattern, all of train allowed)."""
    configs = []
    for method, k, seed, _ in runs:
        if method == "zeroshot":
            configs.append(base.replace(method="zeroshot", pattern=args.zero_shot_pattern, train_fraction=1.0))
        else:
            configs.append(base.replace(method=method, k=k, seed=seed))
    return configs


def record(method, k, seed, name, metrics, reused):
    from few_shot.experiments import test_acc, valid_acc
    return {"method": method, "k": k, "seed": seed, "run": name,
            "best_epoch": metrics.get("best_epoch"), "valid_acc": valid_acc(method, metrics),
            "test_acc": test_acc(method, metrics), "trainable_params": metrics.get("trainable_params", 0),
            "train_rows": metrics.get("train_rows", 0), "seconds": metrics.get("wall_seconds"),
            "reused": reused, "epochs": metrics.get("epochs", [])}


def summarise(rows):
    from few_shot.experiments import mean_std
    groups = {}
    for r in rows:
        groups.setdefault((r["method"], r["k"]), []).append(r)
    out = []
    for (method, k), rs in groups.items():
        mean, std = mean_std([r["test_acc"] for r in rs])
        vmean, vstd = mean_std([r["valid_acc"] for r in rs])
        out.append({"method": method, "k": k, "n": len(rs), "test_acc_mean": mean, "test_acc_std": std,
                    "valid_acc_mean": vmean, "valid_acc_std": vstd, "seeds": [r["seed"] for r in rs]})
    return out


def write_results(output, config, rows, summary):
    with open(os.path.join(output, "results.json"), "w", encoding="utf-8") as f:
        json.dump({"config": config, "summary": summary,
                   "runs": [{k: v for k, v in r.items() if k != "epochs"} for r in rows]},
                  f, indent=2, ensure_ascii=False)
    fields = ["method", "k", "seed", "best_epoch", "valid_acc", "test_acc", "trainable_params", "train_rows",
              "seconds", "run"]
    with open(os.path.join(output, "results.csv"), "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def plot_curve(path, ks, methods, summary, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted(set(ks) | {0}) if "zeroshot" in methods else sorted(ks)
    pos = {k: i for i, k in enumerate(ks)}  # equally spaced: k grows roughly geometrically
    by = {(s["method"], s["k"]): s for s in summary}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in methods:
        if method == "zeroshot":
            s = by.get(("zeroshot", 0))
            if s:
                ax.axhline(s["test_acc_mean"], color="gray", linestyle="--", linewidth=1,
                           label=f"zeroshot ({s['test_acc_mean']:.3f})")
                ax.plot([pos[0]], [s["test_acc_mean"]], "o", color="gray")
            continue
        points = [by[(method, k)] for k in ks if (method, k) in by]
        if not points:
            continue
        x = [pos[s["k"]] for s in points]
        mean = [s["test_acc_mean"] for s in points]
        std = [s["test_acc_std"] for s in points]
        line, = ax.plot(x, mean, "o-", label=f"{method} (n={max(s['n'] for s in points)} seeds)")
        ax.fill_between(x, [m - d for m, d in zip(mean, std)], [m + d for m, d in zip(mean, std)],
                        color=line.get_color(), alpha=0.2)
    ax.set_xticks(range(len(ks)), [str(k) for k in ks])
    ax.set_xlabel("k (labelled training rows)")
    ax.set_ylabel("test accuracy (epoch chosen on valid)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_epochs(output, rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {}
    for r in rows:
        if r["method"] != "zeroshot" and r["epochs"]:
            groups.setdefault((r["method"], r["k"]), []).append(r)
    paths = []
    for (method, k), rs in sorted(groups.items()):
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in rs:
            epochs = [e["epoch"] for e in r["epochs"]]
            line, = ax.plot(epochs, [e["valid_acc"] for e in r["epochs"]], "o-", label=f"seed {r['seed']} valid")
            ax.plot(epochs, [e["test_acc"] for e in r["epochs"]], "x--", color=line.get_color(),
                    label=f"seed {r['seed']} test")
            if r["best_epoch"]:
                ax.axvline(r["best_epoch"], color=line.get_color(), alpha=0.3)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{method}, k={k}: per-epoch accuracy (vertical line: epoch chosen on valid)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = os.path.join(output, f"epochs_{method}_k{k}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv=None):
    args = build_parser().parse_args(argv)
    from tqdm.auto import tqdm

    from few_shot.errors import FewShotError, user_errors
    from few_shot.methods import methods as registered
    from few_shot.tasks import load_splits
    from few_shot.experiments import (base_config, check_all, check_output, classical_reference, options_of,
                                      parse_list, progress, run_one)
    from few_shot.tasks import make_verbalizer

    with user_errors():
        methods = parse_list(args.methods, "--methods")
        names = [m.name for m in registered()]
        unknown = [m for m in methods if m not in names]
        if unknown:
            raise FewShotError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(names)}")
        ks = sorted(set(parse_list(args.ks, "--ks", int)))
        if ks[0] < 0:
            raise FewShotError(f"--ks: k={ks[0]} is negative; k counts labelled rows (0 = zero-shot)")
        if args.seeds < 1:
            raise FewShotError(f"--seeds {args.seeds}: need at least 1")
        base = base_config(args)
        n_train = len(load_splits(base.replace(train_fraction=1.0), make_verbalizer(base.verbalizer))[0])
        if ks[-1] > n_train and any(m != "zeroshot" for m in methods):
            raise FewShotError(f"--ks: k={ks[-1]} is more than the {n_train} training rows; use k <= {n_train}")
        runs = plan_runs(methods, ks, args.seeds)
        if not runs:
            raise FewShotError("nothing to run: trained methods need some k > 0 in --ks")
        configs = plan_configs(runs, base, args)
        check_all(configs)  # every run's options and data, before the first one trains
        options = options_of(base)
        config = {"options": options, "zero_shot_pattern": args.zero_shot_pattern}
        check_output(args.output, config)

        rows = []
        bar = progress(len(runs), "runs")
        for (method, k, seed, name), run in zip(runs, configs):
            bar.set_postfix_str(name)
            start = time.time()
            metrics, reused = run_one(run, os.path.join(args.output, "runs", name))
            row = record(method, k, seed, name, metrics, reused)
            rows.append(row)
            how = "reused (finished before)" if reused else f"done in {time.time() - start:.0f}s"
            tqdm.write(f"{name}: test_acc {row['test_acc']:.4f} (valid {row['valid_acc']:.4f}, best epoch "
                       f"{row['best_epoch']}) - {how}")
            bar.update(1)
        bar.close()
        if any(m != "zeroshot" for m in methods):  # the classical reference on the same samples
            for k in (k for k in ks if k > 0):
                for seed in range(1, args.seeds + 1):
                    reference = classical_reference(base.replace(method="finetune", k=k, seed=seed))
                    rows.append(record("tfidf-lr", k, seed, "", reference, False))
            methods = methods + ["tfidf-lr"]
        summary = summarise(rows)
        config.update(ks=ks, methods=methods, seeds=args.seeds)
        write_results(args.output, config, rows, summary)
        model = base.model or "models/zh-bert-mini"
        data = os.path.relpath(base.data)
        plot_curve(os.path.join(args.output, "curve.png"), ks, methods, summary,
                   f"{model} on {data}: test accuracy vs k (mean ± std over seeds)")
        plot_epochs(args.output, rows)
        for s in sorted(summary, key=lambda s: (methods.index(s["method"]), s["k"])):
            print(f"{s['method']:>9} k={s['k']:<4} test_acc {s['test_acc_mean']:.4f} ± {s['test_acc_std']:.4f} "
                  f"(n={s['n']})")
        print(f"wrote {os.path.join(args.output, 'results.json')}, results.csv, curve.png")


if __name__ == "__main__":
    main()
