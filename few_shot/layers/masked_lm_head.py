import keras
from keras import ops

from few_shot.layers.transformer_encoder import gelu_erf


@keras.saving.register_keras_serializable(package="few_shot")
class MaskedLMHead(keras.layers.Layer):
    """BERT's MLM head: dense -> erf-GELU -> LayerNorm(1e-12), then the *tied* word embeddings + bias.

    The embedding matrix is passed to `call` rather than owned, so it stays a single variable
    shared with the input embeddings (as in the checkpoints). `label_ids` restricts the output
    to a few vocabulary columns (the verbalizer's words) without forming the full
    [.., vocab] matrix.
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

    def call(self, hidden, embedding_matrix, label_ids=None):
        h = self.transform(hidden)
        if label_ids is None:
            return ops.matmul(h, ops.transpose(embedding_matrix)) + self.output_bias
        label_ids = ops.cast(label_ids, "int32")
        rows = ops.take(embedding_matrix, label_ids, axis=0)
        return ops.matmul(h, ops.transpose(rows)) + ops.take(self.output_bias, label_ids, axis=0)

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, hidden_size=self.hidden_size,
                      layer_norm_epsilon=self.layer_norm_epsilon)
        return config
