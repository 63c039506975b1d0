"""The peers, run the way their users run them, in torch, on the same encoded rows:

  transformers  BertForMaskedLM under no_grad, batches of 32, logits at every position (model(...).logits),
                label columns read at [MASK]; the p-tuned prompt folded into the [unusedN] rows of its
                input embedding table (serving a prompt with a plain MLM). Batching:
                  dynamic   rows in data order, each batch padded to its longest row (tokenizer(...,
                            padding=True) / DataCollatorWithPadding; the Trainer's eval sampler is sequential)
                  grouped   rows sorted by length first (the group_by_length habit, at its best)
                  padded    every row padded to maxlen (reference: what the old table compared with)
                `head="mask"` (reference): encoder + MLM head at [MASK] only, few_shot's work in torch
  seed          the seed's P-tuning path (bench/seed.py): eval, train step, one epoch
"""
import numpy as np

from few_shot.config import steps_per_epoch

from bench import flops
from bench.common import (BASE_CONFIG, Clock, MemoryMeter, eval_record, label_scores_at_mask, setup_torch_threads,
                          timed_passes)
from bench.ours import epoch_record, shapes_of, train_record


def stage_make_base(folder, vocab_path, seed):
    """A BERT-base-shaped BertForMaskedLM with random weights, saved as safetensors + vocab.txt."""
    import shutil

    import torch
    import transformers
    transformers.logging.set_verbosity_error()
    with open(vocab_path, encoding="utf-8") as f:
        vocab_size = sum(1 for _ in f)
    torch.manual_seed(seed)
    model = transformers.BertForMaskedLM(transformers.BertConfig(vocab_size=vocab_size, **BASE_CONFIG)).eval()
    model.save_pretrained(folder)
    shutil.copyfile(vocab_path, f"{folder}/vocab.txt")
    return {"folder": folder, "parameters": sum(p.numel() for p in model.parameters())}


def batch_order(data, batching, batch_size):
    """Row indices of each batch: data order (dynamic, padded) or sorted by length (grouped)."""
    from few_shot.batching import length_sorted_batches
    if batching == "grouped":
        return length_sorted_batches(data.lengths, batch_size)
    return [np.arange(start, min(len(data), start + batch_size)) for start in range(0, len(data), batch_size)]


def torch_scores(forward, data, batches, label_ids, pad_id, length=None):
    """forward(ids [B, T] long, idx) -> logits [B, T, V] or label scores [B, C]; -> scores [N, C] float32."""
    import torch

    from few_shot.batching import pad_batch
    out = np.zeros((len(data), len(label_ids)), dtype="float32")
    with torch.no_grad():
        for idx in batches:
            ids = torch.as_tensor(pad_batch([data.token_ids[i] for i in idx], pad_id, length), dtype=torch.long)
            result = forward(ids, idx)
            if result.dim() == 3:
                result = label_scores_at_mask(result, torch.as_tensor(data.mask_positions[idx], dtype=torch.long),
                                              torch.as_tensor(label_ids))
            out[idx] = result.float().numpy()
    return out


def stage_eval_transformers(bench, prompts, batching="dynamic", head="full", batch_size=32):
    import torch
    import transformers  # imported before measuring, as TensorFlow is for the other stages
    transformers.logging.set_verbosity_error()
    s = bench.settings
    threads = setup_torch_threads(s["threads"])
    data, pad = bench.eval_set, bench.tokenizer.pad_id
    with MemoryMeter() as memory:
        model = transformers.BertForMaskedLM.from_pretrained(bench.model_dir).eval()
        with torch.no_grad():
            model.get_input_embeddings().weight[bench.prompt_ids] = torch.from_numpy(np.asarray(prompts))
        label_ids = torch.as_tensor(bench.label_ids)

        def forward(ids, idx):
            mask, types = (ids != pad).long(), torch.zeros_like(ids)
            if head == "full":
                return model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
            hidden = model.bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
            positions = torch.as_tensor(data.mask_positions[idx], dtype=torch.long)
            at_mask = hidden[torch.arange(len(idx))[:, None], positions]  # [B, M, H]
            h = model.cls.predictions.transform(at_mask)
            words = model.cls.predictions.decoder.weight[label_ids]  # [C, M, H]
            return torch.einsum("bmh,cmh->bc", h, words) + model.cls.predictions.bias[label_ids].sum(-1)
        batches = batch_order(data, batching, batch_size)
        length = s["maxlen"] if batching == "padded" else None
        scores, clocks = timed_passes(lambda: torch_scores(forward, data, batches, bench.label_ids, pad, length),
                                      lambda: torch_scores(forward, data, batches[:2], bench.label_ids, pad, length),
                                      s["repeats"])
    shapes = [(len(idx), length) for idx in batches] if length else shapes_of(data, batches)
    return eval_record(len(data), clocks, scores, batch_size, memory.result(), threads=threads, batching=batching,
                       head=head, attention=getattr(model.config, "_attn_implementation", None),
                       padded_tokens=flops.tokens(shapes),
                       flops=flops.eval_flops(bench.shape, shapes, len(data), data.mask_positions.shape[1],
                                              head == "full", len(bench.label_ids)))


def load_seed(bench, prompt_weights=None):
    """The seed's model over the benchmark's checkpoint; few_shot's prompt encoder weights copied in if
    given (eval: the same untrained prompt as the other paths), else the seed's own init (seeded)."""
    import torch

    from bench.seed import SeedPtuning, load_prompt_weights
    torch.manual_seed(bench.settings["seed"])
    model = SeedPtuning(bench.model_dir, bench.prompt_ids, bench.tokenizer.pad_id)
    if prompt_weights is not None:
        load_prompt_weights(model.prompt_encoder, prompt_weights)
    return model


def seed_eval_scores(model, bench, data, batches):
    from bench.seed import seed_batch
    tok = bench.tokenizer

    def forward(ids, idx):
        source, _, pseudo = seed_batch(data, idx, bench.label_ids, bench.prompt_ids, tok.mask_id, tok.vocab_size)
        return model(source, pseudo)
    return torch_scores(forward, data, batches, bench.label_ids, tok.pad_id)


def stage_eval_seed(bench, prompt_weights, batch_size=32):
    """The seed's evaluation loop: batches of 32 in data order padded per batch, the prompt encoder run and
    written into the input embeddings per batch, full logits, label columns at [MASK]."""
    from bench.seed import eval_order
    s = bench.settings
    threads = setup_torch_threads(s["threads"])
    data = bench.eval_set
    with MemoryMeter() as memory:
        model = load_seed(bench, prompt_weights).eval()
        batches = eval_order(len(data), batch_size)
        scores, clocks = timed_passes(lambda: seed_eval_scores(model, bench, data, batches),
                                      lambda: seed_eval_scores(model, bench, data, batches[:2]), s["repeats"])
    shapes = shapes_of(data, batches)
    return eval_record(len(data), clocks, scores, batch_size, memory.result(), threads=threads,
                       padded_tokens=flops.tokens(shapes),
                       flops=flops.eval_flops(bench.shape, shapes, len(data), data.mask_positions.shape[1], True))


def seed_steps(model, optimizer, bench, order, rng, steps, clocks=None):
    """`steps` training steps of the seed (random masking, its loss, Adam) -> [(rows, padded length)]."""
    from bench.seed import seed_batch, seed_loss
    tok, shapes = bench.tokenizer, []
    for _ in range(steps):
        clock = Clock()
        with clock:
            source, target, pseudo = seed_batch(bench.train_set, next(order), bench.label_ids, bench.prompt_ids,
                                                tok.mask_id, tok.vocab_size, rng)
            loss = seed_loss(model(source, pseudo), target)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        shapes.append(tuple(source.shape))
        if clocks is not None:
            clocks.append(clock)
    return shapes, float(loss.detach())


def train_flops_full(bench, shapes):
    return flops.train_flops(bench.shape, shapes, flops.tokens(shapes), bench.shape["vocab"])


def stage_train_seed(bench, warmup_steps=2, batch_size=32):
    """The seed's training step on its own shuffled batches of 32 (padded per batch)."""
    from bench.seed import seed_optimizer, train_order
    s = bench.settings
    threads = setup_torch_threads(s["threads"])
    rng = np.random.default_rng(s["seed"])
    with MemoryMeter() as memory:
        model = load_seed(bench).train()
        optimizer = seed_optimizer(model)
        order = train_order(len(bench.train_set), batch_size, rng)
        seed_steps(model, optimizer, bench, order, rng, warmup_steps)
        clocks = []
        shapes, _ = seed_steps(model, optimizer, bench, order, rng, s["train_steps"], clocks)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return train_record(clocks, shapes, batch_size, memory.result(), method="seed", threads=threads,
                        trainable_params=int(trainable), lr=1e-5, flops=train_flops_full(bench, shapes))


def stage_epoch_seed(bench, batch_size=32):
    """The seed's epoch on the same rows: as many steps as few_shot's epoch (its own would be 50 full passes),
    then its evaluation loop on valid and test. Warm-up (one step, one eval batch) timed apart."""
    from bench.seed import eval_order, seed_optimizer, train_order
    s = bench.settings
    threads = setup_torch_threads(s["threads"])
    rng = np.random.default_rng(s["seed"])
    valid, test = bench.valid_set, bench.test_set
    steps = steps_per_epoch(len(bench.train_set), s["passes"], batch_size)
    with MemoryMeter() as memory:
        model = load_seed(bench)
        optimizer = seed_optimizer(model)
        order = train_order(len(bench.train_set), batch_size, rng)
        with Clock() as warm_train:
            model.train()
            seed_steps(model, optimizer, bench, order, rng, 1)
        with Clock() as warm_eval:
            model.eval()
            seed_eval_scores(model, bench, valid, eval_order(len(valid), batch_size)[:1])
        with Clock() as epoch:
            with Clock() as train:
                model.train()
                train_shapes, loss = seed_steps(model, optimizer, bench, order, rng, steps)
            model.eval()
            accuracy = {}
            for name, data in (("valid", valid), ("test", test)):
                with Clock() as clock:
                    predicted = seed_eval_scores(model, bench, data, eval_order(len(data), batch_size)).argmax(-1)
                accuracy[name] = (clock, float(np.mean(predicted == data.labels)))
    eval_shapes = shapes_of(valid, eval_order(len(valid), batch_size)) + shapes_of(test, eval_order(len(test),
                                                                                                    batch_size))
    work = train_flops_full(bench, train_shapes) + flops.eval_flops(bench.shape, eval_shapes, 0, 1, True)
    clocks = dict(warm_train=warm_train, warm_eval=warm_eval, train=train, valid=accuracy["valid"][0],
                  test=accuracy["test"][0], epoch=epoch)
    return epoch_record("seed", bench, s["passes"], clocks, memory.result(), train_shapes, eval_shapes, work,
                        loss=loss, valid_acc=accuracy["valid"][1], test_acc=accuracy["test"][1], threads=threads,
                        seed_own_epoch_steps=s["passes"] * len(eval_order(len(bench.train_set), batch_size)))
