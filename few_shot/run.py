"""One run from a RunConfig: check everything, load the MLM, build the model, train with per-epoch
valid/test logging, save the best epoch. `prepare` reads and checks all inputs without TensorFlow,
so a bad argument or data file costs no model load and writes nothing.

    data -> PromptPreprocessor (pattern, verbalizer, maxlen) -> EncodedSet -> build_model(...)
         -> fit (EpochLogger: Scorer on valid and test each epoch) -> run folder
"""
import dataclasses
import gc
import json
import os
import shutil
import sys
from typing import Optional

from few_shot import datasets
from few_shot.errors import FewShotError, Interrupted, WorkerLost, interruptible, signals_ignored
from few_shot.methods import get_method
from few_shot.model_folder import check_model_folder, model_path
from few_shot.owned_files import remove_owned
from few_shot.paths import DEFAULT_MODEL_NAME
from few_shot.pattern import Pattern, row_fields
from few_shot.run_folder import (BACKUP_FILES, RUN_FILES, RunFolder, backup_folder, check_output, check_resume,
                                 check_worker_resume, cluster_task, is_chief_task, nearest_existing_parent)
from few_shot.tasks import load_splits, make_verbalizer


@dataclasses.dataclass
class RunInputs:
    """What `prepare` read and checked: everything a run needs except the model."""
    config: object
    pattern: Pattern
    verbalizer: object
    train: list
    valid: list
    test: list
    unlabeled: Optional[list] = None
    unlabeled_source: Optional[str] = None
    resumed: Optional[dict] = None  # --resume: the run folder's metrics.json


def prepare(config):
    """Check the config, the output folder, the data, the pattern's fields and the model's positions
    -> RunInputs. Imports no TensorFlow and writes nothing."""
    config.check()
    method = get_method(config.method)
    verbalizer = make_verbalizer(config.verbalizer, config.task)
    pattern = Pattern(config.resolved_pattern())
    resumed = None
    multiworker = config.strategy == "multiworker"
    if config.resume and multiworker and not is_chief_task(cluster_task() or ("worker", 0)):
        check_worker_resume(config.output)  # the run folder may live on the chief's host only
    elif config.resume:
        resumed = check_resume(config.output, {**dataclasses.asdict(config), "pattern": pattern.template,
                                               "lr": config.learning_rate})
    elif config.output:
        check_output(config.output, config.overwrite)
    elif method.trains and not os.access(nearest_existing_parent(os.path.join("runs", "new")), os.W_OK | os.X_OK):
        raise FewShotError(f"no --output given and {os.path.abspath('runs')} cannot be created or written here; "
                           f"pass --output DIR (a folder you can write)")
    check_model_folder(config.model)
    check_model_shape(config, method)
    check_pattern_fits(config, pattern, verbalizer)
    train, valid, test = load_splits(config, verbalizer)
    pattern.check_fields(row_fields(train[0][0]), config.data)
    method.check_pattern(pattern)
    unlabeled, source = datasets.unlabeled_texts(config, train) if method.trains else (None, None)
    return RunInputs(config, pattern, verbalizer, train, valid, test, unlabeled, source, resumed)


def check_model_shape(config, method):
    """--maxlen and the method's options (e.g. --trainable-layers) must fit the checkpoint (its config
    file, read without loading it)."""
    folder = model_path(config.model)
    for name in ("config.json", "bert_config.json"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as f:
                    shape = json.load(f)
            except (OSError, ValueError):
                return  # load_mlm reports a broken config with its own message
            positions = shape.get("max_position_embeddings", 512)
            if config.maxlen > positions:
                raise FewShotError(f"--maxlen {config.maxlen}: the model has {positions} positions; use --maxlen "
                                   f"{positions} or less")
            method.check_model(config, shape)
            return


def check_pattern_fits(config, pattern, verbalizer):
    """With the checkpoint's vocab.txt (pure Python, no model): the label words are in the vocabulary
    and the pattern leaves room for text within --maxlen."""
    from few_shot.tokenizer import Tokenizer
    folder = model_path(config.model)
    for name in ("vocab.txt", os.path.join("assets", "tokenizer", "vocabulary.txt")):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            tokenizer = Tokenizer(path)
            # the longest label word sets the [MASK] slots, as in PromptPreprocessor
            compiled = pattern.compile(tokenizer, max(len(ids) for ids in verbalizer.token_ids(tokenizer)))
            pattern.check_maxlen(compiled, config.maxlen)
            return


def describe_model(path):
    if path is None:
        return "bundled models/zh-bert-mini (a small demo model; pass --model for a real Chinese BERT)"
    return path


def load_preprocessor(inputs):
    """Load the MLM -> (mlm, PromptPreprocessor over its tokenizer)."""
    from few_shot.loading import load_mlm
    from few_shot.preprocessor import PromptPreprocessor
    config = inputs.config
    mlm = load_mlm(config.model)
    return mlm, PromptPreprocessor(mlm.tokenizer, inputs.pattern, inputs.verbalizer, config.maxlen)


def run_training(config, inputs=None):
    """Train `config.method` with per-epoch valid/test logging; save the best epoch -> metrics dict.
    Three steps: build the model (`build`), open the folder and make the callbacks (`callbacks_for`),
    then fit and save (`fit_and_save`)."""
    inputs = inputs or prepare(config)
    built = build(config, inputs)
    folder = open_folder(config, built)
    logger, callbacks = callbacks_for(config, inputs, built, folder)
    return fit_and_save(config, built, folder, logger, callbacks)


@dataclasses.dataclass
class Built:
    """What `build` made: the strategy, the MLM, the preprocessor, the model (and the trainer that
    fits it: a semi-supervised wrapper or the model itself), the encoded sets and the run summary."""
    strategy: object
    mlm: object
    preprocessor: object
    model: object
    trainer: object
    train_set: object
    valid_set: object
    test_set: object
    unlabeled_set: object
    summary: dict


def build(config, inputs):
    """Load the MLM and build, compile and describe the model under the distribution strategy."""
    import keras

    from few_shot import semi
    from few_shot.builder import build_model
    from few_shot.ptuning import count_params
    from few_shot.training import make_strategy

    keras.utils.set_random_seed(config.seed)
    strategy = make_strategy(config.strategy)
    print(f"model: {describe_model(config.model)}")
    kind = "MultiWorkerMirroredStrategy" if config.strategy == "multiworker" else type(strategy).__name__
    print(f"strategy: {kind} with {strategy.num_replicas_in_sync} replica(s)")
    with strategy.scope():
        mlm, preprocessor = load_preprocessor(inputs)
        model = build_model(config.method, mlm, preprocessor, config)
        # with unlabelled texts, fit a wrapper that adds their MLM loss; evaluate and save `model`
        trainer = semi.SemiSupervisedModel(model, config.mlm_weight) if inputs.unlabeled else model
        trainer.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=model.loss_function())
        for m in (model, trainer):  # weights exist already; keras' BackupAndRestore wants `built` before fit
            if not m.built:
                m.build()
    sets = [preprocessor.encode(rows) for rows in (inputs.train, inputs.valid, inputs.test)]
    unlabeled_set = semi.UnlabeledSet(inputs.unlabeled, preprocessor, seed=config.seed) if inputs.unlabeled else None
    trainable = count_params(model.trainable_weights)
    print(f"data: {len(inputs.train)} labelled train rows, {len(inputs.valid)} valid, {len(inputs.test)} test; "
          f"pattern {inputs.pattern.template!r}; verbalizer {inputs.verbalizer.mapping}")
    if unlabeled_set is not None:
        print(f"semi-supervised: + {config.mlm_weight} x MLM loss on {len(unlabeled_set)} unlabelled texts "
              f"({inputs.unlabeled_source}), {semi.MASK_RATE:.0%} of text tokens masked")
    print(f"trainable parameters: {trainable:,} of {count_params(model.weights):,}")
    # the config as run: the method's default learning rate and pattern filled in
    used = {**dataclasses.asdict(config), "lr": config.learning_rate, "pattern": inputs.pattern.template}
    summary = {"config": used, "seed": config.seed, "trainable_params": trainable,
               "train_rows": len(inputs.train), "unlabeled_rows": len(inputs.unlabeled or ()),
               "unlabeled_source": inputs.unlabeled_source, "model": config.model or DEFAULT_MODEL_NAME}
    return Built(strategy, mlm, preprocessor, model, trainer, *sets, unlabeled_set, summary)


def open_folder(config, built):
    """The run folder, made (or a previous run's files replaced) only now, when every check has passed;
    None on a worker of a cluster that does not write the run."""
    from few_shot.training import is_chief
    if not is_chief(built.strategy):
        return None
    if config.resume:
        return RunFolder(config.output, created=False)
    return RunFolder.prepare(config.output, config.overwrite) if config.output else RunFolder.unique("runs",
                                                                                                      config.method)


def callbacks_for(config, inputs, built, folder):
    """-> (EpochLogger, every callback of the fit): evaluation and metrics.json first, then log.csv,
    TensorBoard, the backup for --resume, early stopping and the progress line."""
    import keras

    from few_shot.calibration import calibrated
    from few_shot.callbacks import BEST_WEIGHTS, CSVLog, EpochLogger, ProgressLine, RunBackup, load_arrays
    from few_shot.config import steps_per_epoch
    from few_shot.training import Scorer

    output = folder.path if folder else None
    multiworker = config.strategy == "multiworker"
    scorer = calibrated(Scorer(built.model, config.eval_batch_size), config, built.preprocessor, inputs.train)
    logger = EpochLogger(scorer, built.valid_set, built.test_set, output, built.summary,
                         labels=built.preprocessor.labels)
    callbacks = [logger]  # first: it adds valid_acc / test_acc to the logs the others read
    if output:
        if inputs.resumed is not None:
            best = os.path.join(output, BEST_WEIGHTS)
            logger.resume(inputs.resumed, load_arrays(best) if os.path.isfile(best) else None)
            print(f"resuming {output} after epoch {len(logger.epochs)}")
        callbacks += [CSVLog(os.path.join(output, "log.csv"), append=config.resume),
                      keras.callbacks.TensorBoard(os.path.join(output, "tensorboard"), write_graph=False)]
    if output or multiworker:  # every worker of a cluster backs up, each into its own folder
        backup = backup_folder(output or config.output, multiworker)
        if not config.resume and multiworker and not output:  # a previous run's backup must not be restored
            remove_owned(backup, BACKUP_FILES, keep_folder=False)
        callbacks.append(RunBackup(backup))
    if config.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping("valid_acc", patience=config.early_stopping, mode="max",
                                                       verbose=1))
    if not sys.stdout.isatty():
        steps = steps_per_epoch(len(inputs.train), config.passes_per_epoch, config.batch_size)
        callbacks.append(ProgressLine(steps, config.progress_seconds))
    return logger, callbacks


def fit_and_save(config, built, folder, logger, callbacks):
    """Fit; save the best epoch (also when interrupted: SIGINT/SIGTERM save what the finished epochs
    reached and raise Interrupted with the line to print) -> the metrics dict."""
    import numpy as np

    from few_shot import compat, semi
    from few_shot.callbacks import BEST_WEIGHTS, plot_curves
    from few_shot.config import steps_per_epoch
    from few_shot.training import training_dataset

    output = folder.path if folder else None
    train_set, unlabeled_set = built.train_set, built.unlabeled_set
    if config.strategy == "multiworker":
        batch_inputs, labels = train_set.batch(np.arange(min(len(train_set), 2)))
        if unlabeled_set is not None:
            batch_inputs.update(unlabeled_set.batch(np.arange(min(len(unlabeled_set), 2)))[0])
        compat.build_from_local_batch(built.trainer, built.strategy, (batch_inputs, labels))
    data = (training_dataset(train_set, config.batch_size, config.seed) if unlabeled_set is None else
            semi.semi_training_dataset(train_set, unlabeled_set, config.batch_size,
                                       config.unlabeled_batch_size or config.batch_size, config.seed))
    steps = steps_per_epoch(len(train_set), config.passes_per_epoch, config.batch_size)
    # an earlier run's tf.data generator pipeline in this process (the experiment scripts run many)
    # lingers until collected: let it go before this run's starts (docs/results.md, Speed)
    gc.collect()
    try:
        with interruptible():
            built.trainer.fit(data, epochs=config.epochs, steps_per_epoch=steps, callbacks=callbacks, shuffle=False,
                              verbose=1 if sys.stdout.isatty() else 2)
    except Interrupted as stop:
        with signals_ignored():  # a second Ctrl-C must not cut the save short
            where = save_interrupted(config, built, folder, logger)
        raise Interrupted(stop.signum, f"interrupted during epoch {len(logger.epochs) + 1}: {where}") from None
    except BaseException as error:
        if folder is not None:
            if logger.epochs:  # keep what the finished epochs measured, marked as failed
                logger.status = "failed"
                logger.write()
            else:
                folder.discard_if_empty()
        if config.strategy == "multiworker" and lost_worker(error):
            cause = next((line.strip() for line in str(error).splitlines() if "aborted" in line.lower()),
                         type(error).__name__)
            raise WorkerLost(f"a worker of the cluster was lost during epoch {len(logger.epochs) + 1} ({cause[:160]}); "
                             f"restart every worker with --resume --output {config.output}: each restores the "
                             f"last finished epoch from its backup") from None
        raise
    logger.status = "completed"
    save_run(config, built.model, logger, built.mlm, output)
    if output:
        plot_curves(os.path.join(output, "curves.png"), logger.epochs, logger.best["best_epoch"])
        if os.path.exists(os.path.join(output, BEST_WEIGHTS)):  # model.keras holds them now
            os.remove(os.path.join(output, BEST_WEIGHTS))
    best = logger.best
    if output:
        print(f"best epoch {best['best_epoch']}: valid_acc {best['best_valid_acc']:.4f}, "
              f"test_acc {best['test_acc_at_best']:.4f}; saved to {output}")
    else:
        print(f"done; the chief worker saves the run to {config.output}")
    return logger.metrics()


def save_interrupted(config, built, folder, logger):
    """After SIGINT/SIGTERM: the best finished epoch saved (status interrupted), or, if no epoch had
    finished, the run's own files removed -> what the message says about the folder."""
    output = folder.path if folder else None
    logger.status = "interrupted"
    if output is None:
        return "this worker writes nothing; the chief saves the run"
    if logger.best_weights is not None:
        save_run(config, built.model, logger, built.mlm, output)
        return (f"the best epoch so far ({logger.best['best_epoch']}) is saved in {output}; continue with "
                f"--resume --output {output}")
    if config.resume:  # the folder's earlier epochs stay, for another --resume
        logger.write()
        return f"no further epoch had finished; {output} is as it was, continue with --resume --output {output}"
    remove_owned(output, RUN_FILES)
    folder.discard_if_empty()
    return "no epoch had finished, so nothing was saved" + ("" if not os.path.isdir(output) else
                                                            f" ({output} holds only what was there before)")


def lost_worker(error):
    """Did the collectives of a multi-worker step abort because a peer went away?"""
    import tensorflow as tf
    return isinstance(error, (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError,
                              tf.errors.DeadlineExceededError))


def save_run(config, model, logger, mlm, output):
    """The best epoch's weights -> model.keras (+ the portable prompt), vocab.txt, metrics.json."""
    logger.restore_best()
    if not output:
        return
    model.save(os.path.join(output, "model.keras"))
    keras_mb = os.path.getsize(os.path.join(output, "model.keras")) / 2 ** 20
    for path, what in get_method(config.method).save(model, output, mlm.path):
        print(f"{what}: {os.path.getsize(path) / 1024:.1f} KB ({os.path.basename(path)}; model.keras: {keras_mb:.1f} MB)")
    shutil.copyfile(mlm.tokenizer.vocab_path, os.path.join(output, "vocab.txt"))
    logger.write()


def zero_shot(config, inputs=None):
    """Score the hand-written pattern with the untrained MLM -> {valid_acc, test_acc, ...}."""
    config = config.for_method("zeroshot")
    inputs = inputs or prepare(config)
    from few_shot.builder import build_model
    from few_shot.training import Scorer

    print(f"model: {describe_model(config.model)}")
    mlm, preprocessor = load_preprocessor(inputs)
    from few_shot.calibration import calibrated
    scorer = calibrated(Scorer(build_model(config.method, mlm, preprocessor, config), config.eval_batch_size), config,
                        preprocessor, inputs.train)
    result = {"pattern": inputs.pattern.template, "verbalizer": inputs.verbalizer.mapping,
              "model": config.model or DEFAULT_MODEL_NAME, "status": "completed", "calibrate": config.calibrate}
    for name, rows in (("valid", inputs.valid), ("test", inputs.test)):
        data = preprocessor.encode(rows)
        predicted = scorer.scores(data, name).argmax(-1)
        result[f"{name}_acc"] = float((predicted == data.labels).mean())
        # how often each label is predicted (the bundled model says 很 for few texts; calibration moves this)
        result[f"{name}_predicted_share"] = {label: float((predicted == i).mean())
                                             for i, label in enumerate(preprocessor.labels)}
    print(f"zero-shot - pattern: {inputs.pattern.template} - valid_acc: {result['valid_acc']:.4f} - "
          f"test_acc: {result['test_acc']:.4f}")
    if config.output:
        folder = RunFolder.prepare(config.output, config.overwrite, files=("metrics.json",))
        with open(os.path.join(folder.path, "metrics.json"), "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, ensure_ascii=False)
    return result
