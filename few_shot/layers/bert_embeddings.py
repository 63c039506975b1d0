import keras
from keras import ops


@keras.saving.register_keras_serializable(package="few_shot")
class BertEmbeddings(keras.layers.Layer):
    """Token + position + segment embeddings, LayerNorm, dropout (BERT's input layer).

    `call` accepts precomputed token embeddings, which is how P-tuning swaps in its prompt.
    """

    def __init__(self, vocab_size, hidden_size, max_position=512, type_vocab_size=2,
                 dropout=0.1, layer_norm_epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position = max_position
        self.type_vocab_size = type_vocab_size
        self.dropout_rate = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.token_embedding = keras.layers.Embedding(vocab_size, hidden_size, embeddings_initializer=init,
                                                      name="token_embedding")
        self.position_embedding = keras.layers.Embedding(max_position, hidden_size,
                                                         embeddings_initializer=init, name="position_embedding")
        self.segment_embedding = keras.layers.Embedding(type_vocab_size, hidden_size,
                                                        embeddings_initializer=init, name="segment_embedding")
        self.layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="layer_norm")
        self.dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape=None):
        for layer in (self.token_embedding, self.position_embedding, self.segment_embedding):
            layer.build((None, None))
        self.layer_norm.build((None, None, self.hidden_size))
        self.built = True

    def call(self, token_ids, segment_ids, token_embeddings=None, training=False):
        if token_embeddings is None:
            token_embeddings = self.token_embedding(token_ids)
        positions = ops.arange(ops.shape(token_ids)[1], dtype="int32")
        x = token_embeddings + self.position_embedding(positions)[None] + self.segment_embedding(segment_ids)
        return self.dropout(self.layer_norm(x), training=training)

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, hidden_size=self.hidden_size, max_position=self.max_position,
                      type_vocab_size=self.type_vocab_size, dropout=self.dropout_rate,
                      layer_norm_epsilon=self.layer_norm_epsilon)
        return config
