"""Full-finetune baseline: the same pattern and verbalizer as P-tuning, with the MLM itself trained.

    python few_shot_finetune.py                         # all layers trainable
    python few_shot_finetune.py --trainable-layers 2    # last 2 encoder layers + MLM head
    python few_shot_finetune.py --unlabeled texts.txt   # + MLM loss on unlabelled texts (semi-supervised)
"""
import argparse

from few_shot.cli import DEFAULT_LR, add_common_args, run_training, user_errors
from few_shot.ptuning import PtuningModel


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, lr=DEFAULT_LR["finetune"])
    parser.add_argument("--trainable-layers", type=int, default=None,
                        help="train only the last N encoder layers plus the MLM head (default: everything)")
    args = parser.parse_args()

    with user_errors():
        def build(mlm, pattern, verbalizer, label_ids):
            layers = mlm.model.num_layers
            if args.trainable_layers is not None and not 0 <= args.trainable_layers <= layers:
                from few_shot.errors import FewShotError
                raise FewShotError(f"--trainable-layers {args.trainable_layers}: the model has {layers} "
                                   f"encoder layers; pass 0..{layers}")
            prompt_ids = mlm.tokenizer.tokens_to_ids(pattern.prompt_tokens)
            # encoder=None: the [unusedN] prompt tokens keep their own embeddings, trained with the rest
            return PtuningModel(mlm.model, label_ids, prompt_ids, encoder=None, train_backbone=True,
                                trainable_layers=args.trainable_layers, objective=args.objective,
                                seed=args.seed, pattern=pattern.template, verbalizer=verbalizer.mapping,
                                maxlen=args.maxlen)

        run_training(args, "finetune", build)


if __name__ == "__main__":
    main()
