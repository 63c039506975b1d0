"""Encoding, batching, distributed training and per-epoch evaluation shared by the two scripts."""
import json
import os
import sys
import time

import keras
import numpy as np

from few_shot.backend import inference_function
from few_shot.errors import FewShotError
from few_shot.loading import length_sorted_batches, pad_batch


class EncodedSet:
    """A dataset run through a pattern: token ids (ragged), mask positions [N, M], label indices [N]."""

    def __init__(self, examples, tokenizer, pattern, verbalizer, maxlen, label_ids=None):
        label_ids = label_ids or verbalizer.token_ids(tokenizer)
        compiled = pattern.compile(tokenizer, len(label_ids[0]))
        self.texts = [text for text, _ in examples]
        self.token_ids, masks = [], []
        for text in self.texts:
            ids, mask = pattern.encode(tokenizer, text, maxlen, compiled=compiled)
            self.token_ids.append(ids)
            masks.append(mask)
        self.mask_positions = np.asarray(masks, dtype="int32").reshape(len(examples), len(label_ids[0]))
        index = {label: i for i, label in enumerate(verbalizer.labels)}
        self.labels = np.asarray([index.get(label, -1) for _, label in examples], dtype="int32")
        self.lengths = np.asarray([len(t) for t in self.token_ids])

    def __len__(self):
        return len(self.token_ids)

    def batch(self, idx, pad_id=0, multiple=1):
        """Rows `idx`, padded to their longest row rounded up to a multiple of `multiple`."""
        length = -(-int(self.lengths[idx].max()) // multiple) * multiple
        token_ids = pad_batch([self.token_ids[i] for i in idx], pad_id, length)
        inputs = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids),
                  "mask_positions": self.mask_positions[idx]}
        return inputs, self.labels[idx]


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
        _patch_keras_multiworker_reduce()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "none":
        return tf.distribute.get_strategy()
    return tf.distribute.MirroredStrategy()


def _patch_keras_multiworker_reduce():
    """Keras 3.15 averages per-replica logs with `strategy.reduce("MEAN", v, axis=0)` under
    MultiWorkerMirroredStrategy, which fails for scalar logs such as the loss; reduce those with
    axis=None (the mean over replicas), everything else as Keras does."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer.reduce_per_replica, "few_shot_patch", False):
        return
    original = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            def reduce(v):
                scalar = all(t.shape.rank == 0 for t in strategy.experimental_local_results(v))
                return strategy.reduce("MEAN", v, axis=None if scalar else 0)
            return tf.nest.map_structure(reduce, values)
        return original(values, strategy, reduction)

    reduce_per_replica.few_shot_patch = True
    trainer.reduce_per_replica = reduce_per_replica


def is_chief(strategy):
    """Multi-worker runs write files from worker 0 only."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is None or not resolver.task_type or (resolver.task_type in ("chief", "worker")
                                                          and resolver.task_id == 0)


class EpochLogger(keras.callbacks.Callback):
    """After each epoch: valid/test accuracy, best-on-valid bookkeeping, one log line, metrics.json."""

    def __init__(self, scorer, valid, test, output=None, summary=None):
        super().__init__()
        self.scorer, self.valid, self.test = scorer, valid, test
        self.output = output
        self.summary = summary or {}
        self.epochs = []
        self.best = {"best_epoch": None, "best_valid_acc": -1.0, "test_acc_at_best": None}
        self.best_weights = None
        self.status = "running"  # -> completed, interrupted or failed
        self.start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        valid_acc = self.scorer.accuracy(self.valid, "valid")
        test_acc = self.scorer.accuracy(self.test, "test")
        record = {"epoch": epoch + 1, "loss": float(logs.get("loss", float("nan"))),
                  "valid_acc": valid_acc, "test_acc": test_acc, "seconds": time.time() - self.start}
        if "mlm_loss" in logs:  # semi-supervised runs: the unlabelled MLM part of `loss` (unweighted)
            record["mlm_loss"] = float(logs["mlm_loss"])
        self.epochs.append(record)
        if valid_acc > self.best["best_valid_acc"]:
            self.best = {"best_epoch": epoch + 1, "best_valid_acc": valid_acc, "test_acc_at_best": test_acc}
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
