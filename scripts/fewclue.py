#!/usr/bin/env python
"""FewCLUE: every task shape (sentence pairs, 67/119 classes, coreference spans, idiom cloze with
per-row candidates) through one pipeline, as the FewCLUE table: zero-shot, P-tuning, prompt tuning
and finetune over the five few-shot folds, beside the char TF-IDF + LR reference on the same rows.

    python scripts/fewclue.py --tasks all --methods zeroshot,ptuning --folds 0,1,2,3,4
    python scripts/fewclue.py --tasks bustm,chid --methods zeroshot,ptuning --folds 0 --epochs 1 \\
        --passes-per-epoch 1 --max-test 200 --output /tmp/fc

Each run is exactly `python few_shot_ptuning.py --data DATA_ROOT/<task> --task <task>
--fewclue-fold <i>` (or few_shot_finetune.py): it trains on train_<i>, picks the epoch on dev_<i> and
reports test_public accuracy at that epoch. The task's module (few_shot/tasks/<task>.py) gives the
reader, the patterns and the verbalizer. Zero-shot depends on no training rows and test_public is
shared, so it is scored once per task (on the first fold's dev). `--few-all` adds the runs on
train_few_all / dev_few_all. Runs live in OUTPUT/runs/<task>/<method>_f<i>/ and are read back when
the command is repeated (resume). Writes OUTPUT/results.json and OUTPUT/results.md (per task mean ±
std over folds; Score = the mean over the tasks run).
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT_ROOT = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "fewclue"))
METHODS = ("zeroshot", "ptuning", "mlp", "prompt", "finetune")
REFERENCE = "tfidf-lr"


def build_parser():
    from few_shot.cli import Parser, add_run_args
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="all", help="all (every task folder under --data-root) or comma-separated: "
                                                  "bustm,chid,cluewsc,csl,csldcp,eprstmt,iflytek,ocnli,tnews")
    p.add_argument("--data-root", default=DEFAULT_ROOT, help="folder of FewCLUE task folders (default "
                                                             "../shared/data/fewclue)")
    p.add_argument("--methods", default="zeroshot,ptuning", help=f"comma-separated: {', '.join(METHODS)}")
    p.add_argument("--folds", default="0,1,2,3,4", help="comma-separated FewCLUE folds (0-4)")
    p.add_argument("--few-all", action="store_true", help="also train on train_few_all (select on dev_few_all)")
    p.add_argument("--output", default=os.path.join("runs", "fewclue"), help="results folder (resumable)")
    g = p.add_argument_group("passed to every run (defaults: those of the main scripts)")
    add_run_args(g, "ptuning", pass_through=True,
                 exclude=("--data", "--fewclue-fold", "--task", "--pattern", "--verbalizer", "--k", "--train-fraction",
                          "--text-field", "--label-field"))
    return p


def pick_tasks(spec, root):
    from few_shot.errors import FewShotError
    from few_shot.experiments import parse_list
    from few_shot.tasks import TASK_NAMES, get_task
    if spec == "all":
        names = [n for n in TASK_NAMES if os.path.isdir(os.path.join(root, n))]
        if not names:
            raise FewShotError(f"--data-root {root}: no FewCLUE task folder ({', '.join(TASK_NAMES)}) in it")
        return names
    names = parse_list(spec, "--tasks")
    for name in names:  # every name first: a misspelt task is the error to report, whatever the data
        get_task(name)
    for name in names:
        if not os.path.isdir(os.path.join(root, name)):
            raise FewShotError(f"--tasks {name}: no folder {os.path.join(root, name)}; pass --data-root with a {name} "
                               f"folder (train_<i>.json, dev_<i>.json, test_public.json)")
    return names


def cell(values, percent=True):
    from few_shot.experiments import mean_std
    if not values:
        return "-"
    mean, std = mean_std(values)
    k = 100.0 if percent else 1.0
    return f"{k * mean:.2f} ± {k * std:.2f}" if len(values) > 1 else f"{k * mean:.2f}"


def summarise(runs, tasks, methods, split):
    """-> rows of the table for `split` ("folds" or "all"): per method, per task the test accuracies."""
    from few_shot.experiments import mean_std
    rows = []
    for method in methods + [REFERENCE]:
        per_task = {}
        for task in tasks:
            rs = [r for r in runs if r["method"] == method and r["task"] == task
                  and ((r["fold"] == "all") == (split == "all") or method == "zeroshot")]
            if rs:
                mean, std = mean_std([r["test_acc"] for r in rs])
                vmean, _ = mean_std([r["valid_acc"] for r in rs])
                per_task[task] = {"folds": [r["fold"] for r in rs], "n": len(rs), "test_acc_mean": mean,
                                  "test_acc_std": std, "valid_acc_mean": vmean,
                                  "test_accs": [r["test_acc"] for r in rs], "valid_accs": [r["valid_acc"] for r in rs]}
        if per_task:
            complete = len(per_task) == len(tasks)
            score = sum(t["test_acc_mean"] for t in per_task.values()) / len(per_task) if complete else None
            valid_score = sum(t["valid_acc_mean"] for t in per_task.values()) / len(per_task) if complete else None
            rows.append({"method": method, "split": split, "score": score, "valid_score": valid_score,
                         "tasks": per_task})
    return rows


def table(rows, tasks, split="test"):
    lines = ["| method | Score | " + " | ".join(tasks) + " |", "|---|---:|" + "---:|" * len(tasks)]
    for row in rows:
        cells = [cell(row["tasks"][t][f"{split}_accs"]) if t in row["tasks"] else "-" for t in tasks]
        value = row["score"] if split == "test" else row["valid_score"]
        score = "-" if value is None else f"{100 * value:.2f}"
        lines.append(f"| {row['method']} | {score} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None):
    args = build_parser().parse_args(argv)
    from tqdm.auto import tqdm

    from few_shot.errors import user_errors
    from few_shot.errors import FewShotError
    from few_shot.experiments import (base_config, check_all, check_output, classical_reference, options_of,
                                      parse_list, progress, run_one, test_acc, valid_acc, write_report)

    with user_errors():
        tasks = pick_tasks(args.tasks, args.data_root)
        folds = parse_list(args.folds, "--folds", int)
        if any(f not in range(5) for f in folds):
            raise FewShotError(f"--folds {args.folds}: FewCLUE folds are 0-4")
        methods = parse_list(args.methods, "--methods")
        bad = [m for m in methods if m not in METHODS]
        if bad:
            raise FewShotError(f"--methods: unknown {', '.join(bad)}; choose from {', '.join(METHODS)}")
        base = base_config(args)
        splits = [str(f) for f in folds] + (["all"] if args.few_all else [])
        jobs = []
        for task in tasks:
            data = os.path.join(args.data_root, task)
            for method in methods:
                for fold in (splits[:1] if method == "zeroshot" else splits):
                    name = "zeroshot" if method == "zeroshot" else f"{method}_f{fold}"
                    jobs.append((task, method, fold, name,
                                 base.replace(method=method, task=task, data=data, fewclue_fold=fold)))
        check_all([run for *_, run in jobs])  # every task's rows and every option, before the first run
        options = options_of(base)
        check_output(args.output, {"options": options})

        runs = []
        bar = progress(len(jobs), "runs")
        for task, method, fold, name, run in jobs:
            bar.set_postfix_str(f"{task}/{name}")
            metrics, reused = run_one(run, os.path.join(args.output, "runs", task, name))
            runs.append({"task": task, "method": method, "fold": fold, "run": f"{task}/{name}",
                         "test_acc": test_acc(method, metrics), "valid_acc": valid_acc(method, metrics),
                         "best_epoch": metrics.get("best_epoch"),
                         "trainable_params": metrics.get("trainable_params", 0),
                         "train_rows": metrics.get("train_rows"), "seconds": metrics.get("wall_seconds")})
            tqdm.write(f"{task}/{name}: test_acc {runs[-1]['test_acc']:.4f}"
                       f"{' - reused (finished before)' if reused else ''}")
            bar.update(1)
        bar.close()
        for task in tasks:  # the classical reference on each fold's rows (same train, dev and test rows)
            for fold in splits:
                ref = classical_reference(base.replace(method="finetune", task=task,
                                                       data=os.path.join(args.data_root, task), fewclue_fold=fold))
                runs.append({"task": task, "method": REFERENCE, "fold": fold, "run": "", "test_acc": ref["test_acc"],
                             "valid_acc": ref["valid_acc"], "best_epoch": None, "trainable_params": 0,
                             "train_rows": ref["train_rows"], "seconds": None})

        summary = summarise(runs, tasks, methods, "folds")
        few_all = summarise(runs, tasks, methods, "all") if args.few_all else []
        test_rows = f"the first {base.max_test} rows of test_public" if base.max_test else "test_public"
        lines = ["# FewCLUE", "",
                 f"Model {base.model or 'models/zh-bert-mini'}; test accuracy (%) on {test_rows}, the epoch chosen on "
                 f"dev_<i>; mean ± std over folds {','.join(map(str, folds))} (zero-shot: scored once). Score: the "
                 f"mean over the tasks of this table. {REFERENCE}: char 1-3-gram TF-IDF + logistic regression on the "
                 f"same rows. Options: {json.dumps(options, ensure_ascii=False)}.", ""]
        lines += table(summary, tasks)
        dev_rows = f"the first {base.max_valid} rows of dev_<i>" if base.max_valid else "the whole dev_<i>"
        lines += ["", f"Accuracy (%) on {dev_rows} (the split the epoch is chosen on; zero-shot: the first fold's):",
                  ""] + table(summary, tasks, "valid")
        if few_all:
            lines += ["", "train_few_all / dev_few_all:", ""] + table(few_all, tasks)
        write_report(args.output, "results", {"options": options, "tasks": tasks, "methods": methods, "folds": folds,
                                              "few_all": args.few_all, "summary": summary + few_all, "runs": runs},
                     lines)
        print(f"wrote {os.path.join(args.output, 'results.md')} and results.json")


if __name__ == "__main__":
    main()
