#!/usr/bin/env python3
"""Measurements for scripts/gpu_job.sh. Each subcommand appends JSON records (one per line) to --out as
soon as each is measured, so a crash or a timeout keeps what came before; `collect` turns them into
bench.json. Every subcommand runs on a CPU too (`--tiny`: 2 layers x hidden 64, a few rows).

    python3 scripts/gpu_bench.py peak --out R.jsonl                    # torch matmul peak (bf16, fp32, tf32)
    python3 scripts/gpu_bench.py transformers --out R.jsonl            # the peer: BertForMaskedLM eval
    KERAS_BACKEND=torch python3 scripts/gpu_bench.py keras --out R.jsonl   # few_shot's model, eval + train step
    KERAS_BACKEND=jax   python3 scripts/gpu_bench.py keras --out R.jsonl
    KERAS_BACKEND=numpy python3 scripts/gpu_bench.py pipeline --corpus F.txt --out R.jsonl   # MLM data rate
    KERAS_BACKEND=torch python3 scripts/gpu_bench.py probe HF_DIR --out R.jsonl   # zero-shot + HF check
    python3 scripts/gpu_bench.py collect R.jsonl --pretrain-log DIR/pretrain_log.json --json bench.json

Model: BERT-base shape (12 layers, hidden 768, 12 heads, intermediate 3072, vocab 21128), random
weights. Inputs: the first 2048 rows of data/sentiment/sentiment.test.data in the P-tuning pattern
[CLS][u1..u4][MASK][u5..u8]text[SEP] (maxlen 128), sorted by length and batched by 128 with per-batch
padding as few_shot's Scorer does (JAX: lengths rounded up to multiples of 32, one XLA compile per
shape; the first pass, compiles included, is kept as first_pass_s). Label scores (不/很) at [MASK].
Train step: P-tuning (frozen MLM, BiLSTM prompt encoder, label objective), one batch of 32 rows of
median length, padded to its longest row, Adam; samples/s after warm-up steps.
FLOPs (see NOTES): eval 2*P*tokens + attention, p-tuning train 4*P*tokens + 3*attention, where P is
the parameters of the encoder layers and tokens the padded tokens computed.
The subcommands live in scripts/bench/gpu_measure.py and scripts/bench/gpu_collect.py.
"""
import argparse
import json
import os
import sys

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(SCRIPTS))
sys.path.insert(0, SCRIPTS)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench.gpu_collect import cmd_collect, cmd_pipeline, cmd_probe  # noqa: E402
from bench.gpu_common import SIZES, VALID  # noqa: E402
from bench.gpu_measure import cmd_keras, cmd_peak, cmd_transformers  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("peak", "transformers", "keras", "pipeline", "probe"):
        s = sub.add_parser(name)
        s.add_argument("--out", required=True, help="JSON-lines file to append records to")
        s.add_argument("--tiny", dest="size", action="store_const", const="tiny", default="full")
        if name in ("transformers", "keras"):
            s.add_argument("--rows", type=int, help="override the number of test rows (quick checks)")
        if name == "keras":
            s.add_argument("--precisions", default="bf16,fp32", help="comma-separated, in this order: bf16, fp32")
        if name == "pipeline":
            s.add_argument("--corpus", nargs="+", required=True)
            s.add_argument("--batch-size", type=int, default=128)
            s.add_argument("--maxlen", type=int, default=128)
            s.add_argument("--seconds", type=float, default=8.0)
            s.add_argument("--max-docs", type=int, default=100000, help="documents read per corpus file")
        if name == "probe":
            s.add_argument("folder")
            s.add_argument("--rows", default=VALID, help="text<TAB>label rows (default: sentiment valid)")
            s.add_argument("--limit", type=int)
            s.add_argument("--no-reference", action="store_true", help="skip the bundled model's probe")
    c = sub.add_parser("collect")
    c.add_argument("records", nargs="+")
    c.add_argument("--json", required=True)
    c.add_argument("--pretrain-log")
    c.add_argument("--job-info", type=json.loads, default=None, help="a JSON object stored as bench.json's job")
    args = p.parse_args(argv)
    if getattr(args, "rows", None) and args.command in ("transformers", "keras"):
        SIZES[args.size] = dict(SIZES[args.size], rows=args.rows)
    {"peak": cmd_peak, "transformers": cmd_transformers, "keras": cmd_keras, "pipeline": cmd_pipeline,
     "probe": cmd_probe, "collect": cmd_collect}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
