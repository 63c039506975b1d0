"""Full-finetune baseline: the same pattern and verbalizer as P-tuning, with the MLM itself trained.

    python few_shot_finetune.py                         # all layers trainable
    python few_shot_finetune.py --trainable-layers 2    # last 2 encoder layers + MLM head
    python few_shot_finetune.py --unlabeled texts.txt   # + MLM loss on unlabelled texts (semi-supervised)
"""
import argparse

from few_shot.cli import Parser, add_run_args, config_from_args, non_negative_int, run_command


def main(argv=None):
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser, "finetune")
    parser.add_argument("--trainable-layers", type=non_negative_int, default=None,
                        help="train only the last N encoder layers plus the MLM head (default: everything)")
    return run_command(config_from_args(parser.parse_args(argv), "finetune"))


if __name__ == "__main__":
    main()
