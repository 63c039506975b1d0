"""Batching, distributed training and per-epoch evaluation (Scorer, EpochLogger) for every run."""
import os
import sys

import keras
import numpy as np

from few_shot import compat
from few_shot.backend import inference_function
from few_shot.errors import FewShotError
from few_shot.batching import length_sorted_batches


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
    if getattr(data, "candidate_ids", None) is not None:  # multiple choice (chid): each row's candidates
        signature[0]["candidate_ids"] = tf.TensorSpec((None, data.candidate_ids.shape[1], m), tf.int32)
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
            raise FewShotError("--strategy multiworker needs TF_CONFIG set on every worker; see "
                               "docs/distributed.md")
        compat.patch_multiworker_log_reduction()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "none":
        return tf.distribute.get_strategy()
    return tf.distribute.MirroredStrategy()


def is_chief(strategy):
    """Multi-worker runs write files from worker 0 only."""
    from few_shot.run_folder import is_chief_task
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is None or not resolver.task_type or is_chief_task((resolver.task_type, resolver.task_id))
