#!/usr/bin/env python
"""Pretrain a Chinese BERT masked-LM (from scratch or continued) on plain text, one document per line.

    python scripts/pretrain_mlm.py --corpus zh_corpus.txt --layers 2 --hidden 64 --heads 2 \\
        --maxlen 64 --steps 30 --output runs/tiny
    python scripts/pretrain_mlm.py --corpus zh_corpus.txt --init-from models/zh-bert-mini \\
        --whole-word --steps 2000 --probe data/sentiment/sentiment.valid.data --output runs/wwm

Writes DIR/checkpoint/ (every --save-every steps and at the end; --resume continues it),
DIR/hf/ (HuggingFace), DIR/google/ (Google/bert4keras; needs TensorFlow) and DIR/pretrain_log.json.
Progress: a bar on a terminal; otherwise (or with --no-progress) a status line every --progress-every seconds.
Runs on any Keras backend (KERAS_BACKEND=tensorflow|torch|jax); under TensorFlow it trains with
tf.distribute.MirroredStrategy over all local GPUs (else the CPU).
"""
import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where argparse holds one (None means: resolved later, said in the help)."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def build_parser():
    from few_shot.argtypes import positive_float
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=_HelpFormatter)
    d = p.add_argument_group("data")
    d.add_argument("--corpus", nargs="+", required=True, metavar="FILE",
                   help="UTF-8 text file(s), one document per line")
    d.add_argument("--on-bad-line", choices=("stop", "skip"), default="stop",
                   help="non-UTF-8 lines: stop with their line numbers, or skip them with a warning")
    d.add_argument("--maxlen", type=int, help="block length in tokens (default 128)")
    d.add_argument("--whole-word", action="store_true", default=None,
                   help="mask whole jieba words (Chinese BERT-wwm) instead of single tokens")
    d.add_argument("--mask-rate", type=float, help="share of non-special tokens to predict (default 0.15)")
    d.add_argument("--max-predictions", type=int, help="masked positions per block (default ceil(maxlen*rate))")
    m = p.add_argument_group("model (from scratch; --init-from fixes them)")
    m.add_argument("--init-from", metavar="PATH",
                   help="continue pretraining this checkpoint (any folder load_mlm reads, or a hub id)")
    m.add_argument("--vocab", metavar="FILE",
                   help="vocab.txt (default: the bundled models/zh-bert-mini/vocab.txt, or the checkpoint's)")
    m.add_argument("--layers", type=int, help="default 4")
    m.add_argument("--hidden", type=int, help="default 256")
    m.add_argument("--heads", type=int, help="default 4")
    m.add_argument("--intermediate", type=int, help="default 4*hidden")
    m.add_argument("--max-position", type=int, help="position embeddings (default max(512, maxlen))")
    t = p.add_argument_group("training")
    t.add_argument("--steps", type=int, default=1000, help="total optimizer steps (a resumed run counts on)")
    t.add_argument("--batch-size", type=int, help="blocks per step, over all replicas (default 32)")
    t.add_argument("--lr", type=float, help="peak AdamW learning rate (default 1e-3, 1e-4 with --init-from)")
    t.add_argument("--warmup-steps", type=int, help="linear warm-up, then linear decay to 0 (default steps/10)")
    t.add_argument("--weight-decay", type=float, help="AdamW decoupled weight decay, not on LayerNorm/biases "
                                                       "(default 0.01)")
    t.add_argument("--clip-norm", type=float, help="global gradient-norm clip, 0 = off (default 1.0)")
    t.add_argument("--seed", type=int, help="data order, masking and initialisation (default 0)")
    t.add_argument("--mixed-precision", action="store_true",
                   help="bf16 compute with float32 weights (Keras mixed_bfloat16), for GPUs/TPUs")
    t.add_argument("--max-minutes", type=float, metavar="M",
                   help="stop cleanly after M minutes of wall time (checkpoint + export); the learning-rate "
                        "schedule still follows --steps")
    o = p.add_argument_group("output")
    o.add_argument("--output", required=True, metavar="DIR")
    o.add_argument("--save-every", type=int, default=500, help="checkpoint to DIR/checkpoint every N steps")
    o.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint (step count, optimizer "
                                                         "state and data position)")
    o.add_argument("--overwrite", action="store_true", help="replace the outputs of a previous run in DIR")
    o.add_argument("--probe", metavar="TSV", help="zero-shot probe at each checkpoint on text<TAB>label rows: "
                                                  "[MASK]满意。{text}, 很=1 / 不=0")
    o.add_argument("--probe-limit", type=int, metavar="N", help="use only the first N probe rows")
    o.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar on a terminal: status lines instead, as when the output is not a terminal")
    o.add_argument("--progress-every", dest="progress_seconds", type=positive_float, default=60.0, metavar="SECONDS",
                   help="without a progress bar (--no-progress, or stdout not a terminal: CI, nohup), print a "
                        "status line (step/total, loss, tokens/s, elapsed, ETA) this often")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    warnings.formatwarning = lambda message, category, *rest: f"warning: {message}\n"
    from few_shot.errors import FewShotError
    from few_shot.pretraining.config import PretrainConfig
    from few_shot.pretraining.prepare import prepare
    from few_shot.quiet import start_tensorflow
    try:
        prepared = prepare(PretrainConfig(**vars(args)))  # every check, before Keras/TensorFlow load
        start_tensorflow()
        from few_shot.pretraining.run import run_pretraining
        run_pretraining(prepared)
    except FewShotError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
