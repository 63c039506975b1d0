#!/usr/bin/env python
"""FewCLUE tnews: an alias of `scripts/fewclue.py --tasks tnews` (zero-shot, P-tuning and finetune
by default, results in runs/tnews). Every other option is fewclue.py's:

    python scripts/tnews.py --folds 0 --epochs 1 --passes-per-epoch 2 --max-test 200 --output /tmp/tn
    python scripts/fewclue.py --tasks tnews --methods zeroshot,ptuning,finetune --folds 0 ...   # the same
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    import fewclue
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--tasks" or a.startswith("--tasks=") for a in argv):
        print("error: scripts/tnews.py runs tnews only; use scripts/fewclue.py --tasks for others", file=sys.stderr)
        sys.exit(2)
    defaults = ["--tasks", "tnews", "--methods", "zeroshot,ptuning,finetune", "--output", os.path.join("runs", "tnews")]
    return fewclue.main(defaults + argv)  # argparse: a later --methods/--output overrides these


if __name__ == "__main__":
    main()
