#!/usr/bin/env python
"""Pre-train soft prompts on unlabelled text (PPT): one portable prompt file per task format.

    python scripts/pretrain_prompts.py --corpus ../shared/data/corpus/zh_corpus.txt --output runs/ppt
    python scripts/pretrain_prompts.py --corpus FILE --formats pair,unified --steps 500 --output runs/ppt
    python few_shot_ptuning.py --encoder none --prompt-init runs/ppt/pair.safetensors --task bustm ...

Formats: pair (next sentence / same document / other document: 是的 可能 不是), choice (which of four
sentences follows: 一 二 三 四), single (sentiment pseudo-labels 很 / 不 from the frozen MLM's own
calibrated zero-shot scores; no labelled data), unified (all three as one multiple choice). The test
texts of the sentiment data and of every FewCLUE task's test_public.json are removed from the corpus
first (--fewclue-root). Writes OUTPUT/<format>.safetensors, OUTPUT/checkpoint/ (--resume continues it)
and OUTPUT/ppt_log.json (tokens, time, tokens/s, loss, held-out accuracy per format).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_parser():
    from few_shot.argtypes import positive_float, positive_int
    from few_shot.cli import Parser
    p = Parser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--corpus", nargs="+", required=True, metavar="FILE", help="UTF-8 text, one document per line")
    p.add_argument("--output", required=True, metavar="DIR")
    p.add_argument("--formats", default="pair,choice,single,unified", help="comma-separated")
    p.add_argument("--model", help="MLM folder (default: the bundled models/zh-bert-mini)")
    p.add_argument("--prompt-length", type=positive_int, default=8, help="soft tokens (a run's pattern must have as many)")
    p.add_argument("--steps", type=positive_int, default=300, help="optimizer steps per format")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--lr", type=positive_float, default=5e-3)
    p.add_argument("--maxlen", type=positive_int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=positive_int, default=100, help="checkpoint every N steps")
    p.add_argument("--max-documents", type=positive_int, help="use the first N documents (after removing test texts)")
    p.add_argument("--pseudo-labels", type=positive_int, default=3000, help="sentences scored for single/unified")
    p.add_argument("--fewclue-root", help="FewCLUE folder whose test texts leave the corpus (default ../shared/data/fewclue)")
    p.add_argument("--keep-test-texts", action="store_true", help="do not remove test texts (a corpus known to hold none)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output")
    p.add_argument("--overwrite", action="store_true", help="replace the files of a previous run in --output")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="status lines instead of a bar")
    p.add_argument("--progress-every", dest="progress_seconds", type=positive_float, default=30.0, metavar="SECONDS")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from few_shot.errors import user_errors
    from few_shot.prompt_pretraining.config import PromptPretrainConfig, prepare
    from few_shot.quiet import start_tensorflow
    with user_errors():
        config = PromptPretrainConfig(**{**vars(args), "formats": tuple(f.strip() for f in args.formats.split(",")
                                                                        if f.strip())})
        bank, _, info = prepare(config)  # every check and the corpus, before TensorFlow
        print(f"corpus: {info['documents_used']} documents, {info['sentences']} sentences; test-text documents "
              f"removed: {sum(info['removed_test_documents'].values()) if info['removed_test_documents'] else 0}",
              flush=True)
        start_tensorflow()
        from few_shot.prompt_pretraining.run import run_prompt_pretraining
        run_prompt_pretraining(config, bank, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
