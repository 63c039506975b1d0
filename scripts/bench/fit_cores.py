#!/usr/bin/env python
"""How many cores a p-tuning `fit` keeps busy (docs/results.md, Speed: the one-core slowdown). One process:
build the default p-tuning model on the bundled model, run a short warm-up `fit`, then time a
second `fit` and print its seconds per step and CPU-seconds per wall second. Run it in several
fresh processes: the slowdown shows as ~0.7 s/step at ~1.0 cores instead of ~0.4 s/step at ~1.8.

    for i in 1 2 3 4 5 6; do python scripts/bench/fit_cores.py; done
    python scripts/bench/fit_cores.py --strategy none --inter-op 1 --gc   # variants
"""
import argparse
import gc
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strategy", choices=("mirrored", "none"), default="mirrored")
    p.add_argument("--inter-op", type=int, default=0, help="tf.config.threading inter-op threads (0: TF's default)")
    p.add_argument("--warmup-steps", type=int, default=2, help="steps of the first fit (0: no warm-up fit)")
    p.add_argument("--steps", type=int, default=15, help="steps of the timed fit")
    p.add_argument("--gc", action="store_true", help="gc.collect() between the two fits")
    args = p.parse_args(argv)
    from few_shot.quiet import start_tensorflow
    start_tensorflow()
    import keras
    import tensorflow as tf

    from few_shot.config import RunConfig
    from few_shot.builder import build_model
    from few_shot.run import load_preprocessor, prepare
    from few_shot.training import make_strategy, training_dataset
    if args.inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    config = RunConfig(max_valid=8, max_test=8, strategy=args.strategy)
    inputs = prepare(config)
    with make_strategy(config.strategy).scope():
        mlm, preprocessor = load_preprocessor(inputs)
        model = build_model("ptuning", mlm, preprocessor, config)
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=model.loss_function())
    data = training_dataset(preprocessor.encode(inputs.train), config.batch_size, config.seed)
    if args.warmup_steps:
        model.fit(data, epochs=1, steps_per_epoch=args.warmup_steps, verbose=0)
    if args.gc:
        gc.collect()
    start, cpu = time.perf_counter(), cpu_seconds()
    model.fit(data, epochs=1, steps_per_epoch=args.steps, verbose=0)
    wall = time.perf_counter() - start
    print(f"strategy {args.strategy}, inter-op {args.inter_op or 'default'}, warm-up {args.warmup_steps}, "
          f"gc {args.gc}: {wall / args.steps:.3f} s/step, {(cpu_seconds() - cpu) / wall:.2f} cores busy")


if __name__ == "__main__":
    main()
