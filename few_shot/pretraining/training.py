"""The Keras pieces of MLM pretraining: the step-indexed batches, the masked-positions model, the
learning-rate schedule, AdamW, the mixed-precision scope and the TensorFlow distribution strategy."""
import contextlib
import threading

import keras
import numpy as np
from keras import ops

from few_shot.bert import split_inputs


class MLMBatches(keras.utils.PyDataset):
    """Batch `i` = the masked blocks of global step `start_step + i`. Blocks are produced in order
    (any thread may ask for any index; a lock serialises the stream) and the stream state before
    each batch is remembered, so a checkpoint can save exactly where the next step's data starts."""

    # Keras may build more than one iterator over the batches (each starts at batch 0) and
    # prefetches ahead of training, so a batch can be asked for after the stream has moved on:
    # then the stream is rewound to the state remembered for that step and replayed (same blocks).
    KEEP, KEEP_STATES = 64, 4096

    def __init__(self, stream, masker, batch_size, start_step, num_steps, workers=1):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
        self.stream, self.masker, self.batch_size = stream, masker, batch_size
        self.start_step, self.num_steps = start_step, num_steps
        self._next = start_step
        self._blocks, self._states = {}, {}
        self._lock = threading.Lock()
        self.rewinds = 0  # replays (each re-reads the stream from a remembered state): should stay ~0
        self.late_requests, self._latest = 0, -1  # requests for a step before one already asked for

    def __len__(self):
        return self.num_steps

    def blocks(self, step):
        with self._lock:
            self.late_requests += step < self._latest
            self._latest = max(self._latest, step)
            if step not in self._blocks and step < self._next:
                if step not in self._states:
                    raise RuntimeError(f"batch for step {step} is too far behind to replay")
                self.stream.restore(self._states[step])
                self.rewinds += 1
                self._next = step
            while self._next <= step:
                self._states[self._next] = self.stream.state()
                made = [self.stream.next_block() for _ in range(self.batch_size)]
                self._blocks[self._next] = (np.stack([m[0] for m in made]), np.stack([m[1] for m in made]))
                self._blocks.pop(self._next - self.KEEP, None)
                self._states.pop(self._next - self.KEEP_STATES, None)
                self._next += 1
            return self._blocks[step]

    def __getitem__(self, index):
        step = self.start_step + index
        ids, groups = self.blocks(step)
        inputs, labels, weights = self.masker.mask_batch(ids, groups, step)
        return inputs, labels, weights

    def stream_state_at(self, step):
        """The stream position from which the batch of `step` is made."""
        with self._lock:
            if step in self._states:
                return self._states[step]
        self.blocks(step)  # not made yet (or the stream was rewound since): make it, which records it
        with self._lock:
            return self._states[step]


# -- model, loss, schedule ---------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="few_shot")
class MaskedLMPretrainer(keras.Model):
    """{token_ids, segment_ids, masked_positions [B, P]} -> logits [B, P, vocab] at the masked
    positions only (gathered before the vocabulary projection, as BERT's pretraining does)."""

    def __init__(self, bert, **kwargs):
        super().__init__(**kwargs)
        self.bert = bert
        self.batch_loss = LastValue(name="batch_loss")

    def compute_loss(self, *args, **kwargs):
        """The compiled loss, also kept as this step's `batch_loss` log (no second cross-entropy)."""
        loss = super().compute_loss(*args, **kwargs)
        self.batch_loss.update_state(loss)
        return loss

    def call(self, inputs, training=False):
        token_ids, segment_ids = split_inputs(inputs)
        positions = ops.cast(inputs["masked_positions"], "int32")
        hidden = self.bert.encode(token_ids, segment_ids, training=training)
        batch, length = ops.shape(hidden)[0], ops.shape(hidden)[1]
        flat = ops.reshape(hidden, (-1, self.bert.hidden_size))
        index = positions + ops.arange(batch, dtype="int32")[:, None] * length
        gathered = ops.reshape(ops.take(flat, ops.reshape(index, (-1,)), axis=0),
                               (batch, ops.shape(positions)[1], self.bert.hidden_size))
        return self.bert.mlm_logits(gathered)


@keras.saving.register_keras_serializable(package="few_shot")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak` over `warmup_steps` (the first update already uses peak/warmup),
    then linear decay to 0 at `total_steps`."""

    def __init__(self, peak, warmup_steps, total_steps):
        self.peak, self.warmup_steps, self.total_steps = float(peak), int(warmup_steps), int(total_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = (step + 1.0) / float(max(1, self.warmup_steps))
        decay = (float(self.total_steps) - step) / float(max(1, self.total_steps - self.warmup_steps))
        return self.peak * ops.maximum(0.0, ops.minimum(warm, decay))

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


class LastValue(keras.metrics.Metric):
    """Holds the last value given to `update_state` (Keras' own `loss` log is a running mean).
    Summed over replicas on read, which suits a loss already divided by the replica count."""

    def __init__(self, name="batch_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.value = self.add_variable((), "zeros", name="value")

    def update_state(self, value):
        self.value.assign(ops.cast(value, self.value.dtype))

    def result(self):
        return ops.convert_to_tensor(self.value)


def make_optimizer(c, total_steps):
    optimizer = keras.optimizers.AdamW(
        learning_rate=WarmupLinearDecay(c.lr, c.warmup_steps, total_steps), weight_decay=c.weight_decay,
        beta_1=0.9, beta_2=0.999, epsilon=1e-6, global_clipnorm=c.clip_norm or None)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])  # as BERT: no decay on LN / biases
    return optimizer


@contextlib.contextmanager
def mixed_precision(enabled):
    """Keras' global dtype policy "mixed_bfloat16" (bf16 compute, float32 variables and loss) for the
    duration of the run, then the previous policy again."""
    if not enabled:
        yield
        return
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def make_strategy():
    """MirroredStrategy over all local GPUs (else the CPU) under TensorFlow; None otherwise."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf
    return tf.distribute.MirroredStrategy()
