#!/usr/bin/env python
"""P-tuning ablations on the sentiment set: prompt init, prompt length, prompt encoder.

    python scripts/ablations.py                                   # all groups, 3 seeds, script defaults
    python scripts/ablations.py --k 32 --seeds 5 --epochs 10 --output runs/ablations-k32
    python scripts/ablations.py --epochs 1 --passes-per-epoch 2 --max-test 200 --seeds 1   # smoke run

Each group varies one thing from the base setting (init unused, --base-length 8 prompt tokens
[u1..u4][MASK][u5..u8]{text}, encoder lstm: few_shot_ptuning.py's defaults):
  init     random | vocab | label | unused      (--inits)
  length   1 | 4 | 8 | 16 | 32                  (--lengths; [u1..uN/2][MASK][..uN]{text})
  encoder  none | mlp | lstm                    (--encoders; none = prompt tuning)
Every run is few_shot.cli.run_training with few_shot_ptuning.py's parser and defaults; a setting
shared by several groups (the base) trains once. Runs live in OUTPUT/runs/<name>/ and are read
back when the command is repeated (resume). Writes OUTPUT/ablations.md (test accuracy mean ± std
over seeds, with each setting's trainable-parameter count) and OUTPUT/ablations.json.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

GROUPS = ("init", "length", "encoder")


def build_parser():
    from few_shot.cli import Parser, add_run_args
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3, help="seeds 1..N per setting")
    p.add_argument("--output", default=os.path.join("runs", "ablations"), help="results folder (resumable)")
    p.add_argument("--inits", default="random,vocab,label,unused")
    p.add_argument("--lengths", default="1,4,8,16,32")
    p.add_argument("--encoders", default="none,mlp,lstm")
    p.add_argument("--base-length", type=int, default=8, help="prompt length of the init and encoder groups")
    g = p.add_argument_group("passed to every run (defaults: few_shot_ptuning.py's; without --k the first 1%% "
                             "of train, as the seed)")
    add_run_args(g, "ptuning", pass_through=True, exclude=("--seed", "--pattern"))
    return p


def plan(inits, lengths, encoders, base_length):
    """-> [(group, setting, (init, length, encoder))]."""
    base = {"init": "unused", "length": base_length, "encoder": "lstm"}
    out = []
    for group, values in (("init", inits), ("length", lengths), ("encoder", encoders)):
        for value in values:
            setting = {**base, group: value}
            out.append((group, str(value), (setting["init"], setting["length"], setting["encoder"])))
    return out


def run_name(init, length, encoder, seed):
    return f"init-{init}_len{length}_enc-{encoder}_s{seed}"


def main(argv=None):
    args = build_parser().parse_args(argv)
    from tqdm.auto import tqdm

    from few_shot.errors import user_errors
    from few_shot.errors import FewShotError
    from few_shot.methods import prompt_method
    from few_shot.methods.prompt import ENCODERS, INITS
    from few_shot.experiments import (base_config, check_all, check_output, classical_reference, format_mean_std,
                                      mean_std, options_of, parse_list, progress, run_one, test_acc, valid_acc,
                                      write_report)

    with user_errors():
        inits = parse_list(args.inits, "--inits")
        bad = [i for i in inits if i not in INITS]
        if bad:
            raise FewShotError(f"--inits: unknown {', '.join(bad)}; choose from {', '.join(INITS)}")
        lengths = parse_list(args.lengths, "--lengths", int)
        if min(lengths + [args.base_length]) < 1 or max(lengths + [args.base_length]) > 99:
            raise FewShotError("--lengths/--base-length: prompt lengths must be 1..99 ([u1]..[u99])")
        encoders = parse_list(args.encoders, "--encoders")
        bad = [e for e in encoders if e not in ENCODERS]
        if bad:
            raise FewShotError(f"--encoders: unknown {', '.join(bad)}; choose from {', '.join(ENCODERS)}")
        if args.seeds < 1:
            raise FewShotError(f"--seeds {args.seeds}: need at least 1")
        base = base_config(args)
        settings = plan(inits, lengths, encoders, args.base_length)
        unique = sorted({cfg for _, _, cfg in settings}, key=str)
        jobs = [(cfg, seed) for cfg in unique for seed in range(1, args.seeds + 1)]
        job_configs = {(cfg, seed): base.replace(method=prompt_method(cfg[2]), seed=seed, init=cfg[0],
                                                 prompt_length=cfg[1]) for cfg, seed in jobs}
        check_all(job_configs.values())
        options = options_of(base)
        check_output(args.output, {"options": options})

        results, trained = {}, 0
        bar = progress(len(jobs), "runs")
        for cfg, seed in jobs:
            name = run_name(*cfg, seed)
            bar.set_postfix_str(name)
            metrics, reused = run_one(job_configs[(cfg, seed)], os.path.join(args.output, "runs", name))
            trained += not reused
            results[(cfg, seed)] = {"run": name, "seed": seed, "test_acc": test_acc("ptuning", metrics),
                                    "valid_acc": valid_acc("ptuning", metrics),
                                    "best_epoch": metrics.get("best_epoch"),
                                    "trainable_params": metrics["trainable_params"],
                                    "train_rows": metrics.get("train_rows")}
            tqdm.write(f"{name}: test_acc {results[(cfg, seed)]['test_acc']:.4f}"
                       f"{' - reused (finished before)' if reused else ''}")
            bar.update(1)
        bar.close()

        summary = []
        refs = [classical_reference(base.replace(method="finetune", seed=seed)) for seed in range(1, args.seeds + 1)]
        mean, std = mean_std([r["test_acc"] for r in refs])
        vmean, vstd = mean_std([r["valid_acc"] for r in refs])
        summary.append({"group": "reference", "setting": "char TF-IDF + LR", "init": None, "prompt_length": None,
                        "encoder": None, "trainable_params": 0, "n": len(refs), "test_acc_mean": mean,
                        "test_acc_std": std, "valid_acc_mean": vmean, "valid_acc_std": vstd, "best_epochs": [],
                        "runs": []})
        for group, setting, cfg in settings:
            rs = [results[(cfg, seed)] for seed in range(1, args.seeds + 1)]
            mean, std = mean_std([r["test_acc"] for r in rs])
            vmean, vstd = mean_std([r["valid_acc"] for r in rs])
            summary.append({"group": group, "setting": setting, "init": cfg[0], "prompt_length": cfg[1],
                            "encoder": cfg[2], "trainable_params": rs[0]["trainable_params"], "n": len(rs),
                            "test_acc_mean": mean, "test_acc_std": std, "valid_acc_mean": vmean,
                            "valid_acc_std": vstd, "best_epochs": [r["best_epoch"] for r in rs],
                            "runs": [r["run"] for r in rs]})
        train_rows = sorted({r["train_rows"] for r in results.values()})
        lines = ["# P-tuning ablations", "",
                 f"Model {base.model or 'models/zh-bert-mini'}, data {os.path.relpath(base.data)}, "
                 f"{'/'.join(map(str, train_rows))} labelled train rows, seeds 1..{args.seeds}; test accuracy at "
                 f"the epoch chosen on valid. Base setting: init unused, {args.base_length} prompt tokens, "
                 f"encoder lstm. Options: {json.dumps(options, ensure_ascii=False) if options else '(script defaults)'}.", "",
                 "| group | setting | trainable params | test acc (mean ± std) | valid acc (mean ± std) | n |",
                 "|---|---|---:|---|---|---:|"]
        for s in summary:
            lines.append(f"| {s['group']} | {s['setting']} | {s['trainable_params']:,} | "
                         f"{format_mean_std(s['test_acc_mean'], s['test_acc_std'], s['n'])} | "
                         f"{format_mean_std(s['valid_acc_mean'], s['valid_acc_std'], s['n'])} | {s['n']} |")
        write_report(args.output, "ablations", {"options": options, "seeds": args.seeds, "summary": summary,
                                                "runs": list(results.values())}, lines)
        print(f"trained {trained} new run(s), reused {len(jobs) - trained}; wrote "
              f"{os.path.join(args.output, 'ablations.md')} and ablations.json")


if __name__ == "__main__":
    main()
