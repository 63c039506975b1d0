import keras
from keras import ops

ENCODERS = ("lstm", "mlp", "none")


@keras.saving.register_keras_serializable(package="few_shot")
class PromptEncoder(keras.layers.Layer):
    """P-tuning's prompt encoder (Liu et al., "GPT Understands, Too"; THUDM/P-tuning).

    `prompt_length` trainable embedding rows -> 2-layer bidirectional LSTM (hidden/2 per
    direction) -> MLP (Dense H->H, ReLU, Dense H->H). The LSTM ties the prompt tokens together,
    which the paper found to matter. `encoder="mlp"` drops the LSTM, `encoder="none"` is plain
    prompt tuning (Lester et al.). Returns [prompt_length, hidden].
    """

    def __init__(self, prompt_length, hidden_size, encoder="lstm", **kwargs):
        super().__init__(**kwargs)
        if encoder not in ENCODERS:
            raise ValueError(f"encoder={encoder!r}; choose one of {ENCODERS}")
        self.prompt_length = prompt_length
        self.hidden_size = hidden_size
        self.encoder = encoder
        self.embedding = keras.layers.Embedding(prompt_length, hidden_size, name="prompt_embedding")
        self.lstm = None
        if encoder == "lstm":
            self.lstm = [keras.layers.Bidirectional(keras.layers.LSTM(hidden_size // 2, return_sequences=True),
                                                    name=f"bilstm_{i}") for i in range(2)]
        self.mlp = None
        if encoder in ("lstm", "mlp"):
            self.mlp = [keras.layers.Dense(hidden_size, activation="relu", name="mlp_0"),
                        keras.layers.Dense(hidden_size, name="mlp_1")]

    def build(self, input_shape=None):
        self.embedding.build((None,))
        shape = (1, self.prompt_length, self.hidden_size)
        for layer in self.lstm or []:
            layer.build(shape)
            shape = (1, self.prompt_length, 2 * (self.hidden_size // 2))
        if self.mlp:
            self.mlp[0].build(shape)
            self.mlp[1].build((1, self.prompt_length, self.hidden_size))
        self.built = True

    def set_initial_embeddings(self, rows):
        self.embedding.embeddings.assign(ops.convert_to_tensor(rows, dtype=self.embedding.embeddings.dtype))

    def call(self, inputs=None, training=False):
        x = self.embedding.embeddings[None]
        for layer in self.lstm or []:
            x = layer(x, training=training)
        for layer in self.mlp or []:
            x = layer(x)
        return x[0]

    def get_config(self):
        config = super().get_config()
        config.update(prompt_length=self.prompt_length, hidden_size=self.hidden_size, encoder=self.encoder)
        return config
