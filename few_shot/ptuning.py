"""PtuningModel: a frozen BERT MLM whose prompt-token embeddings come from a PromptEncoder,
scored by verbalizer label words at the [MASK] slot(s)."""
import keras
import numpy as np
from keras import ops

from few_shot.bert import gather_positions, split_inputs
from few_shot.layers import PromptEncoder
FIRST_REAL_TOKEN = 106  # Chinese BERT: [PAD], [unused1..99], [UNK], [CLS], [SEP], [MASK], <S>, <T>


@keras.saving.register_keras_serializable(package="few_shot")
class PtuningModel(keras.Model):
    """Inputs `{"token_ids", "segment_ids", "mask_positions"}` -> label scores [batch, num_labels].

    - `prompt_token_ids`: the soft-prompt tokens (`[unused1..n]`). Wherever they occur in
      `token_ids`, their embedding is replaced by the PromptEncoder's output. With
      `encoder=None` they keep ordinary (trainable, if the backbone is) embeddings: the
      full-finetune baseline.
    - `label_token_ids`: `[num_labels][num_masks]` verbalizer word ids. A label's score is the sum
      over its mask slots of the MLM logit of its word piece, computed from the hidden states at
      the mask slots only (no full-vocabulary projection).
    - `objective="vocab"` (as the seed and Su's code): in training the scores become full-vocabulary
      log-probs (sum of log-softmax over the vocab at each slot) and the loss is their negative
      at the true label; `"label"` (as PET): softmax cross-entropy over the labels' scores. At
      inference both give the same ranking (the per-slot normaliser is shared by all labels).
    - Only the prompt encoder trains unless `train_backbone=True` (optionally only the last
      `trainable_layers` encoder layers plus the MLM head).
    - `preprocessor`: the PromptPreprocessor that makes this model's inputs from raw rows; saved
      with the model, so `keras.models.load_model` gives back a model that reads text.
    - `source_token_ids` ("changed" prompt tuning): the vocabulary token each prompt row was initialised
      from (`init="label"` or `"vocab"`); wherever such a token occurs in the input, it too gets its
      trained prompt row instead of its frozen embedding, so the input and the prompt stay consistent
      (a token that started several rows takes the first; -1: none). `changed=True` fills them in.
    """

    def __init__(self, backbone, label_token_ids, prompt_token_ids=(), encoder="lstm", init="unused",
                 objective="label", train_backbone=False, trainable_layers=None, seed=0, preprocessor=None,
                 changed=False, source_token_ids=None, **kwargs):
        # model.keras files written before the preprocessor existed carry these three instead
        self.legacy_text_config = {k: kwargs.pop(k) for k in ("pattern", "verbalizer", "maxlen") if k in kwargs}
        super().__init__(**kwargs)
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        if isinstance(preprocessor, dict):
            preprocessor = keras.saving.deserialize_keras_object(preprocessor)
        self.backbone = backbone
        self.label_token_ids = [list(map(int, ids)) for ids in label_token_ids]
        self.prompt_token_ids = [int(i) for i in prompt_token_ids]
        self.encoder = encoder
        self.init = init
        self.objective = objective
        self.train_backbone = train_backbone
        self.trainable_layers = trainable_layers
        self.seed = seed
        self.preprocessor = preprocessor
        if changed and source_token_ids is None:
            ids = self._initial_prompt_ids()
            source_token_ids = [t if t not in ids[:i] else -1 for i, t in enumerate(ids)]
        self.source_token_ids = None if source_token_ids is None else [int(i) for i in source_token_ids]
        self.num_labels = len(self.label_token_ids)
        self.num_masks = len(self.label_token_ids[0])
        self._freeze_backbone()
        self.prompt_encoder = None
        if encoder is not None and self.prompt_token_ids:
            self.prompt_encoder = PromptEncoder(len(self.prompt_token_ids), backbone.hidden_size, encoder,
                                                name="prompt_encoder")
            self.prompt_encoder.build()
            self.prompt_encoder.set_initial_embeddings(self._initial_prompt_rows())

    def build(self, input_shape=None):
        self.built = True  # every weight is created in __init__

    def _freeze_backbone(self):
        bb = self.backbone
        if not self.train_backbone:
            set_trainable(bb, False)
            return
        set_trainable(bb, True)
        if self.trainable_layers is not None:
            # train the last N encoder layers and the MLM head transform (the tied embedding stays frozen)
            bb.embeddings.trainable = False
            for i, layer in enumerate(bb.encoder_layers):
                layer.trainable = i >= bb.num_layers - self.trainable_layers

    def _initial_prompt_ids(self):
        """The vocabulary tokens whose embeddings start the prompt rows: the [unusedN] slots themselves,
        tokens sampled from the vocabulary ("Random Vocab"), or the label words repeated to the prompt
        length ("Class Label"); None for random rows."""
        n = len(self.prompt_token_ids)
        if self.init == "unused":
            return list(self.prompt_token_ids)
        if self.init == "vocab":
            vocab = self.backbone.vocab_size
            return np.random.default_rng(self.seed).choice(np.arange(FIRST_REAL_TOKEN, vocab), size=n,
                                                           replace=False).tolist()
        if self.init == "label":
            words = [i for ids in self.label_token_ids for i in ids]
            return [words[i % len(words)] for i in range(n)]
        return None

    def _initial_prompt_rows(self):
        table = ops.convert_to_numpy(self.backbone.embedding_matrix)
        ids = self._initial_prompt_ids()
        if ids is not None:
            return table[ids]
        rng = np.random.default_rng(self.seed)
        return rng.normal(0.0, table.std(), size=(len(self.prompt_token_ids), table.shape[1])).astype("float32")

    def prompt_embeddings(self, training=False):
        """The [prompt_length, hidden] vectors that replace the prompt tokens' embeddings."""
        return self.prompt_encoder(training=training)

    def hidden_states(self, inputs, training=False):
        """The backbone's last hidden states [B, T, H], prompt-token embeddings replaced. The one
        place prompts enter the model (the semi-supervised MLM loss runs through it too)."""
        token_ids, segment_ids = split_inputs(inputs)
        embeddings = self.backbone.embed_tokens(token_ids)
        match = None
        if self.prompt_encoder is not None:
            match = self.prompt_slots(token_ids, embeddings.dtype)
            # inputs["prompt_rows"] [B, P, H]: a prompt per row (few_shot/ensemble.py runs N prompts in one batch)
            rows = inputs.get("prompt_rows") if isinstance(inputs, dict) else None
            embeddings = place_prompts(embeddings, match, self.prompt_embeddings(training) if rows is None else rows)
        return self.backbone.encode(token_ids, segment_ids, token_embeddings=embeddings, training=training,
                                    before_layer=self.layer_prompts(inputs, match, training))

    def prompt_slots(self, token_ids, dtype):
        """[B, T, P]: 1 where token t is the p-th prompt token (or, changed, the p-th row's source token)."""
        ids = ops.convert_to_tensor(self.prompt_token_ids, dtype="int32")
        match = ops.equal(token_ids[:, :, None], ids[None, None, :])
        if self.source_token_ids is not None:  # a vocabulary token is never an [unusedN] slot: no double match
            sources = ops.convert_to_tensor(self.source_token_ids, dtype="int32")
            match = ops.logical_or(match, ops.equal(token_ids[:, :, None], sources[None, None, :]))
        return ops.cast(match, dtype)

    def layer_prompts(self, inputs, match, training=False):
        """`before_layer` for backbone.encode: None here; deep prompts (few_shot/layers/deep_prompt.py)
        replace the prompt slots' states at every layer."""
        return None

    def call(self, inputs, training=False):
        at_masks = gather_positions(self.hidden_states(inputs, training), inputs["mask_positions"])  # [B, M, H]
        if isinstance(inputs, dict) and "candidate_ids" in inputs:  # multiple choice: each row's own candidates
            return candidate_scores(self.backbone.mlm_logits(at_masks), inputs["candidate_ids"])
        if len({len(ids) for ids in self.label_token_ids}) > 1:  # label words of several lengths (iflytek)
            return per_length_scores(self.backbone, at_masks, self.label_token_ids)
        scores = self.backbone.label_word_scores(at_masks, self.label_token_ids)
        if training and self.objective == "vocab":
            # the seed's objective: label words' log-probs under the full-vocabulary softmax per slot
            full = self.backbone.mlm_logits(at_masks)
            scores = scores - ops.sum(ops.logsumexp(full, axis=-1), axis=-1, keepdims=True)
        return scores

    def loss_function(self):
        """The training loss that matches `objective`."""
        if self.objective == "label":
            return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        return negative_log_likelihood

    def get_config(self):
        config = super().get_config()
        config.update(backbone=keras.saving.serialize_keras_object(self.backbone),
                      label_token_ids=self.label_token_ids, prompt_token_ids=self.prompt_token_ids,
                      encoder=self.encoder, init=self.init, objective=self.objective,
                      train_backbone=self.train_backbone, trainable_layers=self.trainable_layers,
                      seed=self.seed, source_token_ids=self.source_token_ids,
                      preprocessor=None if self.preprocessor is None else
                      keras.saving.serialize_keras_object(self.preprocessor))
        return config


def candidate_scores(logits, candidate_ids):
    """Full-vocabulary logits at the blank's slots [B, M, V] and each row's candidates [B, K, M]
    -> [B, K]: the sum over slots of each candidate token's log-probability (log-softmax over the
    vocabulary), read with one flat `take` (no [B, K, M, V] one-hot)."""
    log_probs = logits - ops.logsumexp(logits, axis=-1, keepdims=True)
    batch, slots, vocab = ops.shape(log_probs)[0], ops.shape(log_probs)[1], ops.shape(log_probs)[2]
    ids = ops.cast(candidate_ids, "int32")
    rows = ops.arange(batch, dtype="int32")[:, None, None] * slots + ops.arange(slots, dtype="int32")[None, None, :]
    flat = ops.take(ops.reshape(log_probs, (-1,)), ops.reshape(rows * vocab + ids, (-1,)), axis=0)
    return ops.sum(ops.reshape(flat, ops.shape(ids)), axis=-1)


def per_length_scores(backbone, at_masks, label_token_ids):
    """Label words of several token lengths (PerLengthVerbalizer): `at_masks` [B * G, M, H] holds each
    row once per length group (sorted lengths, G of them, M the longest); a label's score is the
    mean over its L slots of its tokens' log-probabilities in its group's sub-row -> [B, C]."""
    groups = sorted({len(ids) for ids in label_token_ids})
    at = ops.reshape(at_masks, (-1, len(groups), ops.shape(at_masks)[1], ops.shape(at_masks)[2]))
    columns, order = [], []
    for g, length in enumerate(groups):
        labels = [c for c, ids in enumerate(label_token_ids) if len(ids) == length]
        logits = backbone.mlm_logits(at[:, g, :length, :])  # [B, L, V]
        ids = ops.convert_to_tensor([label_token_ids[c] for c in labels], dtype="int32")
        ids = ops.broadcast_to(ids[None], (ops.shape(logits)[0], len(labels), length))
        columns.append(candidate_scores(logits, ids) / length)
        order += labels
    return ops.take(ops.concatenate(columns, axis=-1), np.argsort(order), axis=1)


def set_trainable(layer, value):
    """`layer.trainable = value`, always passed on to the sublayers and variables: on the TensorFlow
    backend assigning a layer the value it already has is skipped (a deserialised frozen MLM, built
    with trainable=False, kept trainable sublayers)."""
    keras.layers.Layer.trainable.fset(layer, value)


def place_prompts(states, match, rows):
    """states [B, T, H] with the prompt slots (`match` [B, T, P]) replaced by `rows` ([P, H], or [B, P, H]
    for a prompt per row)."""
    rows = ops.cast(rows, states.dtype)
    placed = ops.einsum("btp,ph->bth" if len(rows.shape) == 2 else "btp,bph->bth", match, rows)
    return states * (1.0 - ops.sum(match, axis=-1, keepdims=True)) + placed


@keras.saving.register_keras_serializable(package="few_shot")
def negative_log_likelihood(y_true, log_probs):
    """-log p(label word of y_true): scores are already full-vocabulary log-probs."""
    y = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    return -ops.sum(log_probs * ops.one_hot(y, ops.shape(log_probs)[-1], dtype=log_probs.dtype), axis=-1)


def count_params(weights):
    return int(sum(np.prod(w.shape) for w in weights))
