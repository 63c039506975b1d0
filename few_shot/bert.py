"""BERT masked-LM in Keras 3 (any backend), laid out so checkpoints map onto it one-to-one."""
import keras
from keras import ops

from few_shot.layers import BertEmbeddings, MaskedLMHead, TransformerEncoder

NEG_INF = -1e9


def split_inputs(inputs):
    """Accept {"token_ids", "segment_ids"} or (token_ids, segment_ids); ids become int32
    (MirroredStrategy builds Keras 3 models with float inputs)."""
    if isinstance(inputs, dict):
        token_ids, segment_ids = inputs["token_ids"], inputs.get("segment_ids")
    elif isinstance(inputs, (list, tuple)):
        token_ids, segment_ids = inputs[0], inputs[1] if len(inputs) > 1 else None
    else:
        token_ids, segment_ids = inputs, None
    token_ids = ops.cast(token_ids, "int32")
    segment_ids = ops.zeros_like(token_ids) if segment_ids is None else ops.cast(segment_ids, "int32")
    return token_ids, segment_ids


def gather_positions(hidden, positions):
    """hidden [B, T, H], positions [B, P] -> [B, P, H]: the hidden states at those positions (the
    [MASK] slots, the masked tokens of MLM pretraining). One flat `take`: every backend, no [B, P, T]."""
    positions = ops.cast(positions, "int32")
    batch, length, size = ops.shape(hidden)[0], ops.shape(hidden)[1], ops.shape(hidden)[2]
    index = positions + ops.arange(batch, dtype="int32")[:, None] * length
    flat = ops.take(ops.reshape(hidden, (-1, size)), ops.reshape(index, (-1,)), axis=0)
    return ops.reshape(flat, (batch, ops.shape(positions)[1], size))


@keras.saving.register_keras_serializable(package="few_shot")
class BertMaskedLM(keras.Model):
    """BERT encoder + MLM head with tied embeddings. `call` returns full-vocabulary logits."""

    def __init__(self, vocab_size, hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072,
                 max_position=512, type_vocab_size=2, dropout=0.1, layer_norm_epsilon=1e-12,
                 pad_id=0, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.max_position = max_position
        self.type_vocab_size = type_vocab_size
        self.dropout_rate = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.pad_id = pad_id
        self.embeddings = BertEmbeddings(vocab_size, hidden_size, max_position, type_vocab_size, dropout,
                                         layer_norm_epsilon, name="embeddings")
        self.encoder_layers = [
            TransformerEncoder(hidden_size, num_heads, intermediate_size, dropout, layer_norm_epsilon,
                               name=f"encoder_layer_{i}")
            for i in range(num_layers)
        ]
        self.mlm_head = MaskedLMHead(vocab_size, hidden_size, layer_norm_epsilon, name="mlm_head")
        self.embeddings.build()
        for layer in self.encoder_layers:
            layer.build()
        self.mlm_head.build()
        self.built = True  # so save_weights/save_preset work before the first call

    def build(self, input_shape=None):
        self.built = True  # every weight is created in __init__

    @classmethod
    def from_bert_config(cls, config, **kwargs):
        """Build from a Google `bert_config.json` / HF `config.json` dict."""
        act = config.get("hidden_act", "gelu")
        if act not in ("gelu", "gelu_python"):
            raise ValueError(f"hidden_act={act!r} is not supported; BERT checkpoints use 'gelu' (erf)")
        return cls(
            vocab_size=config["vocab_size"], hidden_size=config["hidden_size"],
            num_layers=config["num_hidden_layers"], num_heads=config["num_attention_heads"],
            intermediate_size=config["intermediate_size"],
            max_position=config.get("max_position_embeddings", 512),
            type_vocab_size=config.get("type_vocab_size", 2),
            dropout=config.get("hidden_dropout_prob", 0.1),
            layer_norm_epsilon=config.get("layer_norm_eps", 1e-12),
            pad_id=config.get("pad_token_id", 0) or 0, **kwargs)

    def bert_config(self):
        """The HF-style config dict (also valid as a Google bert_config.json)."""
        return {
            "architectures": ["BertForMaskedLM"], "model_type": "bert",
            "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_layers, "num_attention_heads": self.num_heads,
            "intermediate_size": self.intermediate_size, "max_position_embeddings": self.max_position,
            "type_vocab_size": self.type_vocab_size, "hidden_act": "gelu",
            "hidden_dropout_prob": self.dropout_rate, "attention_probs_dropout_prob": self.dropout_rate,
            "layer_norm_eps": self.layer_norm_epsilon, "initializer_range": 0.02,
            "pad_token_id": self.pad_id, "tie_word_embeddings": True,
        }

    @property
    def embedding_matrix(self):
        return self.embeddings.token_embedding.embeddings

    def embed_tokens(self, token_ids):
        return self.embeddings.token_embedding(ops.cast(token_ids, "int32"))

    def encode(self, token_ids, segment_ids, token_embeddings=None, training=False, before_layer=None):
        """-> last hidden states [B, T, H]; padding (token id == pad_id) is masked out of attention.
        `before_layer(i, x) -> x` rewrites the input of encoder layer i >= 1 (deep prompts)."""
        bias = ops.where(ops.not_equal(token_ids, self.pad_id), 0.0, NEG_INF)[:, None, None, :]
        x = self.embeddings(token_ids, segment_ids, token_embeddings=token_embeddings, training=training)
        for i, layer in enumerate(self.encoder_layers):
            if before_layer is not None and i:
                x = before_layer(i, x)
            x = layer(x, bias, training=training)
        return x

    def mlm_logits(self, hidden):
        """Hidden states -> logits over the whole vocabulary."""
        return self.mlm_head(hidden, self.embedding_matrix)

    def label_word_scores(self, hidden_at_masks, label_token_ids):
        """Hidden states at the mask slots [B, M, H] -> label scores [B, C]: the sum over slots of
        each label word's MLM logit, without the full-vocabulary projection."""
        return self.mlm_head.label_word_scores(hidden_at_masks, self.embedding_matrix, label_token_ids)

    def call(self, inputs, training=False):
        token_ids, segment_ids = split_inputs(inputs)
        return self.mlm_logits(self.encode(token_ids, segment_ids, training=training))

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, hidden_size=self.hidden_size, num_layers=self.num_layers,
                      num_heads=self.num_heads, intermediate_size=self.intermediate_size,
                      max_position=self.max_position, type_vocab_size=self.type_vocab_size,
                      dropout=self.dropout_rate, layer_norm_epsilon=self.layer_norm_epsilon, pad_id=self.pad_id)
        return config
