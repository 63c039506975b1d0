import math

import keras
from keras import ops

from few_shot.layers.lora_dense import LoraDense


def gelu_erf(x):
    # BERT checkpoints are trained with the exact (erf) GELU; tanh-GELU drifts by ~1e-3.
    return keras.activations.gelu(x, approximate=False)


@keras.saving.register_keras_serializable(package="few_shot")
class TransformerEncoder(keras.layers.Layer):
    """One post-LayerNorm BERT encoder block: self-attention + feed-forward, residuals."""

    def __init__(self, hidden_size, num_heads, intermediate_size, dropout=0.1,
                 layer_norm_epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.head_size = hidden_size // num_heads
        self.intermediate_size = intermediate_size
        self.dropout_rate = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        init = keras.initializers.TruncatedNormal(stddev=0.02)

        def dense(units, name):  # a Dense that can take LoRA adapters (few_shot/lora.py)
            return LoraDense(units, kernel_initializer=init, name=name)

        self.query = dense(hidden_size, "query")
        self.key = dense(hidden_size, "key")
        self.value = dense(hidden_size, "value")
        self.attention_output = dense(hidden_size, "attention_output")
        self.attention_layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon,
                                                                    name="attention_layer_norm")
        self.intermediate = dense(intermediate_size, "intermediate")
        self.output_dense = dense(hidden_size, "output")
        self.output_layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon,
                                                                 name="output_layer_norm")
        self.dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape=None):
        h = self.hidden_size
        for layer in (self.query, self.key, self.value, self.attention_output, self.intermediate):
            layer.build((None, None, h))
        self.output_dense.build((None, None, self.intermediate_size))
        self.attention_layer_norm.build((None, None, h))
        self.output_layer_norm.build((None, None, h))
        self.built = True

    def _heads(self, x):
        b, t = ops.shape(x)[0], ops.shape(x)[1]
        return ops.transpose(ops.reshape(x, (b, t, self.num_heads, self.head_size)), (0, 2, 1, 3))

    def dense_layers(self):
        """name -> the block's Dense layers (the targets LoRA can adapt)."""
        return {layer.name: layer for layer in (self.query, self.key, self.value, self.attention_output,
                                                  self.intermediate, self.output_dense)}

    def call(self, x, attention_bias, training=False):
        """x: [B, T, H]; attention_bias: [B, 1, 1, T], 0 for real tokens and -inf-like for padding."""
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / math.sqrt(self.head_size)
        probs = ops.softmax(scores + ops.cast(attention_bias, scores.dtype), axis=-1)
        probs = self.dropout(probs, training=training)
        context = ops.transpose(ops.matmul(probs, v), (0, 2, 1, 3))
        context = ops.reshape(context, (ops.shape(x)[0], ops.shape(x)[1], self.hidden_size))
        x = self.attention_layer_norm(x + self.dropout(self.attention_output(context), training=training))
        h = self.output_dense(gelu_erf(self.intermediate(x)))
        return self.output_layer_norm(x + self.dropout(h, training=training))

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, num_heads=self.num_heads,
                      intermediate_size=self.intermediate_size, dropout=self.dropout_rate,
                      layer_norm_epsilon=self.layer_norm_epsilon)
        return config
