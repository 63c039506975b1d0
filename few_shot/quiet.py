"""A clean first screen: TensorFlow's start-up chatter (absl's pre-init lines, oneDNN and CPU-feature
notes, "no CUDA driver" on a CPU machine) is held back while TensorFlow and Keras import; any other
line it printed is passed on. Numerics are untouched (oneDNN stays on)."""
import os
import re
import sys
import tempfile

NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog|To enable the following instructions|"
                   r"[IW]\d{4} |E\d{4} .*(cuInit|cuda|CUDA|GPU)|.*(oneDNN custom operations|cudart_stub|"
                   r"cpu_feature_guard|Unable to register cu(DNN|FFT|BLAS) factory|computation placer))")
_started = False


def start_tensorflow():
    """Import TensorFlow and Keras with fd 2 caught; re-print what is not noise."""
    global _started
    if _started:
        return
    _started = True
    # 3: also TensorFlow's C++ error-level notes (e.g. "failed call to cuInit" on a CPU machine);
    # real failures still surface as Python exceptions
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import keras
            if keras.backend.backend() == "tensorflow":  # pretraining also runs on torch and JAX
                import tensorflow  # noqa: F401  (devices are not touched: multi-worker collectives must
                #                    be configured before TensorFlow initialises them)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            lines = caught.read().decode("utf-8", "replace").splitlines()
    for line in lines:
        if line.strip() and not NOISE.match(line):
            print(line, file=sys.stderr)
