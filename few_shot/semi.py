"""Semi-supervised training (`--semi` / `--unlabeled FILE`): the labelled loss plus a masked-LM
loss on unlabelled texts, as PET and Su's sentiment example (kexue.fm/archives/7764) do.

Every training step takes a labelled batch and an unlabelled batch. An unlabelled text is run
through the same pattern as the labelled rows (soft-prompt tokens, [MASK] label slot, text), then
15% of its *text* tokens (never the prompt, the label slot or [CLS]/[SEP]) are masked BERT-style
(80% [MASK] / 10% random token / 10% unchanged); the target at a masked position is the original
token. The total loss is `labelled loss + mlm_weight * mean MLM cross-entropy over the masked
positions`. With P-tuning's frozen backbone the MLM loss reaches the prompt encoder only; with
the finetune baseline it trains the whole model.

`SemiSupervisedModel` wraps a `PtuningModel` (`.inner`): it returns the inner model's label
scores and adds the MLM loss with `add_loss` in training. Save `.inner`: the saved model is a
plain `PtuningModel`, so `--predict` and `PromptClassifier` work unchanged.
"""
import math

import keras
import numpy as np
from keras import ops

from few_shot.bert import gather_positions
from few_shot.batching import pad_batch
from few_shot.masking import Masker
from few_shot.training import training_batches

MASK_RATE = 0.15
MLM_KEYS = ("mlm_token_ids", "mlm_segment_ids", "mlm_positions", "mlm_labels", "mlm_weights")


class UnlabeledSet:
    """Unlabelled rows run through the preprocessor's pattern; `batch(idx)` masks their field text
    afresh (a new random masking every time a row is drawn, seeded by `seed`)."""

    def __init__(self, rows, preprocessor, mask_rate=MASK_RATE, seed=0):
        tokenizer = preprocessor.tokenizer
        self.pad_id = tokenizer.pad_id
        self.token_ids, self.segment_ids, self.groups = [], [], []
        for row in rows:
            encoded = preprocessor.encode_row(row)
            ids = np.asarray(encoded.token_ids, dtype=np.int32)
            groups = np.full(len(ids), -1, dtype=np.int64)
            groups[encoded.text_positions] = np.arange(len(encoded.text_positions))
            groups[ids == tokenizer.unk_id] = -1
            self.token_ids.append(ids)
            self.segment_ids.append(encoded.segment_ids)
            self.groups.append(groups)
        self.lengths = np.asarray([len(t) for t in self.token_ids])
        budget = preprocessor.maxlen - preprocessor.pattern.fixed_length(preprocessor._compiled)
        self.max_predictions = max(1, math.ceil(budget * mask_rate))
        self.masker = Masker(tokenizer, mask_rate, self.max_predictions)
        self.rng = np.random.default_rng([seed, 2])

    def __len__(self):
        return len(self.token_ids)

    def batch(self, idx):
        """-> ({mlm_token_ids [B, T], mlm_positions/mlm_labels/mlm_weights [B, P]}, None)."""
        out = [self.masker.mask_block(self.token_ids[i], self.groups[i], self.rng) for i in idx]
        ids, positions, labels, weights = zip(*out)
        inputs = {"mlm_token_ids": pad_batch(list(ids), self.pad_id),
                  "mlm_segment_ids": pad_batch([self.segment_ids[i] for i in idx], 0),
                  "mlm_positions": np.stack(positions), "mlm_labels": np.stack(labels),
                  "mlm_weights": np.stack(weights)}
        return inputs, None


def semi_batches(labelled, unlabeled, batch_size, unlabeled_batch_size, seed):
    """Endless (inputs, labels): a labelled batch (`training_batches`) with an unlabelled batch's
    `mlm_*` inputs merged into its input dict."""
    unlabelled_stream = training_batches(unlabeled, unlabeled_batch_size, seed + 1)
    for (inputs, labels), (extra, _) in zip(training_batches(labelled, batch_size, seed), unlabelled_stream):
        yield {**inputs, **extra}, labels


def semi_training_dataset(labelled, unlabeled, batch_size, unlabeled_batch_size, seed):
    """tf.data pipeline over `semi_batches` (as `training.training_dataset`)."""
    import tensorflow as tf
    m, p = labelled.mask_positions.shape[1], unlabeled.max_predictions
    signature = ({"token_ids": tf.TensorSpec((None, None), tf.int32),
                  "segment_ids": tf.TensorSpec((None, None), tf.int32),
                  "mask_positions": tf.TensorSpec((None, m), tf.int32),
                  "mlm_token_ids": tf.TensorSpec((None, None), tf.int32),
                  "mlm_segment_ids": tf.TensorSpec((None, None), tf.int32),
                  "mlm_positions": tf.TensorSpec((None, p), tf.int32),
                  "mlm_labels": tf.TensorSpec((None, p), tf.int32),
                  "mlm_weights": tf.TensorSpec((None, p), tf.float32)},
                 tf.TensorSpec((None,), tf.int32))
    ds = tf.data.Dataset.from_generator(
        lambda: semi_batches(labelled, unlabeled, batch_size, unlabeled_batch_size, seed),
        output_signature=signature)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


# -- the model ----------------------------------------------------------------------------------

def masked_lm_loss(model, inputs, training=False):
    """Mean cross-entropy of the original tokens at the masked positions of `inputs["mlm_*"]`, the
    prompts entering through the model's own `hidden_states`."""
    hidden = model.hidden_states({"token_ids": inputs["mlm_token_ids"], "segment_ids": inputs["mlm_segment_ids"]},
                                 training)
    logits = model.backbone.mlm_logits(gather_positions(hidden, inputs["mlm_positions"]))  # [B, P, V]
    labels = ops.cast(inputs["mlm_labels"], "int32")
    weights = ops.cast(inputs["mlm_weights"], "float32")
    ce = keras.losses.sparse_categorical_crossentropy(labels, ops.cast(logits, "float32"), from_logits=True)
    return ops.sum(ce * weights) / ops.maximum(ops.sum(weights), 1.0)


class SemiSupervisedModel(keras.Model):
    """`PtuningModel` + `mlm_weight` x masked-LM loss on the unlabelled `mlm_*` inputs (training only).
    Returns the inner model's label scores; evaluate and save `.inner`. Besides Keras' `loss` (the
    total), training logs `mlm_loss`, the epoch's mean unweighted MLM loss."""

    def __init__(self, inner, mlm_weight=1.0, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner
        self.mlm_weight = float(mlm_weight)
        self.num_labels = inner.num_labels
        self.mlm_loss_tracker = keras.metrics.Mean(name="mlm_loss")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x, y, y_pred, sample_weight, training=training)
        if training and self.losses:
            self.mlm_loss_tracker.update_state(ops.sum(self.losses) / self.mlm_weight)
        return loss

    def build(self, input_shape=None):
        self.built = True  # every weight belongs to `inner`, created already

    def call(self, inputs, training=False):
        scores = self.inner({k: v for k, v in inputs.items() if k not in MLM_KEYS}, training=training)
        if training and "mlm_token_ids" in inputs:
            self.add_loss(self.mlm_weight * masked_lm_loss(self.inner, inputs, training=True))
        return scores
