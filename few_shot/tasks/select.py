"""How the tasks' defaults were chosen, on dev (never test): zero-shot accuracy of each task's
candidate patterns on dev_<fold> (with the task's verbalizer), and, for the tasks whose category names have
different lengths (iflytek, csldcp), the two ways of scoring them:

    fixed       every label word two characters taken from its name (fixed_length_words), one
                pattern with two [MASK] slots, a label's score the sum of its word's logits
    per-length  the full names (PerLengthVerbalizer, the tasks' default): labels grouped by token
                length L, the row encoded once per L with L [MASK] slots, a label's score the MEAN
                of its tokens' log-probabilities (log-softmax over the vocabulary)

    python -m few_shot.tasks.select --tasks all --fold 0 [--model DIR] [--output select.json]
"""
import argparse
import json
import os
import sys

DEFAULT_ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data",
                                             "fewclue"))
LENGTH_TASKS = ("iflytek", "csldcp")


def zero_shot_accuracy(mlm, pattern, verbalizer, rows, maxlen, batch_size=64):
    from few_shot.builder import build_model
    from few_shot.preprocessor import PromptPreprocessor
    from few_shot.training import Scorer
    pre = PromptPreprocessor(mlm.tokenizer, pattern, verbalizer, maxlen)
    return Scorer(build_model("zeroshot", mlm, pre), batch_size).accuracy(pre.encode(rows))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="all")
    p.add_argument("--data-root", default=DEFAULT_ROOT)
    p.add_argument("--fold", default="0")
    p.add_argument("--model", default=None)
    p.add_argument("--maxlen", type=int, default=128)
    p.add_argument("--output", default=None, help="write the measurements as JSON")
    args = p.parse_args(argv)
    from few_shot.quiet import start_tensorflow
    from few_shot.tasks import TASK_NAMES, get_task
    start_tensorflow()
    from few_shot.loading import load_mlm
    mlm = load_mlm(args.model)
    names = [n for n in TASK_NAMES if os.path.isdir(os.path.join(args.data_root, n))] if args.tasks == "all" \
        else args.tasks.split(",")
    results = {}
    for name in names:
        task = get_task(name)
        dev = task.read(os.path.join(args.data_root, name, f"dev_{args.fold}.json"))
        out = results[name] = {"dev_rows": len(dev), "zero_shot": []}
        for i, pattern in enumerate(task.zero_shot_patterns):
            acc = zero_shot_accuracy(mlm, pattern, task.verbalizer, dev, args.maxlen)
            out["zero_shot"].append({"pattern": pattern, "dev_acc": acc, "default": i == 0})
            print(f"{name}\tdev_{args.fold} ({len(dev)})\t{acc:.4f}\t{pattern}", flush=True)
        if name in LENGTH_TASKS:  # the two ways of scoring label words of different lengths, same pattern
            fixed_words = sys.modules[f"few_shot.tasks.{name}"].FIXED_WORDS
            for pattern, measured in zip(task.zero_shot_patterns, out["zero_shot"]):
                fixed = zero_shot_accuracy(mlm, pattern, fixed_words, dev, args.maxlen)
                per_length = measured["dev_acc"]  # the task's own verbalizer: measured above
                out.setdefault("label_words", []).append({"pattern": pattern, "fixed_2_chars": fixed,
                                                          "per_length_normalised": per_length})
                print(f"{name}\tlabel words on dev_{args.fold}, {pattern}: fixed two characters {fixed:.4f}, full "
                      f"names per length (mean log-prob) {per_length:.4f}", flush=True)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump({"model": args.model or "models/zh-bert-mini", "fold": args.fold, "maxlen": args.maxlen,
                       "tasks": results}, f, indent=2, ensure_ascii=False)
    return results


if __name__ == "__main__":
    main()
