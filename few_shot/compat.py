"""The only places few_shot reaches into Keras internals, each a workaround for a Keras bug under
MultiWorkerMirroredStrategy. Written for Keras 3.15; `check_keras_version` warns on another."""
import warnings

import keras

WRITTEN_FOR = "3.15"


def check_keras_version():
    if not keras.__version__.startswith(WRITTEN_FOR + "."):
        warnings.warn(f"few_shot.compat was written for Keras {WRITTEN_FOR}.x and you have {keras.__version__}; "
                      f"multi-worker training reaches into Keras internals and may need updating")


def patch_multiworker_log_reduction():
    """Keras 3.15 averages per-replica logs with `strategy.reduce("MEAN", v, axis=0)` under
    MultiWorkerMirroredStrategy, which fails for scalar logs such as the loss; reduce those with
    axis=None (the mean over replicas), everything else as Keras does."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    check_keras_version()
    if getattr(trainer.reduce_per_replica, "few_shot_patch", False):
        return
    original = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            def reduce(v):
                scalar = all(t.shape.rank == 0 for t in strategy.experimental_local_results(v))
                return strategy.reduce("MEAN", v, axis=None if scalar else 0)
            return tf.nest.map_structure(reduce, values)
        return original(values, strategy, reduction)

    reduce_per_replica.few_shot_patch = True
    trainer.reduce_per_replica = reduce_per_replica


def build_from_local_batch(model, strategy, batch):
    """Keras 3.15 builds the compile state by all-reducing one distributed batch, which
    CollectiveAllReduce cannot do for a dict of inputs: build it from a local batch instead."""
    check_keras_version()
    with strategy.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda *a, **k: None
