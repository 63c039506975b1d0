"""Batching, distributed training and per-epoch evaluation (Scorer, EpochLogger) for every run."""
import json
import os
import sys
import time

import keras
import numpy as np

from few_shot import compat
from few_shot.backend import inference_function
from few_shot.errors import FewShotError
from few_shot.loading import length_sorted_batches


def training_batches(data, batch_size, seed, bucket_batches=8):
    """Endless shuffled batches, padded to their own longest row. Rows are sorted by length inside
    windows of `bucket_batches` batches, so a batch holds rows of similar length (less padding)
    while the batch order stays random."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(data))
        window = batch_size * bucket_batches
        batches = []
        for start in range(0, len(order), window):
            chunk = order[start:start + window]
            chunk = chunk[np.argsort(data.lengths[chunk], kind="stable")]
            batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        for b in rng.permutation(len(batches)):
            yield data.batch(batches[b])


def training_dataset(data, batch_size, seed):
    """tf.data pipeline over `training_batches` (variable sequence length, prefetched)."""
    import tensorflow as tf
    m = data.mask_positions.shape[1]
    signature = ({"token_ids": tf.TensorSpec((None, None), tf.int32),
                  "segment_ids": tf.TensorSpec((None, None), tf.int32),
                  "mask_positions": tf.TensorSpec((None, m), tf.int32)},
                 tf.TensorSpec((None,), tf.int32))
    ds = tf.data.Dataset.from_generator(lambda: training_batches(data, batch_size, seed),
                                        output_signature=signature)
    options = tf.data.Options()
    # a generator has no files to split: multi-worker runs take every n-th batch instead
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


class Scorer:
    """Fast inference: rows sorted by length, big batches padded per batch, one compiled graph."""

    def __init__(self, model, batch_size=128, jit_compile=False, pad_multiple=None):
        self.model = model
        self.batch_size = batch_size
        # XLA compiles once per input shape: lengths rounded up to multiples of 16 cap that at
        # maxlen / 16 compiles (a relaxed tf.function trace serves every length without it)
        self.pad_multiple = pad_multiple or (16 if jit_compile else 1)
        self.fn = inference_function(lambda inputs: model(inputs, training=False), jit_compile=jit_compile)

    def batches(self, data):
        """Row indices of each batch, shortest rows first (so a batch pads to a similar length)."""
        return length_sorted_batches(data.lengths, self.batch_size)

    def scores(self, data, progress=None):
        out = np.zeros((len(data), self.model.num_labels), dtype="float32")
        batches = self.batches(data)
        if progress:
            from tqdm.auto import tqdm
            batches = tqdm(batches, desc=progress, leave=False, file=sys.stderr,
                           disable=len(batches) < 4 or not sys.stderr.isatty())
        for idx in batches:
            inputs, _ = data.batch(idx, multiple=self.pad_multiple)
            out[idx] = keras.ops.convert_to_numpy(self.fn(inputs))
        return out

    def accuracy(self, data, progress=None):
        return float(np.mean(self.scores(data, progress).argmax(-1) == data.labels))


def make_strategy(kind="mirrored"):
    """MirroredStrategy over all local GPUs (one CPU device otherwise), or multi-worker from TF_CONFIG."""
    import tensorflow as tf
    if kind == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise FewShotError("--strategy multiworker needs TF_CONFIG set on every worker; see README "
                               "'Several machines'")
        compat.patch_multiworker_log_reduction()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "none":
        return tf.distribute.get_strategy()
    return tf.distribute.MirroredStrategy()


def is_chief(strategy):
    """Multi-worker runs write files from worker 0 only."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is None or not resolver.task_type or (resolver.task_type in ("chief", "worker")
                                                          and resolver.task_id == 0)


class EpochLogger(keras.callbacks.Callback):
    """After each epoch: valid/test accuracy (and macro-F1), best-on-valid bookkeeping with the test
    confusion matrix at the best epoch, one log line, metrics.json."""

    def __init__(self, scorer, valid, test, output=None, summary=None, labels=None):
        super().__init__()
        self.scorer, self.valid, self.test = scorer, valid, test
        self.labels = labels
        self.output = output
        self.summary = summary or {}
        self.epochs = []
        self.best = {"best_epoch": None, "best_valid_acc": -1.0, "test_acc_at_best": None}
        self.best_weights = None
        self.status = "running"  # -> completed, interrupted or failed
        self.start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        from sklearn.metrics import confusion_matrix, f1_score
        logs = logs or {}
        valid_pred = self.scorer.scores(self.valid, "valid").argmax(-1)
        test_pred = self.scorer.scores(self.test, "test").argmax(-1)
        valid_acc = float(np.mean(valid_pred == self.valid.labels))
        test_acc = float(np.mean(test_pred == self.test.labels))
        classes = np.arange(self.scorer.model.num_labels)
        record = {"epoch": epoch + 1, "loss": float(logs.get("loss", float("nan"))),
                  "valid_acc": valid_acc, "test_acc": test_acc,
                  "valid_macro_f1": float(f1_score(self.valid.labels, valid_pred, labels=classes, average="macro",
                                                   zero_division=0)),
                  "test_macro_f1": float(f1_score(self.test.labels, test_pred, labels=classes, average="macro",
                                                  zero_division=0)),
                  "seconds": time.time() - self.start}
        if "mlm_loss" in logs:  # semi-supervised runs: the unlabelled MLM part of `loss` (unweighted)
            record["mlm_loss"] = float(logs["mlm_loss"])
        self.epochs.append(record)
        if valid_acc > self.best["best_valid_acc"]:
            self.best = {"best_epoch": epoch + 1, "best_valid_acc": valid_acc, "test_acc_at_best": test_acc,
                         "test_macro_f1_at_best": record["test_macro_f1"],
                         # rows: true label, columns: predicted, in the order of `labels`
                         "test_confusion_at_best": {"labels": self.labels or classes.tolist(), "matrix":
                                                    confusion_matrix(self.test.labels, test_pred,
                                                                     labels=classes).tolist()}}
            self.best_weights = [keras.ops.convert_to_numpy(w) for w in self.model.trainable_weights]
        print(f"epoch: {epoch + 1} - loss: {record['loss']:.4f} - valid_acc: {valid_acc:.4f} - "
              f"test_acc: {test_acc:.4f} - best_valid_acc: {self.best['best_valid_acc']:.4f} - "
              f"test_acc_at_best: {self.best['test_acc_at_best']:.4f}", flush=True)
        self.write()

    def restore_best(self):
        if self.best_weights is not None:
            for w, value in zip(self.model.trainable_weights, self.best_weights):
                w.assign(value)

    def metrics(self):
        return {**self.summary, "status": self.status, "epochs": self.epochs, **self.best,
                "wall_seconds": time.time() - self.start}

    def write(self):
        if self.output:
            # written aside, then renamed: an interrupt mid-write never leaves half a metrics.json
            path = os.path.join(self.output, "metrics.json")
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                json.dump(self.metrics(), f, indent=2, ensure_ascii=False)
            os.replace(path + ".tmp", path)
