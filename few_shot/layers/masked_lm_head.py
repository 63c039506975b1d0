import keras
from keras import ops

from few_shot.layers.transformer_encoder import gelu_erf


@keras.saving.register_keras_serializable(package="few_shot")
class MaskedLMHead(keras.layers.Layer):
    """BERT's MLM head: dense -> erf-GELU -> LayerNorm(1e-12), then the *tied* word embeddings + bias.

    The embedding matrix is passed to `call` rather than owned, so it stays a single variable
    shared with the input embeddings (as in the checkpoints). `label_word_scores` reads only the
    verbalizer's words, without forming the full [.., vocab] matrix.
    """

    def __init__(self, vocab_size, hidden_size, layer_norm_epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.layer_norm_epsilon = layer_norm_epsilon
        self.dense = keras.layers.Dense(hidden_size, kernel_initializer=keras.initializers.TruncatedNormal(
            stddev=0.02), name="transform")
        self.layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="layer_norm")

    def build(self, input_shape=None):
        self.dense.build((None, self.hidden_size))
        self.layer_norm.build((None, self.hidden_size))
        self.output_bias = self.add_weight(shape=(self.vocab_size,), initializer="zeros", name="output_bias")
        self.built = True

    def transform(self, hidden):
        return self.layer_norm(gelu_erf(self.dense(hidden)))

    def call(self, hidden, embedding_matrix):
        h = self.transform(hidden)
        return ops.matmul(h, ops.transpose(ops.cast(embedding_matrix, h.dtype))) + ops.cast(self.output_bias, h.dtype)

    def label_word_scores(self, hidden, embedding_matrix, label_token_ids):
        """hidden [B, M, H] at the M mask slots, label_token_ids [C, M] -> [B, C]: for each label the
        sum over slots of its word piece's logit at that slot."""
        h = self.transform(hidden)
        ids = ops.convert_to_tensor(label_token_ids, dtype="int32")
        rows = ops.cast(ops.take(embedding_matrix, ids, axis=0), h.dtype)  # [C, M, H]
        bias = ops.sum(ops.take(self.output_bias, ids, axis=0), axis=-1)  # [C]
        return ops.einsum("bmh,cmh->bc", h, rows) + ops.cast(bias, h.dtype)[None, :]

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, hidden_size=self.hidden_size,
                      layer_norm_epsilon=self.layer_norm_epsilon)
        return config
