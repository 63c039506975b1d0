#!/usr/bin/env python
"""FewCLUE tnews (15 news categories, two-character label words = two [MASK] slots): zero-shot,
P-tuning and full finetune over the five few-shot folds.

    python scripts/tnews.py                                       # folds 0-4, script defaults
    python scripts/tnews.py --folds 0 --epochs 1 --passes-per-epoch 2 --max-test 200 --output /tmp/tn

Each fold trains on train_<i>.json (240 rows), picks the epoch on dev_<i>.json and reports
test_public.json accuracy, exactly as
    python few_shot_ptuning.py --data DATA --fewclue-fold i --verbalizer tnews
    python few_shot_finetune.py --data DATA --fewclue-fold i --verbalizer tnews
would (same parser and defaults; the verbalizer maps each label id to the dataset's own Chinese
name, e.g. 103 -> 体育). Zero-shot (pattern 这是一条[MASK]新闻。{text}) does not depend on the fold's
training rows and test_public is shared, so it is scored once (on fold 0's valid split).
Runs live in OUTPUT/runs/<method>_f<i>/ and are read back when the command is repeated (resume).
Writes OUTPUT/tnews.md (mean ± std test accuracy over folds) and OUTPUT/results.json.
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT_DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "fewclue_tnews"))
METHODS = ("zeroshot", "ptuning", "finetune")


def build_parser():
    from few_shot.cli import Parser, add_run_args
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA, help="FewCLUE tnews folder (default ../shared/data/fewclue_tnews)")
    p.add_argument("--folds", default="0,1,2,3,4", help="comma-separated FewCLUE folds (0-4)")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated: zeroshot, ptuning, finetune")
    p.add_argument("--output", default=os.path.join("runs", "tnews"), help="results folder (resumable)")
    g = p.add_argument_group("passed to every run (defaults: those of the main scripts)")
    add_run_args(g, "ptuning", pass_through=True, exclude=("--data", "--fewclue-fold", "--verbalizer", "--k",
                                                            "--train-fraction"))
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from tqdm.auto import tqdm

    from few_shot.cli import user_errors
    from few_shot.errors import FewShotError
    from few_shot.experiments import (base_config, check_all, check_output, classical_reference, format_mean_std,
                                      mean_std, options_of, parse_list, progress, run_one, test_acc, valid_acc)

    with user_errors():
        folds = parse_list(args.folds, "--folds", int)
        if any(f not in range(5) for f in folds):
            raise FewShotError(f"--folds {args.folds}: FewCLUE folds are 0-4")
        methods = parse_list(args.methods, "--methods")
        bad = [m for m in methods if m not in METHODS]
        if bad:
            raise FewShotError(f"--methods: unknown {', '.join(bad)}; choose from {', '.join(METHODS)}")
        base = base_config(args, data=args.data, verbalizer="tnews")
        jobs = []
        for method in methods:
            for fold in (folds[:1] if method == "zeroshot" else folds):
                name = "zeroshot" if method == "zeroshot" else f"{method}_f{fold}"
                jobs.append((method, fold, name, base.replace(method=method, fewclue_fold=str(fold))))
        check_all([run for *_, run in jobs])
        options = options_of(base)
        check_output(args.output, {"options": options})

        runs = []
        bar = progress(len(jobs), "runs")
        for method, fold, name, run in jobs:
            bar.set_postfix_str(name)
            metrics, reused = run_one(run, os.path.join(args.output, "runs", name))
            runs.append({"method": method, "fold": fold, "run": name, "test_acc": test_acc(method, metrics),
                         "valid_acc": valid_acc(method, metrics), "best_epoch": metrics.get("best_epoch"),
                         "trainable_params": metrics.get("trainable_params", 0),
                         "train_rows": metrics.get("train_rows"), "seconds": metrics.get("wall_seconds")})
            tqdm.write(f"{name}: test_acc {runs[-1]['test_acc']:.4f}"
                       f"{' - reused (finished before)' if reused else ''}")
            bar.update(1)
        bar.close()
        for fold in folds:  # the classical reference on each fold's rows
            ref = classical_reference(base.replace(method="finetune", fewclue_fold=str(fold)))
            runs.append({"method": "tfidf-lr", "fold": fold, "run": "", "test_acc": ref["test_acc"],
                         "valid_acc": ref["valid_acc"], "best_epoch": None, "trainable_params": 0,
                         "train_rows": ref["train_rows"], "seconds": None})

        summary = []
        for method in methods + ["tfidf-lr"]:
            rs = [r for r in runs if r["method"] == method]
            mean, std = mean_std([r["test_acc"] for r in rs])
            vmean, vstd = mean_std([r["valid_acc"] for r in rs])
            summary.append({"method": method, "folds": [r["fold"] for r in rs], "n": len(rs),
                            "test_acc_mean": mean, "test_acc_std": std, "valid_acc_mean": vmean,
                            "valid_acc_std": vstd, "trainable_params": rs[0]["trainable_params"]})
        with open(os.path.join(args.output, "results.json"), "w", encoding="utf-8") as f:
            json.dump({"options": options, "summary": summary, "runs": runs}, f, indent=2, ensure_ascii=False)
        lines = ["# FewCLUE tnews (15 classes)", "",
                 f"Model {base.model or 'models/zh-bert-mini'}; train_<i> / dev_<i> (epoch choice) / "
                 f"test_public{f' (first {base.max_test} rows)' if base.max_test else ''}; "
                 f"folds {','.join(map(str, folds))}. Zero-shot is fold-independent on test and scored once. "
                 f"Options: {json.dumps(options, ensure_ascii=False)}.", "",
                 "| method | folds | trainable params | test acc (mean ± std) | valid acc (mean ± std) |",
                 "|---|---|---:|---|---|"]
        for s in summary:
            lines.append(f"| {s['method']} | {','.join(map(str, s['folds']))} | {s['trainable_params']:,} | "
                         f"{format_mean_std(s['test_acc_mean'], s['test_acc_std'], s['n'])} | "
                         f"{format_mean_std(s['valid_acc_mean'], s['valid_acc_std'], s['n'])} |")
        with open(os.path.join(args.output, "tnews.md"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        print("\n".join(lines[4:]))
        print(f"wrote {os.path.join(args.output, 'tnews.md')} and results.json")


if __name__ == "__main__":
    main()
