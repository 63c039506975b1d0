import keras
from keras import ops


@keras.saving.register_keras_serializable(package="few_shot")
class DeepPromptEncoder(keras.layers.Layer):
    """The prompt states of deep prompt tuning (P-tuning v2) for encoder layers 1..L-1: [L-1, P, H].

    Without `reparam` they are one trainable weight. With `reparam` (P-tuning v2's reparameterisation)
    they are `initial + MLP(E)`: trainable rows E [P, H] -> Dense(H, tanh) -> Dense((L-1) * H), whose
    last layer starts at zero, so both forms start from the same states; `initial` is frozen.
    (Layer 0 is the input prompt: the PtuningModel's own PromptEncoder.)"""

    def __init__(self, num_layers, prompt_length, hidden_size, reparam=False, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = num_layers
        self.prompt_length = prompt_length
        self.hidden_size = hidden_size
        self.reparam = bool(reparam)
        self.mlp = None
        if self.reparam:
            self.embedding = keras.layers.Embedding(prompt_length, hidden_size, name="prompt_embedding")
            self.mlp = [keras.layers.Dense(hidden_size, activation="tanh", name="mlp_0"),
                        keras.layers.Dense(num_layers * hidden_size, kernel_initializer="zeros", name="mlp_1")]

    def build(self, input_shape=None):
        shape = (self.num_layers, self.prompt_length, self.hidden_size)
        self.states = self.add_weight(shape=shape, initializer="zeros", name="states", trainable=not self.reparam)
        if self.reparam:
            self.embedding.build((None,))
            self.mlp[0].build((None, self.hidden_size))
            self.mlp[1].build((None, self.hidden_size))
        self.built = True

    def set_initial_states(self, states):
        self.states.assign(ops.convert_to_tensor(states, dtype=self.states.dtype))

    def call(self, inputs=None, training=False):
        if not self.reparam:
            return ops.convert_to_tensor(self.states)
        x = self.mlp[1](self.mlp[0](self.embedding.embeddings))  # [P, L * H]
        x = ops.transpose(ops.reshape(x, (self.prompt_length, self.num_layers, self.hidden_size)), (1, 0, 2))
        return self.states + x

    def get_config(self):
        config = super().get_config()
        config.update(num_layers=self.num_layers, prompt_length=self.prompt_length, hidden_size=self.hidden_size,
                      reparam=self.reparam)
        return config
