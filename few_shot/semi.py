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
import json
import math
import os

import keras
import numpy as np
from keras import ops

from few_shot.errors import FewShotError
from few_shot.loading import pad_batch
from few_shot.training import training_batches

MASK_RATE = 0.15
MLM_KEYS = ("mlm_token_ids", "mlm_positions", "mlm_labels", "mlm_weights")
FEWCLUE_UNLABELED = ("unlabeled.json", "unlabeled_data.json")


# -- unlabelled texts ---------------------------------------------------------------------------

def read_unlabeled(path, text_field=None):
    """-> [text]. One text per line; `text<TAB>label` lines keep the text (labels are ignored) and
    JSON lines (FewCLUE's unlabeled_data.json) give their `text_field` (default text/sentence/
    content/title). Blank lines are skipped; a file without any text is an error."""
    from few_shot.datasets import TEXT_FIELDS
    if not os.path.isfile(path):
        raise FewShotError(f"--unlabeled {path}: no such file; pass a UTF-8 text file, one text per line")
    texts = []
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip().lstrip("\ufeff")
                if not line:
                    continue
                if line.startswith("{"):
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        row = None
                    if isinstance(row, dict):
                        fields = [text_field] if text_field else [k for k in TEXT_FIELDS if k in row]
                        if not fields or fields[0] not in row:
                            raise FewShotError(f"--unlabeled {path}:{lineno}: no text field among "
                                               f"{', '.join(map(str, row))}; name it with --text-field")
                        line = str(row[fields[0]]).strip()
                elif "\t" in line:
                    line = line.rsplit("\t", 1)[0].strip()
                if line:
                    texts.append(line)
    except UnicodeDecodeError as e:
        raise FewShotError(f"--unlabeled {path}: not UTF-8 ({e.reason} at byte {e.start}); re-save it as UTF-8") \
            from None
    if not texts:
        raise FewShotError(f"--unlabeled {path}: no texts (the file is empty or blank); pass one text per line")
    return texts


def unlabeled_remainder(all_train, labelled):
    """The texts of the full train split that are not among the labelled rows (labels dropped)."""
    used = {text for text, _ in labelled}
    return [text for text, _ in all_train if text not in used]


def unlabeled_texts(args, labelled):
    """-> (texts, where they come from), or (None, None) without `--semi`/`--unlabeled`. The texts
    are `--unlabeled FILE`, else FewCLUE's unlabeled.json / unlabeled_data.json (with
    `--fewclue-fold`), else the train rows not among the `labelled` ones (for FewCLUE: the rest of
    train_few_all, the pool the folds are drawn from)."""
    from few_shot import datasets
    if not (args.unlabeled or args.semi):
        return None, None
    path = args.unlabeled
    if path is None and args.fewclue_fold is not None:
        path = next((p for p in (os.path.join(args.data, n) for n in FEWCLUE_UNLABELED) if os.path.isfile(p)), None)
    if path is not None:
        texts, source = read_unlabeled(path, args.text_field), path
    else:
        if args.fewclue_fold is not None:
            pool_path = os.path.join(args.data, "train_few_all.json")
            pool = datasets.read_examples(pool_path, args.text_field, args.label_field) \
                if os.path.isfile(pool_path) else []
        else:
            pool = datasets.read_examples(datasets.find_split(args.data, "train"), args.text_field,
                                          args.label_field)
        texts, source = unlabeled_remainder(pool, labelled), "the rest of the train split"
        if not texts:
            raise FewShotError(f"--semi: the train split of {args.data} has no rows beyond the {len(labelled)} "
                               f"labelled ones; pass --unlabeled FILE with unlabelled texts")
    return (texts[:args.max_unlabeled] if args.max_unlabeled else texts), source


class UnlabeledSet:
    """Unlabelled texts run through a pattern; `batch(idx)` masks their text tokens afresh (a new
    random masking every time a row is drawn, seeded by `seed`)."""

    def __init__(self, texts, tokenizer, pattern, num_masks, maxlen, mask_rate=MASK_RATE, seed=0):
        from few_shot.pretraining import Masker
        before, after = compiled = pattern.compile(tokenizer, num_masks)
        self.pad_id = tokenizer.pad_id
        self.token_ids, self.groups = [], []
        for text in texts:
            ids, _ = pattern.encode(tokenizer, text, maxlen, compiled=compiled)
            ids = np.asarray(ids, dtype=np.int32)
            groups = np.full(len(ids), -1, dtype=np.int64)
            groups[len(before):len(ids) - len(after)] = np.arange(len(ids) - len(before) - len(after))
            groups[ids == tokenizer.token_dict["[UNK]"]] = -1
            self.token_ids.append(ids)
            self.groups.append(groups)
        self.lengths = np.asarray([len(t) for t in self.token_ids])
        self.max_predictions = max(1, math.ceil((maxlen - len(before) - len(after)) * mask_rate))
        self.masker = Masker(tokenizer, mask_rate, self.max_predictions)
        self.rng = np.random.default_rng([seed, 2])

    def __len__(self):
        return len(self.token_ids)

    def batch(self, idx):
        """-> ({mlm_token_ids [B, T], mlm_positions/mlm_labels/mlm_weights [B, P]}, None)."""
        out = [self.masker.mask_block(self.token_ids[i], self.groups[i], self.rng) for i in idx]
        ids, positions, labels, weights = zip(*out)
        inputs = {"mlm_token_ids": pad_batch(list(ids), self.pad_id), "mlm_positions": np.stack(positions),
                  "mlm_labels": np.stack(labels), "mlm_weights": np.stack(weights)}
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

def prompted_hidden(model, token_ids, segment_ids, training=False):
    """Last hidden states of `PtuningModel` `model` for `token_ids`, with the soft-prompt tokens'
    embeddings replaced by its prompt encoder's output (as `PtuningModel.call` does)."""
    embeddings = model.backbone.embed_tokens(token_ids)
    if model.prompt_encoder is not None:
        prompts = ops.cast(model.prompt_embeddings(training), embeddings.dtype)
        ids = ops.convert_to_tensor(model.prompt_token_ids, dtype="int32")
        match = ops.cast(ops.equal(token_ids[:, :, None], ids[None, None, :]), embeddings.dtype)
        embeddings = (embeddings * (1.0 - ops.sum(match, axis=-1, keepdims=True))
                      + ops.einsum("btp,ph->bth", match, prompts))
    return model.backbone.encode(token_ids, segment_ids, token_embeddings=embeddings, training=training)


def masked_lm_loss(model, inputs, training=False):
    """Mean cross-entropy of the original tokens at the masked positions of `inputs["mlm_*"]`."""
    token_ids = ops.cast(inputs["mlm_token_ids"], "int32")
    positions = ops.cast(inputs["mlm_positions"], "int32")
    labels = ops.cast(inputs["mlm_labels"], "int32")
    weights = ops.cast(inputs["mlm_weights"], "float32")
    hidden = prompted_hidden(model, token_ids, ops.zeros_like(token_ids), training)
    select = ops.one_hot(positions, ops.shape(hidden)[1], dtype=hidden.dtype)  # [B, P, T]
    logits = model.backbone.mlm_logits(ops.matmul(select, hidden))  # [B, P, V]
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


def check_semi_args(args):
    if args.mlm_weight <= 0:
        raise FewShotError(f"--mlm-weight {args.mlm_weight}: must be > 0")
    for flag in ("unlabeled_batch_size", "max_unlabeled"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise FewShotError(f"--{flag.replace('_', '-')} {value}: must be a positive integer")
