#!/usr/bin/env python
"""The prompt methods of PPT and the prompt-tuning studies side by side (issue 25's table): vanilla prompt
tuning, + class-label init, changed prompt tuning, hybrid prompt, PPT-initialised prompt tuning (the
format of the task's shape, and unified), P-tuning, and the char TF-IDF + LR reference, on sentiment
(168 rows, seeds 1-3) and FewCLUE bustm, ocnli, csl (pairs), chid (multiple choice), tnews (single
sentence; folds 0-2), epoch chosen on valid/dev, test accuracy reported (mean ± std).

    python scripts/pretrain_prompts.py --corpus ../shared/data/corpus/zh_corpus.txt --output runs/ppt
    python scripts/prompt_methods.py --ppt runs/ppt --output runs/prompt_methods

Every training is `python few_shot_ptuning.py ...` in its own process (the command is in each run's
folder and in the JSON), so memory stays that of one run; finished runs are reused (resumable).
Writes docs/results/prompt_methods.json and docs/results/ppt_cost.json (--json-dir), then
`python scripts/docs_tables.py` puts them into docs/methods/ppt.md.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
FEWCLUE = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "fewclue"))
SHAPE = {"sentiment": "single", "tnews": "single", "bustm": "pair", "ocnli": "pair", "csl": "pair", "chid": "choice"}
# (row name, few_shot_ptuning.py arguments; {ppt} is the prompt file of the task's format, {unified} the unified one)
METHODS = [("prompt tuning (8 rows, [unused] init)", ["--encoder", "none"]),
           ("prompt tuning, class-label init", ["--encoder", "none", "--init", "label"]),
           ("changed prompt tuning (class-label init)", ["--changed", "--init", "label"]),
           ("hybrid prompt (4 soft tokens + hand-written)", ["--hybrid"]),
           ("PPT: prompt tuning from the task shape's format", ["--encoder", "none", "--prompt-init", "{ppt}"]),
           ("PPT: prompt tuning from unified", ["--encoder", "none", "--prompt-init", "{unified}"]),
           ("P-tuning (BiLSTM + MLP encoder)", [])]
REFERENCE = "char 1-3-gram TF-IDF + LR (reference)"


def task_args(task, seed):
    """The data arguments of a task: sentiment's first 1% with seed 1..3, a FewCLUE task's fold 0..2."""
    if task == "sentiment":
        return ["--seed", str(seed)]
    return ["--task", task, "--data", os.path.join(FEWCLUE, task), "--fewclue-fold", str(seed - 1), "--seed", "1"]


def run(args, out):
    """One training (reused when its metrics.json says completed) -> metrics."""
    path = os.path.join(out, "metrics.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            metrics = json.load(f)
        if metrics.get("status") == "completed":
            return metrics
    command = [sys.executable, os.path.join(ROOT, "few_shot_ptuning.py"), *args, "--output", out,
               *(["--overwrite"] if os.path.isdir(out) else [])]
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".log", "w", encoding="utf-8") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ,
                                                                                  "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode != 0:
        from few_shot.errors import FewShotError
        raise FewShotError(f"{shlex.join(command)} failed ({done.returncode}); see {out}.log")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def reference(task, seed, args):
    """The TF-IDF + LR row on exactly the rows the runs train and are tested on."""
    from few_shot.cli import Parser, add_prompt_args, add_run_args, config_from_args
    from few_shot.experiments import classical_reference
    from few_shot.methods import add_method_args
    parser = Parser()
    add_run_args(parser, "ptuning")
    add_prompt_args(parser)
    add_method_args(parser, "ptuning")
    config = config_from_args(parser.parse_args(task_args(task, seed) + args), "ptuning")
    return classical_reference(config)


def cell(values):
    """{mean, std (sample), values} of a table cell."""
    from few_shot.experiments import mean_std
    mean, std = mean_std(values)
    return {"mean": round(mean, 4), "std": round(std, 4), "values": [round(v, 4) for v in values]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ppt", required=True, help="the --output folder of scripts/pretrain_prompts.py")
    p.add_argument("--output", default="runs/prompt_methods")
    p.add_argument("--tasks", default="sentiment,bustm,chid,tnews,ocnli,csl")
    p.add_argument("--seeds", type=int, default=3, help="seeds 1..N (sentiment) / folds 0..N-1 (FewCLUE)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--passes-per-epoch", type=int, default=4)
    p.add_argument("--max-valid", type=int, default=600, help="sentiment valid rows (FewCLUE dev is whole)")
    p.add_argument("--max-test", type=int, default=1000, help="sentiment test rows (FewCLUE test_public is whole)")
    p.add_argument("--json-dir", default=os.path.join(ROOT, "docs", "results"))
    args = p.parse_args(argv)
    from few_shot.errors import FewShotError, user_errors
    with user_errors():
        tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
        unknown = [t for t in tasks if t not in SHAPE]
        if unknown or not tasks or args.seeds < 1:
            raise FewShotError(f"--tasks {','.join(unknown)} --seeds {args.seeds}: choose tasks from "
                               f"{', '.join(SHAPE)} and --seeds >= 1")
        files = {fmt: os.path.join(args.ppt, f"{fmt}.safetensors") for fmt in ("pair", "choice", "single", "unified")}
        missing = sorted(f for f in {files[SHAPE[t]] for t in tasks} | {files["unified"]} if not os.path.isfile(f))
        if missing:
            raise FewShotError(f"{missing[0]}: not found; run scripts/pretrain_prompts.py --output {args.ppt} first")
        run_all(args, tasks, files)


def run_all(args, tasks, files):
    common = ["--epochs", str(args.epochs), "--passes-per-epoch", str(args.passes_per_epoch), "--maxlen", "128"]
    results = {name: {} for name, _ in METHODS + [(REFERENCE, None)]}
    t0, total, done = time.time(), len(tasks) * args.seeds * len(METHODS), 0
    for task in tasks:
        limits = ["--max-valid", str(args.max_valid), "--max-test", str(args.max_test)] if task == "sentiment" else []
        for name, method in METHODS:
            accs = []
            for seed in range(1, args.seeds + 1):
                extra = [a.format(ppt=files[SHAPE[task]], unified=files["unified"]) for a in method]
                slug = f"{task}/{METHODS.index((name, method))}-s{seed}"
                metrics = run(task_args(task, seed) + common + limits + extra, os.path.join(args.output, slug))
                accs.append(metrics["test_acc_at_best"])
                done += 1
                print(f"[{done}/{total}, {time.time() - t0:.0f} s] {task} {name} seed/fold {seed}: test "
                      f"{accs[-1]:.4f} (valid {metrics['best_valid_acc']:.4f})", flush=True)
            results[name][task] = cell(accs)
        results[REFERENCE][task] = cell([reference(task, s, common + limits)["test_acc"]
                                         for s in range(1, args.seeds + 1)])
        write_tables(args, tasks[:tasks.index(task) + 1], results)  # after every task: a partial table is usable
    print(f"wrote {args.json_dir}/prompt_methods.json and ppt_cost.json; now: python scripts/docs_tables.py")


def write_tables(args, tasks, results):
    command = ["python scripts/pretrain_prompts.py --corpus ../shared/data/corpus/zh_corpus.txt --output "
               f"{args.ppt} (see ppt_cost)",
               f"python scripts/prompt_methods.py --ppt {args.ppt} --output {args.output} --tasks {','.join(tasks)} "
               f"--seeds {args.seeds} --epochs {args.epochs} --passes-per-epoch {args.passes_per_epoch} "
               f"--max-valid {args.max_valid} --max-test {args.max_test}"]
    table = {"title": "Prompt methods of PPT and the prompt-tuning studies (bundled demo model)",
             "command": command, "source": f"{args.output}/*/metrics.json (test_acc_at_best)",
             "protocol": (f"Bundled zh-bert-mini (4 layers, hidden 256). Reduced protocol: {args.epochs} epochs of "
                          f"{args.passes_per_epoch} passes over the labelled rows, maxlen 128; the epoch chosen on "
                          f"valid/dev, test accuracy at it; mean ± std over sentiment seeds 1-{args.seeds} (first 1% "
                          f"of train = 168 rows; valid = first {args.max_valid}, test = first {args.max_test} rows) "
                          f"and FewCLUE folds 0-{args.seeds - 1} (train_i/dev_i, the whole test_public). PPT "
                          f"prompts: 8 rows pre-trained on the corpus (test texts removed) in the task shape's "
                          f"format (pair: bustm/ocnli/csl, choice: chid, single: sentiment/tnews) or unified."),
             "columns": [{"name": "method", "align": "left"}] +
                        [{"name": t, "align": "left", "fmt": ".4f"} for t in tasks],
             "rows": [[name] + [results[name].get(t) for t in tasks] for name in results]}
    os.makedirs(args.json_dir, exist_ok=True)
    with open(os.path.join(args.json_dir, "prompt_methods.json"), "w", encoding="utf-8") as f:
        json.dump(table, f, indent=1, ensure_ascii=False)
    write_ppt_cost(args.ppt, args.json_dir)


def write_ppt_cost(ppt, json_dir):
    with open(os.path.join(ppt, "ppt_log.json"), encoding="utf-8") as f:
        log = json.load(f)
    c = log["config"]
    rows = [[fmt, e["steps"], e["tokens"], round(e["train_seconds"] / 60, 1), e["tokens_per_second"],
             {"pair": [round(e["loss_first20"], 3), round(e["loss_last20"], 3)]}, e["held_out_accuracy"]]
            for fmt, e in log["formats"].items()]
    table = {"title": "What the prompt pretraining cost (this 2-core CPU)",
             "command": f"python scripts/pretrain_prompts.py --corpus ../shared/data/corpus/zh_corpus.txt --output "
                        f"{ppt} --steps {c['steps']} --save-every {c['save_every']} --batch-size {c['batch_size']} "
                        f"--pseudo-labels {c['pseudo_labels']}",
             "source": f"{ppt}/ppt_log.json",
             "protocol": (f"Frozen bundled MLM, {c['prompt_length']} prompt rows, Adam lr {c['lr']}, batches of "
                          f"{c['batch_size']}, {log['documents_used']} documents ({log['sentences']} sentences) after "
                          f"removing {sum(log['removed_test_documents'].values())} document hits of evaluation test "
                          f"texts; single/unified pseudo-labels: {log.get('pseudo_labels', {}).get('kept')} sentences "
                          f"kept of {log.get('pseudo_labels', {}).get('sentences_scored')} scored zero-shot by the "
                          f"frozen MLM (no labelled data). Held-out accuracy: 64 examples of later steps."),
             "columns": [{"name": "format", "align": "left"}, {"name": "steps", "align": "right"},
                         {"name": "tokens", "align": "right", "fmt": ","},
                         {"name": "minutes", "align": "right", "fmt": ".1f"},
                         {"name": "tokens/s", "align": "right", "fmt": ",.0f"},
                         {"name": "loss first 20 → last 20 steps", "align": "left", "fmt": ".3f"},
                         {"name": "held-out accuracy", "align": "right", "fmt": ".3f"}],
             "rows": rows}
    with open(os.path.join(json_dir, "ppt_cost.json"), "w", encoding="utf-8") as f:
        json.dump(table, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
