#!/usr/bin/env python3
"""Why `keras_jax_bf16` failed in the GPU job ("ValueError: Unknown output type bfloat16"), and a fix,
checked on the GPU machine (KERAS_BACKEND=jax):

    KERAS_BACKEND=jax python3 scripts/bench/jax_bf16_check.py --out R.jsonl [--tiny]

Cause: under mixed_bfloat16, Keras' Bidirectional(LSTM) takes its fused cuDNN path on a JAX GPU
(jax.experimental.rnn.lstm), whose lowering (jaxlib gpu_rnn._rnn_fwd_lowering) accepts float32/float64
only. The prompt encoder is tiny: its LSTMs can skip cuDNN (use_cudnn=False: a lax.scan in bf16). This script: (1) the bare BiLSTM in bf16 (expected to fail on a
GPU), (2) the same with dtype float32, then (3) gpu_bench.py's `keras --precisions bf16` measurement
with PromptEncoder's LSTMs patched to use_cudnn=False: the missing Keras/JAX bf16 eval and p-tuning train step.
"""
import argparse
import json
import os
import sys
import time
import traceback

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, SCRIPTS)
sys.path.insert(0, os.path.dirname(SCRIPTS))


def record(out, **r):
    print("check:", json.dumps(r)[:400], flush=True)
    with open(out, "a", encoding="utf-8") as f:
        f.write(json.dumps({"t": round(time.time(), 3), **r}) + "\n")


def bilstm(out, dtype):
    import keras
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        layer = keras.layers.Bidirectional(keras.layers.LSTM(384, return_sequences=True), dtype=dtype)
        y = layer(keras.ops.ones((1, 8, 768)))
        record(out, kind="check", name=f"bilstm_mixed_bf16_layer_dtype_{dtype}", ok=True, out_dtype=str(y.dtype))
    except Exception as e:  # noqa: BLE001 -- the failure is the finding
        record(out, kind="check", name=f"bilstm_mixed_bf16_layer_dtype_{dtype}", ok=False,
               error=f"{type(e).__name__}: {e}"[:300], traceback=traceback.format_exc()[-1500:])
    finally:
        keras.mixed_precision.set_global_policy("float32")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--tiny", action="store_true")
    args = p.parse_args()
    import keras
    record(args.out, kind="env", backend=keras.backend.backend(), keras=keras.__version__)
    bilstm(args.out, None)
    bilstm(args.out, "float32")
    from few_shot.layers import prompt_encoder
    original = prompt_encoder.PromptEncoder.__init__

    def patched_init(self, *a, **kw):  # the fix: no fused cuDNN LSTM for the (tiny) prompt encoder
        original(self, *a, **kw)
        for layer in self.lstm or []:
            layer.forward_layer.use_cudnn = layer.backward_layer.use_cudnn = False
    prompt_encoder.PromptEncoder.__init__ = patched_init
    import gpu_bench
    gpu_bench.main(["keras", "--precisions", "bf16", "--out", args.out] + (["--tiny"] if args.tiny else []))


if __name__ == "__main__":
    main()
