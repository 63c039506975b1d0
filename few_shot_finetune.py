"""Full-finetune baseline: the same pattern and verbalizer as P-tuning, with the MLM itself trained.

    python few_shot_finetune.py                         # all layers trainable
    python few_shot_finetune.py --trainable-layers 2    # last 2 encoder layers + MLM head
    python few_shot_finetune.py --unlabeled texts.txt   # + MLM loss on unlabelled texts (semi-supervised)
    python few_shot_finetune.py --lora 8                # LoRA: rank-8 adapters on query/value, MLM frozen
    python few_shot_finetune.py --lora 8 --lora-targets all
    python few_shot_finetune.py --merge-lora runs/lora-...  # adapters folded in: runs/lora-.../merged/model.keras
"""
import argparse

from few_shot.cli import Parser, add_run_args, config_from_args, run_command
from few_shot.methods import add_method_args


def merge_command(run_dir, output=None):
    """--merge-lora RUN_DIR: write the merged model (adapters folded into the kernels) for serving."""
    import os

    from few_shot.errors import FewShotError, user_errors
    from few_shot.quiet import start_tensorflow
    with user_errors():
        if not os.path.isfile(os.path.join(run_dir, "model.keras")):
            raise FewShotError(f"--merge-lora {run_dir}: no run folder with a model.keras; pass the --output folder "
                               f"of a LoRA run")
        start_tensorflow()
        from few_shot.methods.lora import merge_run
        out = merge_run(run_dir, output)
        print(f"merged: {os.path.join(out, 'model.keras')} (LoRA adapters folded into the MLM's kernels; "
              f"--predict {out} reads it)")
        return out


def main(argv=None):
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser, "finetune")
    add_method_args(parser, "finetune")  # --trainable-layers, --lora, --lora-targets, --merge-lora
    args = parser.parse_args(argv)
    if args.merge_lora:
        return merge_command(args.merge_lora, args.output)
    return run_command(config_from_args(args, "finetune"))


if __name__ == "__main__":
    main()
