"""P-tuning few-shot classification on a frozen Chinese BERT MLM (Liu et al. 2021; kexue.fm/archives/8295).

    python few_shot_ptuning.py                          # bundled model + sentiment, first 1% of train
    python few_shot_ptuning.py --k 32 --seed 1          # 32 labelled rows, stratified
    python few_shot_ptuning.py --k 32 --semi            # + MLM loss on the unlabelled rest of train (PET)
    python few_shot_ptuning.py --zero-shot              # hand-written pattern, no training
    python few_shot_ptuning.py --encoder none           # prompt tuning (Lester et al.): no prompt encoder
    python few_shot_ptuning.py --predict runs/ptuning-... "这家酒店很好"
    python few_shot_ptuning.py --predict runs/ptuning-.../prompt.safetensors "这家酒店很好"   # portable prompt
    python few_shot_ptuning.py --data ../shared/data/fewclue_tnews --fewclue-fold 0 --verbalizer tnews
"""
import argparse

from few_shot.cli import Parser, add_prompt_args, add_run_args, config_from_args, predict_command, run_command

# --encoder -> the method few_shot.methods.build_model builds
ENCODER_METHODS = {"lstm": "ptuning", "mlp": "mlp", "none": "prompt"}


def main(argv=None):
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser, "ptuning")
    add_prompt_args(parser)
    parser.add_argument("--encoder", choices=tuple(ENCODER_METHODS), default="lstm",
                        help="prompt encoder: BiLSTM+MLP (P-tuning), MLP, none (prompt tuning)")
    parser.add_argument("--zero-shot", action="store_true", help="score the hand-written pattern, no training")
    parser.add_argument("--predict", nargs="+", metavar=("RUN_DIR", "TEXT"),
                        help="label texts with a trained run: --predict RUN_DIR TEXT [TEXT ...] (RUN_DIR may "
                             "also be a portable prompt.safetensors; its MLM is --model or the one it names)")
    args = parser.parse_args(argv)
    if args.predict:
        return predict_command(args.predict[0], args.predict[1:], args.model)
    return run_command(config_from_args(args, "zeroshot" if args.zero_shot else ENCODER_METHODS[args.encoder]))


if __name__ == "__main__":
    main()
