"""What few_shot_ptuning.py and few_shot_finetune.py share: arguments, data, the training run,
zero-shot scoring and prediction. The scripts themselves stay short."""
import contextlib
import json
import os
import shutil
import sys
import time
import warnings

from few_shot.errors import FewShotError
from few_shot.run_folder import Interrupted, RunFolder, check_output, interruptible, signals_ignored
from few_shot.datasets import TNEWS_VERBALIZER, DataWarning
from few_shot.pattern import PTUNING_PATTERN, SENTIMENT_VERBALIZER, ZERO_SHOT_PATTERN, Pattern, Verbalizer

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(PROJECT_ROOT, "data", "sentiment")


@contextlib.contextmanager
def user_errors():
    """Bad input ends the program with one line on stderr and exit status 2, not a traceback.
    Warnings (data problems, a checkpoint without MLM head) print as one `warning: ...` line."""
    import warnings
    warnings.formatwarning = lambda message, category, *rest: f"warning: {message}\n"
    try:
        yield
    except FewShotError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except (Interrupted, KeyboardInterrupt) as e:
        print(e.message if isinstance(e, Interrupted) and e.message else
              "interrupted before training started; nothing was written", file=sys.stderr)
        sys.exit(130)


# Chosen by measured accuracy on sentiment valid (README, "Defaults"): the frozen MLM tolerates a
# large prompt-encoder step, the trainable MLM does not.
DEFAULT_LR = {"ptuning": 1e-3, "finetune": 1e-4}


def add_common_args(parser, lr):
    a = parser.add_argument
    a("--model", default=None, help="checkpoint folder (Google, HF or preset) or hub id; default: bundled "
                                    "models/zh-bert-mini")
    a("--data", default=DEFAULT_DATA, help="folder with train/valid/test splits (default: bundled sentiment)")
    a("--text-field", default=None, help="csv/json data: the text column (default text or sentence)")
    a("--label-field", default=None, help="csv/json data: the label column (default label)")
    a("--fewclue-fold", default=None, help="read --data as FewCLUE (train_<i>/dev_<i>/test_public); 0-4 or all")
    a("--output", default=None, help="folder for metrics.json and the best model (default: runs/<name>-<time>)")
    a("--overwrite", action="store_true", help="replace a non-empty --output")
    a("--pattern", default=PTUNING_PATTERN, help=f"template, default {PTUNING_PATTERN!r}")
    a("--verbalizer", default=None, help="label:word pairs (1:很,0:不), JSON, a JSON file, or a name: sentiment "
                                         "(1:很,0:不, the default) or tnews (FewCLUE tnews, 2-character words)")
    a("--k", type=int, default=None, help="train on a stratified sample of K labelled rows (else first 1%%)")
    a("--train-fraction", type=float, default=0.01, help="without --k: the first fraction of train (0.01 = 168)")
    a("--seed", type=int, default=42)
    a("--epochs", type=int, default=20)
    a("--passes-per-epoch", type=int, default=50, help="an epoch is this many passes over the labelled rows")
    a("--batch-size", type=int, default=32)
    a("--eval-batch-size", type=int, default=128)
    a("--maxlen", type=int, default=128)
    a("--lr", type=float, default=lr)
    a("--objective", choices=("vocab", "label"), default="label",
      help="label: softmax over the label words (PET; default, learns faster in our runs, see README); "
           "vocab: full-vocabulary softmax at [MASK] (the seed, Su's code)")
    a("--strategy", choices=("mirrored", "multiworker", "none"), default="mirrored")
    a("--max-valid", type=int, default=None, help="evaluate on the first N valid rows only (quick runs)")
    a("--max-test", type=int, default=None, help="evaluate on the first N test rows only (quick runs)")
    s = parser.add_argument_group("semi-supervised (PET-style MLM loss on unlabelled texts; few_shot/semi.py)")
    s.add_argument("--semi", action="store_true", help="add an MLM loss on unlabelled texts: --unlabeled, else "
                                                       "the train rows not used as labelled")
    s.add_argument("--unlabeled", metavar="FILE", default=None,
                   help="unlabelled texts, one per line (tsv labels ignored; json lines: --text-field); implies --semi")
    s.add_argument("--mlm-weight", type=float, default=1.0, help="weight of the unlabelled MLM loss")
    s.add_argument("--unlabeled-batch-size", type=int, default=None, help="unlabelled texts per step "
                                                                          "(default --batch-size)")
    s.add_argument("--max-unlabeled", type=int, default=None, help="use the first N unlabelled texts only")


# --verbalizer shortcuts: name -> (label words, zero-shot pattern used when --pattern is left at its default)
TNEWS_ZERO_SHOT_PATTERN = "这是一条[MASK]新闻。{text}"
NAMED_VERBALIZERS = {"sentiment": (SENTIMENT_VERBALIZER, ZERO_SHOT_PATTERN),
                     "tnews": (TNEWS_VERBALIZER, TNEWS_ZERO_SHOT_PATTERN)}


def make_verbalizer(spec):
    """--verbalizer: a named shortcut (sentiment, tnews), label:word pairs, JSON or a JSON file;
    None -> the sentiment verbalizer."""
    if spec is None or spec in NAMED_VERBALIZERS:
        return Verbalizer(NAMED_VERBALIZERS[spec or "sentiment"][0])
    return Verbalizer.parse(spec)


def zero_shot_pattern(args):
    """The hand-written pattern: --pattern if given, else the named verbalizer's (default sentiment's)."""
    if args.pattern != PTUNING_PATTERN:
        return args.pattern
    return NAMED_VERBALIZERS.get(args.verbalizer or "sentiment", (None, ZERO_SHOT_PATTERN))[1]


def load_splits(args, verbalizer):
    """-> (train, valid, test) example lists, train sampled as asked; labels checked against the verbalizer."""
    from few_shot import datasets
    if args.fewclue_fold is not None:
        fold = args.fewclue_fold if args.fewclue_fold == "all" else int(args.fewclue_fold)
        splits = datasets.load_fewclue(args.data, fold, args.text_field, args.label_field)
    else:
        splits = datasets.load_task(args.data, args.text_field, args.label_field)
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    for name, rows in (("train", train), ("valid", valid), ("test", test)):
        verbalizer.check_labels([label for _, label in rows], f"{args.data} ({name})")
    if args.k is not None:
        train = datasets.stratified_sample(train, args.k, args.seed)
    elif args.fewclue_fold is None:
        train = datasets.first_fraction(train, args.train_fraction)
    return train, first_rows(valid, args.max_valid, "--max-valid"), first_rows(test, args.max_test, "--max-test")


def first_rows(rows, n, flag):
    """rows[:n], with a warning when the cut loses labels (a file sorted by label, as FewCLUE's)."""
    if n is None or n >= len(rows):
        return rows
    kept, every = {label for _, label in rows[:n]}, {label for _, label in rows}
    if kept != every:
        warnings.warn(f"{flag} {n} keeps {len(kept)} of the {len(every)} labels (the file is ordered by label?); "
                      f"evaluate on more rows or all of them", DataWarning)
    return rows[:n]


def describe_model(path):
    if path is None:
        return "bundled models/zh-bert-mini (a small demo model; pass --model for a real Chinese BERT)"
    return path


def run_training(args, name, build_model):
    """Load data and model under the strategy, train with per-epoch valid/test logging, save the best.

    `build_model(mlm, pattern, verbalizer, label_ids) -> PtuningModel` decides what trains.
    """
    import keras
    import numpy as np

    from few_shot.loading import load_mlm
    from few_shot.ptuning import count_params
    from few_shot.training import EncodedSet, EpochLogger, Scorer, is_chief, make_strategy, training_dataset

    verbalizer = make_verbalizer(args.verbalizer)
    pattern = Pattern(args.pattern)
    train, valid, test = load_splits(args, verbalizer)
    from few_shot import semi
    semi.check_semi_args(args)
    unlabeled, unlabeled_source = semi.unlabeled_texts(args, train)
    if args.output:
        check_output(args.output, args.overwrite)  # refuse before anything loads; nothing is touched yet
    keras.utils.set_random_seed(args.seed)
    strategy = make_strategy(args.strategy)
    print(f"model: {describe_model(args.model)}")
    kind = "MultiWorkerMirroredStrategy" if args.strategy == "multiworker" else type(strategy).__name__
    print(f"strategy: {kind} with {strategy.num_replicas_in_sync} replica(s)")
    with strategy.scope():
        mlm = load_mlm(args.model)
        label_ids = verbalizer.token_ids(mlm.tokenizer)
        model = build_model(mlm, pattern, verbalizer, label_ids)
        # with unlabelled texts, fit a wrapper that adds their MLM loss; evaluate and save `model`
        trainer = semi.SemiSupervisedModel(model, args.mlm_weight) if unlabeled else model
        trainer.compile(optimizer=keras.optimizers.Adam(args.lr), loss=model.loss_function())
    tok = mlm.tokenizer
    train_set, valid_set, test_set = (EncodedSet(rows, tok, pattern, verbalizer, args.maxlen, label_ids)
                                      for rows in (train, valid, test))
    unlabeled_set = semi.UnlabeledSet(unlabeled, tok, pattern, len(label_ids[0]), args.maxlen, seed=args.seed) \
        if unlabeled else None
    trainable = count_params(model.trainable_weights)
    print(f"data: {len(train)} labelled train rows, {len(valid)} valid, {len(test)} test; "
          f"pattern {pattern.template!r}; verbalizer {verbalizer.mapping}")
    if unlabeled:
        print(f"semi-supervised: + {args.mlm_weight} x MLM loss on {len(unlabeled)} unlabelled texts "
              f"({unlabeled_source}), {semi.MASK_RATE:.0%} of text tokens masked")
    print(f"trainable parameters: {trainable:,} of {count_params(model.weights):,}")
    summary = {"config": {k: v for k, v in vars(args).items()}, "seed": args.seed, "trainable_params": trainable,
               "train_rows": len(train), "unlabeled_rows": len(unlabeled or ()),
               "unlabeled_source": unlabeled_source,
               "model": args.model or "models/zh-bert-mini"}
    # the folder is made (or a previous run's files replaced) only now, when every check has passed
    folder = None
    if is_chief(strategy):
        folder = RunFolder.prepare(args.output, args.overwrite) if args.output else RunFolder.unique("runs", name)
    output = folder.path if folder else None
    logger = EpochLogger(Scorer(model, args.eval_batch_size), valid_set, test_set, output, summary)
    steps = max(1, -(-len(train) * args.passes_per_epoch // args.batch_size))
    if args.strategy == "multiworker":
        # Keras 3.15 builds the compile state by all-reducing one distributed batch, which
        # CollectiveAllReduce cannot do for a dict of inputs: build it from a local batch instead.
        inputs, labels = train_set.batch(np.arange(min(len(train_set), 2)))
        if unlabeled_set is not None:
            inputs.update(unlabeled_set.batch(np.arange(min(len(unlabeled_set), 2)))[0])
        with strategy.scope():
            trainer._symbolic_build(data_batch=(inputs, labels))
        trainer._maybe_symbolic_build = lambda *a, **k: None
    data = (training_dataset(train_set, args.batch_size, args.seed) if unlabeled_set is None else
            semi.semi_training_dataset(train_set, unlabeled_set, args.batch_size,
                                       args.unlabeled_batch_size or args.batch_size, args.seed))
    try:
        with interruptible():
            trainer.fit(data, epochs=args.epochs, steps_per_epoch=steps, callbacks=[logger], shuffle=False,
                        verbose=1 if sys.stdout.isatty() else 2)
    except Interrupted as stop:
        with signals_ignored():  # a second Ctrl-C must not cut the save short
            logger.status = "interrupted"
            if logger.best_weights is not None:
                save_run(model, logger, mlm, tok, output)
                where = f"the best epoch so far ({logger.best['best_epoch']}) is saved in {output}"
            else:
                logger.write()
                where = f"no epoch had finished; {output} holds metrics.json only"
        raise Interrupted(stop.signum, f"interrupted during epoch {len(logger.epochs) + 1}: {where}") from None
    except BaseException:
        if folder is not None:
            if logger.epochs:  # keep what the finished epochs measured, marked as failed
                logger.status = "failed"
                logger.write()
            else:
                folder.discard_if_empty()
        raise
    logger.status = "completed"
    save_run(model, logger, mlm, tok, output)
    best = logger.best
    print(f"best epoch {best['best_epoch']}: valid_acc {best['best_valid_acc']:.4f}, "
          f"test_acc {best['test_acc_at_best']:.4f}; saved to {output or '(not the chief worker: nothing)'}")
    return logger.metrics()


def save_run(model, logger, mlm, tok, output):
    """The best epoch's weights -> model.keras (+ the portable prompt), vocab.txt, metrics.json."""
    logger.restore_best()
    if not output:
        return
    model.save(os.path.join(output, "model.keras"))
    if model.prompt_encoder is not None and not model.train_backbone:
        # the prompt encoder folded into a plain [prompt_length, hidden] matrix: all a frozen MLM needs
        from few_shot.portable import save_portable_prompt
        prompt_path = save_portable_prompt(model, os.path.join(output, "prompt.safetensors"), mlm.path)
        print(f"portable prompt: {os.path.getsize(prompt_path) / 1024:.1f} KB (model.keras: "
              f"{os.path.getsize(os.path.join(output, 'model.keras')) / 2 ** 20:.1f} MB)")
    shutil.copyfile(tok.vocab_path, os.path.join(output, "vocab.txt"))
    logger.write()


def zero_shot(args):
    """Score the hand-written pattern with the untrained MLM; print valid and test accuracy."""
    from few_shot.loading import load_mlm
    from few_shot.ptuning import PtuningModel
    from few_shot.training import EncodedSet, Scorer

    verbalizer = make_verbalizer(args.verbalizer)
    pattern = Pattern(zero_shot_pattern(args))
    if pattern.prompt_tokens:
        raise FewShotError(f"zero-shot pattern {pattern.template!r} has soft-prompt slots, which are untrained; "
                           f"write the prompt in words, e.g. --pattern '{ZERO_SHOT_PATTERN}'")
    _, valid, test = load_splits(args, verbalizer)
    print(f"model: {describe_model(args.model)}")
    mlm = load_mlm(args.model)
    label_ids = verbalizer.token_ids(mlm.tokenizer)
    model = PtuningModel(mlm.model, label_ids, encoder=None, pattern=pattern.template,
                         verbalizer=verbalizer.mapping, maxlen=args.maxlen)
    scorer = Scorer(model, args.eval_batch_size)
    result = {"pattern": pattern.template, "verbalizer": verbalizer.mapping, "model": args.model or
              "models/zh-bert-mini"}
    for name, rows in (("valid", valid), ("test", test)):
        data = EncodedSet(rows, mlm.tokenizer, pattern, verbalizer, args.maxlen, label_ids)
        result[f"{name}_acc"] = scorer.accuracy(data, name)
    print(f"zero-shot - pattern: {pattern.template} - valid_acc: {result['valid_acc']:.4f} - "
          f"test_acc: {result['test_acc']:.4f}")
    if args.output:
        RunFolder.prepare(args.output, args.overwrite, files=("metrics.json",))
        with open(os.path.join(args.output, "metrics.json"), "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, ensure_ascii=False)
    return result


def predict_command(output_dir, texts, model=None):
    """Label texts with a run folder (model.keras + vocab.txt) or a portable prompt file
    (prompt.safetensors; its frozen MLM is --model if given, else the one it names)."""
    from few_shot.classifier import PromptClassifier
    if os.path.isfile(output_dir) and output_dir.endswith(".safetensors"):
        from few_shot.portable import portable_classifier
        classifier = portable_classifier(output_dir, model)
    else:
        classifier = PromptClassifier.load(output_dir)
    for text, (label, prob) in zip(texts, classifier.predict(texts)):
        print(f"{label}\t{prob:.4f}\t{text}")
