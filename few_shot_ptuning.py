"""P-tuning few-shot classification on a frozen Chinese BERT MLM (Liu et al. 2021; kexue.fm/archives/8295).

    python few_shot_ptuning.py                          # bundled model + sentiment, first 1% of train
    python few_shot_ptuning.py --k 32 --seed 1          # 32 labelled rows, stratified
    python few_shot_ptuning.py --k 32 --semi            # + MLM loss on the unlabelled rest of train (PET)
    python few_shot_ptuning.py --zero-shot              # hand-written pattern, no training
    python few_shot_ptuning.py --predict runs/ptuning-... "这家酒店很好"
    python few_shot_ptuning.py --predict runs/ptuning-.../prompt.safetensors "这家酒店很好"   # portable prompt
    python few_shot_ptuning.py --data ../shared/data/fewclue_tnews --fewclue-fold 0 --verbalizer tnews
"""
import argparse

from few_shot.cli import DEFAULT_LR, add_common_args, predict_command, run_training, user_errors, zero_shot
from few_shot.ptuning import INITS, PtuningModel


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, lr=DEFAULT_LR["ptuning"])
    parser.add_argument("--prompt-length", type=int, default=None,
                        help="number of soft-prompt tokens; builds [u1..uN][MASK]{text} (default: the pattern's 8)")
    parser.add_argument("--init", choices=INITS, default="unused", help="prompt initialisation")
    parser.add_argument("--encoder", choices=("lstm", "mlp", "none"), default="lstm",
                        help="prompt encoder: BiLSTM+MLP (P-tuning), MLP, none (prompt tuning)")
    parser.add_argument("--zero-shot", action="store_true", help="score the hand-written pattern, no training")
    parser.add_argument("--predict", nargs="+", metavar=("RUN_DIR", "TEXT"),
                        help="label texts with a trained run: --predict RUN_DIR TEXT [TEXT ...] (RUN_DIR may "
                             "also be a portable prompt.safetensors; its MLM is --model or the one it names)")
    args = parser.parse_args()

    with user_errors():
        if args.predict:
            return predict_command(args.predict[0], args.predict[1:], args.model)
        if args.zero_shot:
            return zero_shot(args)
        if args.prompt_length is not None:
            half = args.prompt_length // 2
            slots = [f"[u{i}]" for i in range(1, args.prompt_length + 1)]
            args.pattern = "".join(slots[:half]) + "[MASK]" + "".join(slots[half:]) + "{text}"

        def build(mlm, pattern, verbalizer, label_ids):
            prompt_ids = mlm.tokenizer.tokens_to_ids(pattern.prompt_tokens)
            return PtuningModel(mlm.model, label_ids, prompt_ids, encoder=args.encoder, init=args.init,
                                objective=args.objective, seed=args.seed, pattern=pattern.template,
                                verbalizer=verbalizer.mapping, maxlen=args.maxlen)

        run_training(args, "ptuning", build)


if __name__ == "__main__":
    main()
