"""FLOPs of a BERT pass, counted from the model's shape and the tokens each batch pads to (multiply-adds
count 2). `shape`: {layers, hidden, intermediate, vocab}; `batches`: [(rows, padded length)].

    encoder   2 * P * T: P = parameters of the L encoder blocks (weights and biases), T = padded tokens
    attention 4 * L * H * sum(rows * length^2): the score and context matmuls
    head      2 * positions * (H * H + H * columns): the MLM transform, then the projection onto
              `columns` word rows: the whole vocabulary (logits at every position, as BertForMaskedLM and
              the seed) or the label words at [MASK] only (few_shot)
    training  forward, then the backward pass: activation gradients (2x the forward matmuls; attention
              counts 3x in all), plus weight gradients (another 2 * P * T) only where the weights train
"""


def encoder_params(shape):
    h, i = shape["hidden"], shape["intermediate"]
    per_layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * 2 * h  # q k v o, feed-forward, 2 LayerNorms
    return shape["layers"] * per_layer


def tokens(batches):
    return sum(rows * length for rows, length in batches)


def attention_flops(shape, batches):
    """4 * L * H * sum(rows * length^2); `batches` [(rows, length)] or arrays with .shape (rows, length)."""
    sizes = [getattr(b, "shape", b) for b in batches]
    return 4 * shape["layers"] * shape["hidden"] * sum(int(r) * int(t) ** 2 for r, t in sizes)


def head_flops(shape, positions, columns):
    h = shape["hidden"]
    return 2 * positions * (h * h + h * columns)


def forward_flops(shape, batches, head_positions, head_columns):
    return 2 * encoder_params(shape) * tokens(batches) + attention_flops(shape, batches) + \
        head_flops(shape, head_positions, head_columns)


def train_flops(shape, batches, head_positions, head_columns, encoder_trains=False):
    """One training pass over `batches`: the gradient reaches the input (a prompt or the embeddings) through
    every layer; weight gradients of the encoder only when it trains (finetune)."""
    t = tokens(batches)
    encoder = 2 * encoder_params(shape) * t * (3 if encoder_trains else 2)
    return encoder + 3 * attention_flops(shape, batches) + 2 * head_flops(shape, head_positions, head_columns)


def eval_flops(shape, batches, rows, masks, full_logits, num_labels=2):
    """An evaluation pass: full logits at every padded position, or the label words' rows at the mask slots."""
    if full_logits:
        return forward_flops(shape, batches, tokens(batches), shape["vocab"])
    return forward_flops(shape, batches, rows * masks, num_labels)
