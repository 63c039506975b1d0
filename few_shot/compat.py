"""The only places few_shot reaches into Keras/TensorFlow internals, each a workaround for a bug: two
under MultiWorkerMirroredStrategy (Keras), one memory leak of every fit (TensorFlow's gradient
registry, `released_gradients`). Written for Keras 3.15 / TF 2.21; `check_keras_version` warns on another."""
import contextlib
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


CUSTOM_GRADIENT_PREFIX = "CustomGradient-"


@contextlib.contextmanager
def released_gradients():
    """Forget, on exit, the gradient functions that `tf.custom_gradient` registered meanwhile.

    The cause of the experiment scripts' memory growth (issue 27): under a distribution strategy
    (also the default one) Keras' optimizer all-reduces the gradients through a `tf.custom_gradient`
    wrapper, and in a traced train step TensorFlow registers its gradient function in the global
    gradient registry (ops._gradient_registry) under a fresh "CustomGradient-<uid>" name and never
    removes it. That closure holds the traced step's graph, whose captured variable handles keep
    every variable the step reads alive: the whole frozen MLM (and the model) of every finished run,
    ~60-100 MB a run on the bundled model. The names registered inside this block belong to graphs
    traced inside it; once the run that traced them is over, nothing takes their gradient again."""
    registry = _custom_gradient_registry()
    before = set(registry) if registry is not None else None
    try:
        yield
    finally:
        if registry is not None:
            for name in [n for n in registry if n.startswith(CUSTOM_GRADIENT_PREFIX) and n not in before]:
                registry.pop(name, None)


def _custom_gradient_registry():
    """TensorFlow's dict of registered gradient functions, or None (another backend or TF layout)."""
    if keras.backend.backend() != "tensorflow":
        return None
    try:
        from tensorflow.python.framework import ops
        registry = ops._gradient_registry._registry
    except (ImportError, AttributeError):
        return None
    return registry if isinstance(registry, dict) else None
