"""The command line of few_shot_ptuning.py and few_shot_finetune.py: argparse -> RunConfig, and the
one-line errors. Everything here runs before TensorFlow is imported."""
import argparse
import os
import sys

from few_shot.argtypes import fraction, positive_float, positive_int
from few_shot.config import CALIBRATIONS, FEWCLUE_FOLDS, OBJECTIVES, STRATEGIES, RunConfig
from few_shot.errors import user_errors
from few_shot.methods import get_method, method_from_args
from few_shot.methods.prompt import INITS
from few_shot.paths import DEFAULT_DATA
from few_shot.pattern import PTUNING_PATTERN
from few_shot.quiet import start_tensorflow


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (the usage is in --help) with exit status 2."""

    def error(self, message):
        print(f"error: {message}; see --help", file=sys.stderr)
        sys.exit(2)


def add_run_args(parser, method, pass_through=False, exclude=()):
    """The options of a run. `pass_through=True` (experiment scripts): every default is None, so that
    only what the user typed overrides RunConfig's defaults; `exclude`: flags the script sets itself."""
    def a(flag, default=None, **kw):
        if flag not in exclude:
            parser.add_argument(flag, default=None if pass_through else default, **kw)

    a("--model", help="checkpoint folder (Google, HF or preset) or hub id; default: bundled models/zh-bert-mini")
    a("--data", DEFAULT_DATA, help="folder with train/valid/test splits (default: bundled sentiment)")
    a("--text-field", help="csv/json data: the text column (default text or sentence)")
    a("--label-field", help="csv/json data: the label column (default label)")
    a("--fewclue-fold", choices=FEWCLUE_FOLDS, help="read --data as FewCLUE (train_<i>/dev_<i>/test_public); 0-4 or all")
    a("--task", help="a FewCLUE task (bustm, chid, cluewsc, csl, csldcp, eprstmt, iflytek, ocnli, tnews): its reader, "
                     "patterns and verbalizer (--pattern/--verbalizer override them); needs --fewclue-fold")
    a("--pattern", help=f"template with [uN] prompt slots, [MASK] and {{fields}} (default {PTUNING_PATTERN!r}; "
                        f"zero-shot: the verbalizer's hand-written one)")
    a("--verbalizer", help="label:word pairs (1:很,0:不), JSON, a JSON file, or a name: sentiment (1:很,0:不, the "
                           "default) or tnews (FewCLUE tnews, 2-character words)")
    a("--k", type=positive_int, help="train on a stratified sample of K labelled rows (else the first 1%%)")
    a("--train-fraction", 0.01, type=fraction, help="without --k: the first fraction of train (0.01 = 168 rows)")
    a("--seed", 42, type=int)
    a("--epochs", 20, type=positive_int)
    a("--passes-per-epoch", 50, type=positive_int, help="an epoch is this many passes over the labelled rows")
    a("--batch-size", 32, type=positive_int)
    a("--eval-batch-size", 128, type=positive_int)
    a("--maxlen", 128, type=positive_int)
    a("--lr", type=positive_float, help=f"learning rate (default {get_method(method).default_lr:g})")
    a("--objective", "label", choices=OBJECTIVES,
      help="label: softmax over the label words (PET; default, learns faster in our runs, see docs/methods/ptuning.md); "
           "vocab: full-vocabulary softmax at [MASK] (the seed, Su's code)")
    a("--strategy", "mirrored", choices=STRATEGIES)
    a("--calibrate", choices=CALIBRATIONS,
      help="contextual calibration of the label probabilities (zero-shot, evaluation, --predict): divide by those "
           "of content-free inputs or the mean over unlabelled texts (--unlabeled FILE, which in a training run also "
           "turns on --semi; else the rest of train)")
    a("--max-valid", type=positive_int, help="evaluate on the first N valid rows only (quick runs)")
    a("--max-test", type=positive_int, help="evaluate on the first N test rows only (quick runs)")
    a("--early-stopping", type=positive_int, metavar="PATIENCE",
      help="stop when valid accuracy has not improved for PATIENCE epochs (keras EarlyStopping)")
    if pass_through:
        return
    a("--output", help="folder for metrics.json and the best model (default: a new runs/<method>-<time>)")
    parser.add_argument("--overwrite", action="store_true",
                        help="reuse a non-empty --output, replacing only the files a run writes")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted or crashed run in --output from its last finished epoch")
    parser.add_argument("--progress-every", dest="progress_seconds", type=positive_float, default=60.0,
                        metavar="SECONDS", help="when the output is not a terminal, a progress line this often "
                                                "(default 60)")
    s = parser.add_argument_group("semi-supervised (PET-style MLM loss on unlabelled texts; few_shot/semi.py)")
    s.add_argument("--semi", action="store_true", help="add an MLM loss on unlabelled texts: --unlabeled, else "
                                                       "the train rows not used as labelled")
    s.add_argument("--unlabeled", metavar="FILE", help="unlabelled texts, one per line (tsv labels ignored; json "
                                                       "lines: --text-field); implies --semi")
    s.add_argument("--mlm-weight", type=positive_float, default=1.0, help="weight of the unlabelled MLM loss")
    s.add_argument("--unlabeled-batch-size", type=positive_int, help="unlabelled texts per step (default "
                                                                     "--batch-size)")
    s.add_argument("--max-unlabeled", type=positive_int, help="use the first N unlabelled texts only")


def add_prompt_args(parser, pass_through=False):
    """few_shot_ptuning.py's own options (also what the experiment scripts pass through)."""
    d = (lambda value: None) if pass_through else (lambda value: value)
    parser.add_argument("--prompt-length", type=positive_int, default=None,
                        help="number of soft-prompt tokens; builds [u1..uN][MASK]{text} (default: the pattern's 8)")
    parser.add_argument("--init", choices=INITS, default=d("unused"), help="prompt initialisation")


def run_command(config):
    """Train (or score zero-shot) as `config` says, with one-line errors."""
    from few_shot import run
    with user_errors():
        inputs = run.prepare(config)  # every check, before TensorFlow loads
        start_tensorflow()
        trains = get_method(config.method).trains
        return run.run_training(config, inputs) if trains else run.zero_shot(config, inputs)


def export_command(target, out_dir, model=None):
    """Write a run folder (or a portable prompt file with its MLM) as a TensorFlow SavedModel that
    takes raw strings (few_shot/export.py); a non-empty OUT_DIR is refused before anything loads."""
    from few_shot.export import check_out_dir, check_run_pattern, serving_hint
    from few_shot.scoring import check_targets
    with user_errors():
        check_targets("--export", [target])
        check_out_dir(out_dir)
        if os.path.isdir(target):
            check_run_pattern(target)
        start_tensorflow()
        from few_shot.classifier import PromptClassifier
        from few_shot.export import export_saved_model
        source = PromptClassifier.load(target, model)
        path = export_saved_model(source, out_dir)
        labels = ", ".join(source.preprocessor.labels)
        print(f"exported {target} -> {path}: signature serving_default, input text [None] string, outputs "
              f"probabilities [None, {len(source.preprocessor.labels)}] (labels {labels}), label, labels")
        print(serving_hint(out_dir))


def config_from_args(args, script):
    """The RunConfig of a parsed command line: the method the flags ask for (few_shot/methods/)."""
    with user_errors():
        return RunConfig.from_namespace(args, method=method_from_args(args, script),
                                        semi=bool(args.semi or args.unlabeled))
