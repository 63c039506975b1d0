"""The few places where the Keras backend matters (graph compilation for inference)."""
import keras


def inference_function(fn, jit_compile=False):
    """Compile a pure inference function for the active backend.

    TensorFlow: tf.function with relaxed shapes (one trace serves every padded length bucket);
    `jit_compile` adds XLA, which is not allowed under MirroredStrategy. JAX: jax.jit.
    Torch: no_grad eager.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf
        return tf.function(fn, reduce_retracing=True, jit_compile=jit_compile)
    if backend == "jax":
        import jax
        return jax.jit(fn)
    if backend == "torch":
        import torch

        def run(*args, **kwargs):
            with torch.no_grad():
                return fn(*args, **kwargs)
        return run
    return fn
