"""Scoring trained prompts from the command line: `--predict` and `--evaluate` with one trained run or
prompt file, or several as an ensemble (few_shot/ensemble.py), and `--calibrate` (few_shot/calibration.py).
Bad input is reported before TensorFlow loads (this module imports neither TensorFlow nor Keras)."""
import os

from few_shot.errors import FewShotError, user_errors


def no_target(flag, path):
    """The one message for a --predict / --evaluate / --export target that is not there."""
    return FewShotError(f"{flag} {path}: no such run folder or prompt file; pass the --output folder of a finished "
                        f"run (or its prompt.safetensors / lora.safetensors)")


def check_targets(flag, targets):
    """Every target exists, and a folder holds a model.keras (checked before anything loads)."""
    for target in targets:
        if not os.path.exists(target):
            raise no_target(flag, target)
        if os.path.isdir(target) and not os.path.isfile(os.path.join(target, "model.keras")):
            raise FewShotError(f"{flag} {target}: holds no model.keras; pass the --output folder of a finished run "
                               f"(or its prompt.safetensors / lora.safetensors)")


def split_targets(args, flag="--predict"):
    """--predict TARGET [TARGET ...] TEXT [TEXT ...] -> (targets, texts): the leading arguments that exist
    (run folders, prompt files) are the trained prompts, the rest the texts. A text that names an
    existing folder or file would be taken for a target, so when nothing is left for a text the error
    says to put `--` before the texts."""
    n = 0
    while n < len(args) and os.path.exists(args[n]):
        n += 1
    if not n:
        raise no_target(flag, args[0] if args else "")
    if n == len(args) and n > 1 and flag == "--predict":
        raise FewShotError(f"{flag}: every argument names an existing file or folder ({args[-1]!r} too), so none is "
                           f"read as a text; put `--` before the texts: {flag} {args[0]} -- TEXT [TEXT ...]")
    return args[:n], args[n:]


def load_predictor(targets, mlm=None):
    """One target: a run folder, a .keras file, a prompt.safetensors or a lora.safetensors; several: an
    ensemble of prompts -> PromptClassifier. `mlm`: the frozen MLM for files and ensembles (default: the
    one they name)."""
    from few_shot.classifier import PromptClassifier
    from few_shot.ensemble import build_ensemble, load_member
    if len(targets) == 1:
        return PromptClassifier.load(targets[0], mlm)
    return PromptClassifier(build_ensemble([load_member(t) for t in targets], mlm))


def predict_command(targets, texts=None, model=None, calibrate=None, unlabeled=None):
    """Label `texts` with one trained prompt/run or the ensemble of several; print label, probability, text.
    `texts=None`: `targets` is --predict's list, the trained prompts first (split_targets)."""
    from few_shot.quiet import start_tensorflow
    with user_errors():
        if texts is None:
            targets, texts = split_targets(list(targets))
        check_targets("--predict", targets)
        if not texts:
            raise FewShotError("--predict RUN_DIR [RUN_DIR ...] TEXT [TEXT ...]: no text given; add the texts to label")
        blank = [i for i, text in enumerate(texts) if not text.strip()]
        if blank:
            raise FewShotError(f"--predict: text {blank[0] + 1} is empty; a model given no text still answers with its "
                               f"prior, so pass non-empty texts")
        from few_shot.config import CALIBRATIONS
        if calibrate is not None and calibrate not in CALIBRATIONS:
            raise FewShotError(f"--calibrate {calibrate!r}: choose one of {', '.join(CALIBRATIONS)}")
        extra = None
        if unlabeled:
            from few_shot.datasets import read_unlabeled
            extra = read_unlabeled(unlabeled)
        start_tensorflow()
        classifier = load_predictor(list(targets), model)
        classifier.calibrate, classifier.unlabeled = calibrate, extra
        for text, (label, prob) in zip(texts, classifier.predict(texts)):
            print(f"{label}\t{prob:.4f}\t{text}")


def evaluate(targets, config):
    """Score trained prompts (one, or several as an ensemble) on `config`'s valid and test rows, with
    `config.calibrate` -> {valid_acc, test_acc, members, ...}."""
    from few_shot.tasks import load_splits
    from few_shot.calibration import calibrated
    from few_shot.training import Scorer
    classifier = load_predictor(list(targets), config.model)
    preprocessor = classifier.preprocessor
    train, valid, test = load_splits(config, preprocessor.verbalizer)
    scorer = calibrated(Scorer(classifier.model, config.eval_batch_size), config, preprocessor, train)
    result = {"members": list(targets), "calibrate": config.calibrate, "pattern": preprocessor.pattern.template}
    for name, rows in (("valid", valid), ("test", test)):
        result[f"{name}_acc"] = scorer.accuracy(preprocessor.encode(rows), name)
    return result


def evaluate_command(targets, config):
    from few_shot.quiet import start_tensorflow
    with user_errors():
        config.check()
        targets, rest = split_targets(list(targets), "--evaluate")
        if rest:
            raise no_target("--evaluate", rest[0])
        check_targets("--evaluate", targets)
        start_tensorflow()
        result = evaluate(targets, config)
        print(f"evaluate - {len(targets)} prompt(s){' (one batched pass)' if len(targets) > 1 else ''} - "
              f"calibrate: {config.calibrate or 'none'} - valid_acc: {result['valid_acc']:.4f} - "
              f"test_acc: {result['test_acc']:.4f}")
        return result
