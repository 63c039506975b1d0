"""few_shot's stages, each run in its own process: this machine's matmul peak, Scorer evaluation (as the
scripts run it; XLA and Keras int8 as references), the Keras full-logits reference, train steps, one
epoch as run_training runs it, and thread settings. Models come from few_shot.methods.build_model and
are scored by few_shot.training.Scorer: no second copy of either."""
import gc
import time

import numpy as np

from bench import flops
from bench.common import (Clock, MemoryMeter, build_ours, eval_record, label_scores_at_mask, setup_tf_threads,
                          timed_passes)


def shapes_of(data, batches, multiple=1):
    """[(rows, padded length)] of `batches` (row indices) padded as EncodedSet.batch pads them."""
    return [(len(idx), -(-int(data.lengths[idx].max()) // multiple) * multiple) for idx in batches]


def stage_peak(settings, n=2048, iters=8):
    """fp32 tf.matmul [n, n] x [n, n], best of `iters` (the figure every FLOP fraction divides by); also the
    int8 x int8 -> int32 matmul Keras' int8 layers call, and torch's fp32 matmul, on the same threads."""
    import tensorflow as tf
    threads = setup_tf_threads(settings["threads"])
    rng = np.random.default_rng(0)
    a, b = (tf.constant(rng.standard_normal((n, n)), tf.float32) for _ in range(2))
    ai, bi = (tf.constant(rng.integers(-127, 128, (n, n)), tf.int8) for _ in range(2))

    def best(fn, repeats):
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 2 * n ** 3 / min(times) / 1e9
    out = {"n": n, "iters": iters, "threads": threads,
           "fp32_gflops": best(lambda: tf.matmul(a, b).numpy(), iters),
           "int8_gops": best(lambda: tf.linalg.matmul(ai, bi, output_type=tf.int32).numpy(), max(2, iters // 4))}
    try:
        import torch
        torch.set_num_threads(settings["threads"])
        x, y = torch.randn(n, n), torch.randn(n, n)
        out["torch_fp32_gflops"] = best(lambda: x @ y, iters)
    except ImportError:
        pass
    return out


def encoder_dense_layers(model):
    """The Dense layers of the frozen MLM (encoder blocks and MLM head transform): what int8 quantizes."""
    import keras
    return {id(layer) for layer in model.backbone._flatten_layers() if isinstance(layer, keras.layers.Dense)}


def stage_eval_fast(bench, jit_compile=False, quantize=None):
    """few_shot's inference: the p-tuning model scored by training.Scorer (rows sorted by length, batches of
    128 padded to their longest row, label words at [MASK] only). quantize="int8": Keras' own
    model.quantize("int8") on the MLM's Dense layers first (LoraDense is a Dense: type_check off)."""
    from few_shot.loading import load_mlm
    from few_shot.portable import fold_prompt
    from few_shot.training import Scorer
    from bench.seed import keras_prompt_weights
    s = bench.settings
    threads = setup_tf_threads(s["threads"])
    with MemoryMeter() as memory:
        mlm = load_mlm(bench.model_dir)
        model, cfg = build_ours("ptuning", bench, mlm)
        prompts, prompt_weights = fold_prompt(model), keras_prompt_weights(model)
        quantized = 0
        if quantize:
            dense = encoder_dense_layers(model)
            model.build()  # every weight exists already; Keras wants the flag set
            model.quantize(quantize, filters=lambda layer: id(layer) in dense, type_check=False)
            quantized = sum(1 for layer in model._flatten_layers() if getattr(layer, "quantization_mode", None))
        scorer = Scorer(model, cfg.eval_batch_size, jit_compile=jit_compile)
        data, multiple = bench.eval_set, scorer.pad_multiple
        first = {}

        def warmup():  # one whole pass: the tracing (or, with XLA, one compile per padded length) it costs
            with Clock() as clock:
                scorer.scores(data)
            first.update(seconds=round(clock.seconds, 4), cpu_seconds=round(clock.cpu_seconds, 4))
        scores, clocks = timed_passes(lambda: scorer.scores(data), warmup, s["repeats"])
    shapes = shapes_of(data, scorer.batches(data), multiple)
    return eval_record(len(data), clocks, scores, cfg.eval_batch_size, memory.result(), jit_compile=jit_compile,
                       quantize=quantize, quantized_layers=quantized, threads=threads, first_pass=first,
                       prompts=prompts, prompt_weights=None if quantize or jit_compile else prompt_weights,
                       pad_multiple=multiple, padded_tokens=flops.tokens(shapes), batch_shapes=shapes,
                       flops=flops.eval_flops(bench.shape, shapes, len(data), data.mask_positions.shape[1], False,
                                              len(bench.label_ids)))


def naive_scores(mlm, data, label_ids, batch_size, maxlen, rows=None):
    """Keras full-vocabulary logits at every position of rows padded to `maxlen` (the old baseline)."""
    from few_shot.batching import pad_batch
    rows = np.arange(len(data)) if rows is None else np.asarray(rows)
    out = np.zeros((len(rows), len(label_ids)), dtype="float32")
    for start in range(0, len(rows), batch_size):
        idx = rows[start:start + batch_size]
        ids = pad_batch([data.token_ids[i] for i in idx], mlm.tokenizer.pad_id, maxlen)
        logits = mlm.predict_logits(ids, batch_size=batch_size)  # [B, maxlen, vocab]
        out[start:start + len(idx)] = label_scores_at_mask(logits, data.mask_positions[idx], label_ids)
    return out


def stage_eval_naive(bench, prompts, batch_size=32):
    """Reference: the same MLM's full-vocabulary logits (PretrainedMLM.predict_logits), rows padded to maxlen,
    the prompt folded into the [unusedN] rows of the embedding table."""
    import keras

    from few_shot.loading import load_mlm
    s = bench.settings
    threads = setup_tf_threads(s["threads"])
    with MemoryMeter() as memory:
        mlm = load_mlm(bench.model_dir)
        table = keras.ops.convert_to_numpy(mlm.model.embedding_matrix).copy()
        table[bench.prompt_ids] = prompts
        mlm.model.embedding_matrix.assign(table)
        data, n = bench.eval_set, len(bench.eval_set)

        def warmup():  # a full batch and the last, shorter one
            naive_scores(mlm, data, bench.label_ids, batch_size, s["maxlen"], rows=range(min(batch_size, n)))
            if n % batch_size:
                naive_scores(mlm, data, bench.label_ids, batch_size, s["maxlen"], rows=range(n - n % batch_size, n))
        scores, clocks = timed_passes(lambda: naive_scores(mlm, data, bench.label_ids, batch_size, s["maxlen"]),
                                       warmup, s["repeats"])
    shapes = [(min(batch_size, n - i), s["maxlen"]) for i in range(0, n, batch_size)]
    return eval_record(n, clocks, scores, batch_size, memory.result(), threads=threads,
                       padded_tokens=flops.tokens(shapes), flops=flops.eval_flops(bench.shape, shapes, n, 1, True))


def stage_train_step(bench, method, warmup_steps=2):
    """train_on_batch on training.training_batches' dynamically padded batches (bucketed by length)."""
    import keras

    from few_shot.loading import load_mlm
    from few_shot.ptuning import count_params
    from few_shot.training import training_batches
    s = bench.settings
    threads = setup_tf_threads(s["threads"])
    with MemoryMeter() as memory:
        mlm = load_mlm(bench.model_dir)
        model, cfg = build_ours(method, bench, mlm)
        model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss=model.loss_function())
        batches = training_batches(bench.train_set, cfg.batch_size, cfg.seed)
        for _ in range(warmup_steps):  # two shapes: the train function's relaxed-shape trace
            model.train_on_batch(*next(batches))
        clocks, shapes = [], []
        for _ in range(s["train_steps"]):
            x, y = next(batches)
            with Clock() as clock:
                model.train_on_batch(x, y)  # returns the loss as a float: the step has finished
            clocks.append(clock)
            shapes.append(x["token_ids"].shape)
    masks = bench.train_set.mask_positions.shape[1]
    return train_record(clocks, shapes, cfg.batch_size, memory.result(), method=method, threads=threads,
                        trainable_params=count_params(model.trainable_weights), lr=cfg.learning_rate,
                        jit_compile=bool(model.jit_compile),
                        flops=flops.train_flops(bench.shape, shapes, sum(r for r, _ in shapes) * masks,
                                                len(bench.label_ids), encoder_trains=method == "finetune"))


def train_record(clocks, shapes, batch_size, memory, **extra):
    seconds, cpu = sum(c.seconds for c in clocks), sum(c.cpu_seconds for c in clocks)
    samples = sum(r for r, _ in shapes)
    return {"steps": len(clocks), "batch_size": batch_size, "samples": samples,
            "padded_tokens": flops.tokens(shapes), "seconds": [round(c.seconds, 4) for c in clocks],
            "total_seconds": seconds, "total_cpu_seconds": cpu, "samples_per_s": samples / seconds,
            "samples_per_cpu_s": samples / cpu, "memory": memory, **extra}


def stage_epoch(bench, strategy=None):
    """One p-tuning epoch as run.run_training runs it: the model built and compiled in the strategy's scope
    (default: RunConfig's, MirroredStrategy; "none": TensorFlow's default strategy), fit on
    training.training_dataset for the epoch's steps, then Scorer accuracy on valid and test. Split: tracing
    (the first fit step and the first Scorer batches, timed apart), train, eval."""
    import keras

    from few_shot.loading import load_mlm
    from few_shot.training import Scorer, make_strategy, training_batches, training_dataset
    s = bench.settings
    threads = setup_tf_threads(s["threads"])
    variant = "ours" if strategy is None else f"ours_{strategy}"
    with MemoryMeter() as memory:
        from few_shot.config import RunConfig
        strategy = make_strategy(strategy or RunConfig().strategy)
        with strategy.scope():
            mlm = load_mlm(bench.model_dir)
            model, cfg = build_ours("ptuning", bench, mlm)
            model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss=model.loss_function())
        from few_shot.config import steps_per_epoch
        steps = steps_per_epoch(len(bench.train_set), cfg.passes_per_epoch, cfg.batch_size)
        dataset = training_dataset(bench.train_set, cfg.batch_size, cfg.seed)
        scorer = Scorer(model, cfg.eval_batch_size)
        valid, test = bench.valid_set, bench.test_set
        with Clock() as trace_train:  # traces the train function (tf.data: unknown lengths, one trace)
            model.fit(dataset, epochs=1, steps_per_epoch=1, shuffle=False, verbose=0)
            gc.collect()  # that fit's generator pipeline would linger beside the timed one (docs/results.md, Speed)
        with Clock() as trace_eval:  # traces Scorer's function: its first two batches
            for idx in scorer.batches(valid)[:2]:
                scorer.fn(valid.batch(idx)[0])
        with Clock() as epoch:
            with Clock() as train:
                history = model.fit(dataset, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
            with Clock() as eval_valid:
                valid_acc = scorer.accuracy(valid)
            with Clock() as eval_test:
                test_acc = scorer.accuracy(test)
    batches = training_batches(bench.train_set, cfg.batch_size, cfg.seed)  # the fit's batches, again
    train_shapes = [next(batches)[0]["token_ids"].shape for _ in range(steps)]
    eval_shapes = shapes_of(valid, scorer.batches(valid)) + shapes_of(test, scorer.batches(test))
    masks, labels = bench.train_set.mask_positions.shape[1], len(bench.label_ids)
    work = (flops.train_flops(bench.shape, train_shapes, sum(r for r, _ in train_shapes) * masks, labels) +
            flops.eval_flops(bench.shape, eval_shapes, len(valid) + len(test), masks, False, labels))
    clocks = dict(warm_train=trace_train, warm_eval=trace_eval, train=train, valid=eval_valid, test=eval_test,
                  epoch=epoch)
    return epoch_record(variant, bench, cfg.passes_per_epoch, clocks, memory.result(), train_shapes, eval_shapes, work,
                        loss=float(history.history["loss"][-1]), valid_acc=valid_acc, test_acc=test_acc,
                        threads=threads, strategy=type(strategy).__name__)


def epoch_record(variant, bench, passes, clocks, memory, train_shapes, eval_shapes, work, **extra):
    """One epoch's record from its clocks (warm_train, warm_eval, train, valid, test, epoch)."""
    c = clocks
    warm_train, warm_eval, train, eval_valid, eval_test, epoch = (c[k] for k in ("warm_train", "warm_eval", "train",
                                                                               "valid", "test", "epoch"))
    warmup = warm_train.seconds + warm_eval.seconds
    return {"variant": variant, "steps": len(train_shapes), "train_rows": len(bench.train_set), "passes": passes,
            "samples": sum(r for r, _ in train_shapes), "train_padded_tokens": flops.tokens(train_shapes),
            "eval_padded_tokens": flops.tokens(eval_shapes), "valid_rows": len(bench.valid_set),
            "test_rows": len(bench.test_set), "warmup_train_seconds": warm_train.seconds,
            "warmup_eval_seconds": warm_eval.seconds, "warmup_seconds": warmup, "train_seconds": train.seconds,
            "train_cpu_seconds": train.cpu_seconds, "eval_valid_seconds": eval_valid.seconds,
            "eval_test_seconds": eval_test.seconds, "eval_seconds": eval_valid.seconds + eval_test.seconds,
            "seconds": epoch.seconds, "cpu_seconds": epoch.cpu_seconds, "first_epoch_seconds": epoch.seconds + warmup,
            "train_samples_per_s": sum(r for r, _ in train_shapes) / train.seconds,
            "eval_rows_per_s": (len(bench.valid_set) + len(bench.test_set)) /
                               max(1e-9, eval_valid.seconds + eval_test.seconds),
            "flops": work, "memory": memory, **extra}


def stage_threads(bench, intra, inter):
    """tf.config.threading intra x inter (0: TensorFlow's default): one Scorer pass after a warm-up pass, and
    --train-steps p-tuning train_on_batch steps after two warm-up steps."""
    import keras

    from few_shot.loading import load_mlm
    from few_shot.training import Scorer, training_batches
    threads = setup_tf_threads(intra, inter)
    with MemoryMeter() as memory:
        model, cfg = build_ours("ptuning", bench, load_mlm(bench.model_dir))
        scorer = Scorer(model, cfg.eval_batch_size)
        _, clocks = timed_passes(lambda: scorer.scores(bench.eval_set), lambda: scorer.scores(bench.eval_set), 1)
        model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss=model.loss_function())
        batches = training_batches(bench.train_set, cfg.batch_size, cfg.seed)
        for _ in range(2):
            model.train_on_batch(*next(batches))
        steps, samples = [], 0
        for _ in range(bench.settings["train_steps"]):
            x, y = next(batches)
            with Clock() as clock:
                model.train_on_batch(x, y)
            steps.append(clock)
            samples += len(y)
    return eval_record(len(bench.eval_set), clocks, None, cfg.eval_batch_size, memory.result(), threads=threads,
                       intra=intra, inter=inter, train_samples_per_s=samples / sum(c.seconds for c in steps),
                       train_samples_per_cpu_s=samples / sum(c.cpu_seconds for c in steps))
