"""The seed's P-tuning path re-implemented in torch, as its users run it (wakafengfan/p-tuning_NLU,
few_shot_ptuning.py): transformers BertForMaskedLM, frozen; a PromptEncoder (8 embedding rows -> 2-layer
BiLSTM -> Linear, ReLU, Linear) whose rows are written into the input embeddings by a Python loop over
rows and prompt slots; batches of 32 padded to their longest row (bert4keras sequence_padding), in data
order for evaluation and shuffled per pass for training, where 15% of the tokens are also masked at
random (its `random_masking`); logits over the whole vocabulary at every position; its objective:
cross-entropy over the vocabulary at every position with a target (the label word at [MASK], the
original token at a randomly masked one); Adam (lr 1e-5, weight decay 5e-4).

Differences, all in the seed's favour: rows come tokenized (the seed tokenizes every row again in every
pass), the pattern is few_shot's ([u1..u4][MASK][u5..u8] inside maxlen 128; the seed's rows can reach
137 tokens), and the run does the same number of steps as few_shot's epoch (the seed's epoch is 50 full
passes: 300 steps on 168 rows, 14% more than few_shot's 263).
With `mlm=False` (no random masking) its loss is few_shot's objective "vocab", checked in
tests/test_benchmark.py on a tiny model with the prompt encoder's weights copied from few_shot's.
"""
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

MASK_RATE = 0.15


class SeedPromptEncoder(nn.Module):
    """The seed's PromptEncoder, rows initialised from the prompt tokens' embeddings."""

    def __init__(self, init_rows):
        super().__init__()
        n, hidden = init_rows.shape
        self.seq_indices = torch.arange(n)
        self.prompt_embeddings = nn.Embedding(n, hidden, _weight=torch.as_tensor(np.array(init_rows)))
        self.lstm_head = nn.LSTM(input_size=hidden, hidden_size=hidden // 2, num_layers=2, dropout=0.0,
                                 bidirectional=True, batch_first=True)
        self.mlp_head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))

    def forward(self):
        input_embeds = self.prompt_embeddings(self.seq_indices).unsqueeze(0)
        return self.mlp_head(self.lstm_head(input_embeds)[0]).squeeze(0)


class SeedPtuning(nn.Module):
    """The seed's PTuningModel: logits [B, T, vocab] of the frozen MLM with the prompt written in."""

    def __init__(self, model_dir, prompt_ids, pad_id=0):
        super().__init__()
        import transformers
        transformers.logging.set_verbosity_error()
        self.model = transformers.BertForMaskedLM.from_pretrained(model_dir)
        for p in self.model.parameters():
            p.requires_grad = False
        self.embeddings = self.model.get_input_embeddings()
        self.prompt_encoder = SeedPromptEncoder(self.embeddings.weight[list(prompt_ids)].detach().numpy())
        self.num_prompt = len(prompt_ids)
        self.pseudo_token_id = -1
        self.pad_token_id = pad_id

    def embed_input(self, input_ids, input_pseudo_mask):
        bz = input_ids.size(0)
        raw_embeds = self.embeddings(input_ids)
        replace_embeds = self.prompt_encoder()
        blocked_indices = (input_pseudo_mask == self.pseudo_token_id).nonzero().reshape(
            (bz, self.num_prompt, 2))[:, :, 1]
        for bidx in range(bz):  # as the seed: one assignment per row and prompt slot
            for i in range(self.num_prompt):
                raw_embeds[bidx, blocked_indices[bidx, i], :] = replace_embeds[i, :]
        return raw_embeds

    def forward(self, input_ids, input_pseudo_mask):
        embeds = self.embed_input(input_ids, input_pseudo_mask)
        attention_mask = input_ids != self.pad_token_id
        return self.model(inputs_embeds=embeds, attention_mask=attention_mask).logits


def random_masking(token_ids, rng, mask_id, vocab_size):
    """The seed's: 15% of positions get a target; of those 80% [MASK], 10% kept, 10% a random token."""
    rands = rng.random(len(token_ids))
    source, target = [], []
    for r, t in zip(rands, token_ids):
        if r < MASK_RATE * 0.8:
            source.append(mask_id)
            target.append(t)
        elif r < MASK_RATE * 0.9:
            source.append(t)
            target.append(t)
        elif r < MASK_RATE:
            source.append(int(rng.choice(vocab_size - 1)) + 1)
            target.append(t)
        else:
            source.append(t)
            target.append(0)
    return source, target


def seed_batch(data, idx, label_ids, prompt_ids, mask_id, vocab_size, rng=None, mlm=True):
    """Rows `idx` of an EncodedSet as the seed's data generator makes them -> (source ids, target ids,
    pseudo mask) as torch.long [B, longest]. `rng` (training): random masking unless mlm=False; the
    target at each [MASK] slot is the row's label word (labels < 0: none)."""
    from few_shot.batching import pad_batch
    prompt = set(int(i) for i in prompt_ids)
    sources, targets, pseudo = [], [], []
    for i in idx:
        token_ids = [int(t) for t in data.token_ids[i]]
        if rng is not None and mlm:
            source, target = random_masking(token_ids, rng, mask_id, vocab_size)
        else:
            source, target = token_ids[:], [0] * len(token_ids)
        label = int(data.labels[i])
        for slot, position in enumerate(data.mask_positions[i]):
            source[position] = mask_id
            target[position] = label_ids[label][slot] if label >= 0 else 0
        pseudo.append([-1 if t in prompt else 0 for t in token_ids])
        sources.append(source)
        targets.append(target)
    return tuple(torch.as_tensor(pad_batch(x, 0), dtype=torch.long) for x in (sources, targets, pseudo))


def seed_loss(logits, target):
    """The seed's compute_loss: mean cross-entropy over the positions that have a target."""
    y_mask = torch.not_equal(target, 0).float()
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1), reduction="none")
    return (loss.view(logits.size(0), -1) * y_mask).sum() / y_mask.sum()


def train_order(n, batch_size, rng):
    """The seed's DataGenerator.forfit(): every pass shuffled, cut into batches (the last one short)."""
    while True:
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            yield order[start:start + batch_size]


def eval_order(n, batch_size):
    return [np.arange(start, min(n, start + batch_size)) for start in range(0, n, batch_size)]


def seed_optimizer(model):
    return torch.optim.Adam(model.prompt_encoder.parameters(), lr=1e-5, weight_decay=0.0005)


def keras_prompt_weights(model):
    """few_shot's PromptEncoder weights (a PtuningModel with encoder "lstm") -> plain numpy arrays."""
    pe = model.prompt_encoder
    return {"embedding": np.asarray(pe.embedding.get_weights()[0]),
            "lstm": [{"forward": bi.forward_layer.get_weights(), "backward": bi.backward_layer.get_weights()}
                     for bi in pe.lstm],
            "mlp": [layer.get_weights() for layer in pe.mlp]}


def load_prompt_weights(encoder, weights):
    """Copy few_shot's prompt encoder (keras_prompt_weights) into a SeedPromptEncoder: Keras and torch
    share the LSTM gate order (i, f, g, o); Keras' one bias goes to bias_ih, bias_hh is 0."""
    def put(param, value):
        param.copy_(torch.as_tensor(np.ascontiguousarray(value), dtype=param.dtype))
    with torch.no_grad():
        put(encoder.prompt_embeddings.weight, weights["embedding"])
        for layer, directions in enumerate(weights["lstm"]):
            for direction, suffix in (("forward", ""), ("backward", "_reverse")):
                kernel, recurrent, bias = directions[direction]
                lstm = encoder.lstm_head
                put(getattr(lstm, f"weight_ih_l{layer}{suffix}"), kernel.T)
                put(getattr(lstm, f"weight_hh_l{layer}{suffix}"), recurrent.T)
                put(getattr(lstm, f"bias_ih_l{layer}{suffix}"), bias)
                put(getattr(lstm, f"bias_hh_l{layer}{suffix}"), np.zeros_like(bias))
        for linear, (kernel, bias) in zip((encoder.mlp_head[0], encoder.mlp_head[2]), weights["mlp"]):
            put(linear.weight, kernel.T)
            put(linear.bias, bias)
