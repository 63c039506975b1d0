"""Scoring trained prompts from the command line: `--predict` and `--evaluate` with one trained run or
prompt file, or several as an ensemble (few_shot/ensemble.py), and `--calibrate` (few_shot/calibration.py).
Bad input is reported before TensorFlow loads (this module imports neither TensorFlow nor Keras)."""
import os

from few_shot.errors import FewShotError


def split_targets(args, flag="--predict"):
    """--predict TARGET [TARGET ...] TEXT [TEXT ...]: the leading arguments that exist (run folders, prompt
    files) are the trained prompts, the rest the texts -> (targets, texts)."""
    n = 0
    while n < len(args) and os.path.exists(args[n]):
        n += 1
    if not n:
        raise FewShotError(f"{flag} {args[0] if args else ''}: no such run folder or prompt file; pass the --output "
                           f"folder of a finished run (or its prompt.safetensors / lora.safetensors)")
    return args[:n], args[n:]


def file_format(path):
    """The few_shot format named in a .safetensors header, or None."""
    from safetensors import safe_open
    try:
        with safe_open(path, framework="numpy") as f:
            return (f.metadata() or {}).get("format")
    except Exception:  # not safetensors: read_tensors reports it
        return None


def load_predictor(targets, mlm=None):
    """One target: a run folder, a prompt.safetensors or a lora.safetensors; several: an ensemble of prompts
    -> PromptClassifier. `mlm`: the frozen MLM for files and ensembles (default: the one they name)."""
    from few_shot.classifier import PromptClassifier
    from few_shot.ensemble import build_ensemble, load_member
    from few_shot.lora import FORMAT as LORA_FORMAT, load_adapters
    from few_shot.portable import portable_classifier
    if len(targets) == 1:
        target = targets[0]
        if os.path.isfile(target):
            if file_format(target) == LORA_FORMAT:
                return PromptClassifier(load_adapters(target, mlm))
            return portable_classifier(target, mlm)
        return PromptClassifier.load(target)
    return PromptClassifier(build_ensemble([load_member(t) for t in targets], mlm))


def predict_command(targets, texts=None, model=None, calibrate=None, unlabeled=None):
    """Label `texts` with one trained prompt/run or the ensemble of several; print label, probability, text.
    `texts=None`: `targets` is --predict's list, the trained prompts first (split_targets)."""
    from few_shot.cli import user_errors
    from few_shot.quiet import start_tensorflow
    with user_errors():
        if texts is None:
            targets, texts = split_targets(list(targets))
        if not texts:
            raise FewShotError("--predict RUN_DIR [RUN_DIR ...] TEXT [TEXT ...]: no text given; add the texts to label")
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
    from few_shot import datasets
    from few_shot.calibration import calibrated
    from few_shot.training import Scorer
    classifier = load_predictor(list(targets), config.model)
    preprocessor = classifier.preprocessor
    train, valid, test = datasets.load_splits(config, preprocessor.verbalizer)
    scorer = calibrated(Scorer(classifier.model, config.eval_batch_size), config, preprocessor, train)
    result = {"members": list(targets), "calibrate": config.calibrate, "pattern": preprocessor.pattern.template}
    for name, rows in (("valid", valid), ("test", test)):
        result[f"{name}_acc"] = scorer.accuracy(preprocessor.encode(rows), name)
    return result


def evaluate_command(targets, config):
    from few_shot.cli import user_errors
    from few_shot.quiet import start_tensorflow
    with user_errors():
        config.check()
        targets, rest = split_targets(list(targets), "--evaluate")
        if rest:
            raise FewShotError(f"--evaluate {rest[0]}: no such run folder or prompt file")
        start_tensorflow()
        result = evaluate(targets, config)
        print(f"evaluate - {len(targets)} prompt(s){' (one batched pass)' if len(targets) > 1 else ''} - "
              f"calibrate: {config.calibrate or 'none'} - valid_acc: {result['valid_acc']:.4f} - "
              f"test_acc: {result['test_acc']:.4f}")
        return result
