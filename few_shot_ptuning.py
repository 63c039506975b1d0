"""P-tuning few-shot classification on a frozen Chinese BERT MLM (Liu et al. 2021; kexue.fm/archives/8295).

    python few_shot_ptuning.py                          # bundled model + sentiment, first 1% of train
    python few_shot_ptuning.py --k 32 --seed 1          # 32 labelled rows, stratified
    python few_shot_ptuning.py --k 32 --semi            # + MLM loss on the unlabelled rest of train (PET)
    python few_shot_ptuning.py --zero-shot              # hand-written pattern, no training
    python few_shot_ptuning.py --encoder none           # prompt tuning (Lester et al.): no prompt encoder
    python few_shot_ptuning.py --deep                   # deep prompts (P-tuning v2): prompt states at every layer
    python few_shot_ptuning.py --zero-shot --calibrate content-free     # contextual calibration
    python few_shot_ptuning.py --evaluate runs/p1 runs/p2 runs/p3       # an ensemble of prompts, one batched pass
    python few_shot_ptuning.py --predict runs/ptuning-... "这家酒店很好"
    python few_shot_ptuning.py --predict runs/ptuning-.../prompt.safetensors "这家酒店很好"   # portable prompt
    python few_shot_ptuning.py --export runs/ptuning-... serving/sentiment/1   # SavedModel for TF Serving
    python few_shot_ptuning.py --serve sentiment=runs/p1 tnews=runs/t1/prompt.safetensors   # many tasks, one MLM
    python few_shot_ptuning.py --data ../shared/data/fewclue_tnews --fewclue-fold 0 --verbalizer tnews
"""
import argparse
import sys

from few_shot.argtypes import non_negative_float, port, positive_int
from few_shot.cli import Parser, add_prompt_args, add_run_args, config_from_args, export_command, run_command
from few_shot.methods import add_method_args


def add_serve_args(parser):
    s = parser.add_argument_group("serving several tasks on one frozen MLM (--serve; docs/serving.md)")
    s.add_argument("--serve", nargs="+", metavar="TASK=TARGET",
                   help="serve trained prompts (run folders or prompt.safetensors, one frozen MLM: --model or the one "
                        "they name) over TF Serving's REST API: POST /v1/models/TASK:predict; needs "
                        "pip install -e '.[serve]'")
    s.add_argument("--export-tasks", nargs="+", metavar=("OUT_DIR", "TASK=TARGET"),
                   help="write the tasks (one MLM) as ONE SavedModel into OUT_DIR (new or empty): signature "
                        "serving_default takes task and text, one signature per task takes text")
    s.add_argument("--host", default="127.0.0.1", help="--serve: the address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=port, default=8501, help="--serve: the port (default 8501; 0: any free one)")
    s.add_argument("--max-batch-size", type=positive_int, default=32,
                   help="--serve: at most this many rows (of any tasks) per pass of the MLM (default 32)")
    s.add_argument("--max-wait-ms", type=non_negative_float, default=5.0,
                   help="--serve: a row waits at most this long for others to batch with (default 5)")
    s.add_argument("--workers", type=positive_int, default=2,
                   help="--serve: batches scored at once, each on its own thread (default 2)")
    s.add_argument("--max-instances", type=positive_int, default=1024,
                   help="--serve: at most this many instances per request (more: 413; default 1024)")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    # --predict RUN_DIR ... -- TEXT ...: what follows `--` are texts, even one that names a folder
    texts = argv[argv.index("--") + 1:] if "--" in argv else None
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser, "ptuning")
    add_prompt_args(parser)
    parser.add_argument("--predict", nargs="+", metavar=("RUN_DIR", "TEXT"),
                        help="label texts with a trained run: --predict RUN_DIR [RUN_DIR ...] [--] TEXT [TEXT ...] "
                             "(RUN_DIR may also be a portable prompt.safetensors; its MLM is --model or the one it "
                             "names; several RUN_DIRs: their ensemble; `--` before the texts when a text could be "
                             "taken for a folder)")
    parser.add_argument("--export", nargs=2, metavar=("RUN_DIR", "OUT_DIR"),
                        help="write a trained run as a TensorFlow SavedModel taking raw strings (for TF Serving) "
                             "into OUT_DIR, a new or empty folder such as serving/sentiment/1 (RUN_DIR may also "
                             "be a prompt.safetensors; see docs/serving.md)")
    parser.add_argument("--evaluate", nargs="+", metavar="RUN_DIR",
                        help="score trained prompts (run folders or prompt.safetensors; several = an ensemble, one "
                             "batched pass) on --data's valid and test rows")
    add_method_args(parser, "ptuning")  # --encoder, --deep, --zero-shot (few_shot/methods/)
    add_serve_args(parser)
    args = parser.parse_args(argv)
    if texts is not None and not args.predict:
        parser.error("`--` separates --predict's run folders from its texts; use it after --predict RUN_DIR")
    if args.export and args.predict:
        parser.error("--export and --predict: give one of them")
    if sum(map(bool, (args.serve, args.export_tasks, args.export, args.predict or args.evaluate))) > 1:
        parser.error("--serve, --export-tasks, --export and --predict / --evaluate: give one of them")
    if args.export_tasks:
        if args.calibrate:
            parser.error("--export-tasks writes the model's own probabilities, uncalibrated; drop --calibrate")
        from few_shot.multitask_export import export_tasks_command
        return export_tasks_command(args.export_tasks, args.model)
    if args.serve:
        if args.calibrate:
            parser.error("--serve answers with the model's own probabilities, uncalibrated; drop --calibrate")
        from few_shot.serve import serve_command
        return serve_command(args.serve, args.model, args.host, args.port, args.max_batch_size, args.max_wait_ms,
                             args.max_instances, args.workers)
    if args.export and args.calibrate:
        parser.error("--export writes the model's own probabilities, uncalibrated; drop --calibrate")
    if args.export:
        return export_command(args.export[0], args.export[1], args.model)
    if args.predict or args.evaluate:  # several trained prompts are an ensemble (few_shot/scoring.py)
        from few_shot.scoring import evaluate_command, predict_command
        if args.predict:  # RUN_DIR [RUN_DIR ...] [--] TEXT [TEXT ...]
            return predict_command(args.predict, texts, args.model, args.calibrate, args.unlabeled)
        return evaluate_command(args.evaluate, config_from_args(args, "ptuning"))
    return run_command(config_from_args(args, "ptuning"))


if __name__ == "__main__":
    main()
