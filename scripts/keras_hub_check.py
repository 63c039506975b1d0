#!/usr/bin/env python
"""Could keras-hub's layers replace few_shot/layers/? Exactness against transformers and CPU speed.

    python scripts/keras_hub_check.py --json runs/keras_hub_check.json            # mini + base (~10 min on 2 shared cores)
    python scripts/keras_hub_check.py --models mini --repeats 3 --json /tmp/k.json  # quick

Needs keras-hub, no longer a few_shot dependency: `pip install keras-hub`. Builds a BERT masked-LM out
of keras-hub layers (ReversibleEmbedding, PositionEmbedding, a segment Embedding, LayerNorm, N x
TransformerEncoder (post-LN, keras MultiHeadAttention, padding_mask), MaskedLMHead tied to the token
embedding), copies the weights of a few_shot BertMaskedLM (load_mlm) into it, and reports:

  exactness  max |Δ| of full-vocabulary logits over the real (non-pad) positions of the first --rows
             sentiment test texts (maxlen --maxlen, chunks of --chunk rows each padded to its longest)
             against transformers BertForMaskedLM (torch, eval): ours, keras-hub with activation="gelu",
             and keras-hub with its BertBackbone's activation (gelu_approximate, tanh): what that trap costs.
  speed      TensorFlow, tf.function (reduce_retracing, no XLA; as few_shot.backend does), interleaved A/B
             repeats (order alternates each repeat), median seconds per call of `eval` (--eval-batch texts
             padded to their longest, full-vocabulary logits at position 1 of each row) and `train` (one
             Adam step on --train-batch rows, CE at position 1, dropout on; see train_step). Dropout is the
             checkpoint's (0.1); keras MultiHeadAttention takes its einsum+softmax path whenever dropout > 0
             (the fused ops.dot_product_attention only at 0), hence the eval reference `keras_hub_dropout0`.

Models: `mini` (models/zh-bert-mini) and `base` (BERT-base shape: 12 layers, hidden 768, 12 heads, 3072
intermediate, vocab 21128; transformers BertForMaskedLM, torch.manual_seed(0), its 1-D parameters (biases,
LayerNorm) randomised by 0.1*randn so a mis-mapped bias cannot hide; saved to a temporary folder with the
bundled vocab.txt). Prints a markdown table and writes --json.
"""
import argparse
import importlib.util
import inspect
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

if importlib.util.find_spec("keras_hub") is None:
    raise SystemExit("error: keras_hub is not installed (few_shot no longer depends on it): `pip install keras-hub`")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from keras import ops  # noqa: E402
from keras_hub.src.utils.keras_utils import gelu_approximate  # noqa: E402

from few_shot.batching import pad_batch  # noqa: E402
from few_shot.loading import load_mlm  # noqa: E402

BUNDLED = os.path.join(REPO_ROOT, "models", "zh-bert-mini")
SENTIMENT_TEST = os.path.join(REPO_ROOT, "data", "sentiment", "sentiment.test.data")
BASE_SHAPE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                  max_position_embeddings=512, type_vocab_size=2)
TOLERANCE = 1e-3
SLOWDOWN_LIMIT = 1.05


def read_texts(n):
    with open(SENTIMENT_TEST, encoding="utf-8") as f:
        return [line.rstrip("\r\n").rsplit("\t", 1)[0] for line in f if line.strip()][:n]


def padded(token_id_lists, pad_id):
    t = pad_batch(token_id_lists, pad_id)
    return t, np.zeros_like(t)


def gelu_activation_report():
    """What activation="gelu" resolves to in this keras, checked numerically against erf/tanh GELU."""
    x = np.linspace(-6, 6, 2001).astype("float32")
    got = keras.ops.convert_to_numpy(keras.activations.get("gelu")(x)).astype("float64")
    erf = 0.5 * x * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x.astype("float64")]))
    tanh = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x.astype("float64") ** 3)))
    return {"keras_version": keras.__version__,
            "gelu_approximate_default": inspect.signature(keras.activations.gelu).parameters["approximate"].default,
            "string_gelu_vs_erf_max_abs": float(np.abs(got - erf).max()),
            "string_gelu_vs_tanh_max_abs": float(np.abs(got - tanh).max()),
            "erf_vs_tanh_max_abs": float(np.abs(erf - tanh).max()),
            "resolves_to": "erf" if np.abs(got - erf).max() < np.abs(got - tanh).max() else "tanh"}


def keras_hub_mlm(ours, activation="gelu", dropout=None):
    """A keras-hub-layer BERT masked-LM with the shape (dropout: `ours`' unless given) and the weights of
    `ours` (a few_shot BertMaskedLM)."""
    class KerasHubBertMaskedLM(keras.Model):
        def __init__(self, dropout, **kwargs):
            super().__init__(**kwargs)
            h, eps = ours.hidden_size, ours.layer_norm_epsilon
            self.pad_id = ours.pad_id
            self.token_embedding = keras_hub.layers.ReversibleEmbedding(ours.vocab_size, h, tie_weights=True,
                                                                        name="token_embedding")
            self.position_embedding = keras_hub.layers.PositionEmbedding(ours.max_position,
                                                                         name="position_embedding")
            self.segment_embedding = keras.layers.Embedding(ours.type_vocab_size, h, name="segment_embedding")
            self.embeddings_layer_norm = keras.layers.LayerNormalization(epsilon=eps, name="embeddings_layer_norm")
            self.embeddings_dropout = keras.layers.Dropout(dropout)
            self.encoder_layers = [
                keras_hub.layers.TransformerEncoder(ours.intermediate_size, ours.num_heads, dropout=dropout,
                                                    activation=activation, layer_norm_epsilon=eps,
                                                    name=f"transformer_layer_{i}")
                for i in range(ours.num_layers)]
            self.mlm_head = keras_hub.layers.MaskedLMHead(token_embedding=self.token_embedding,
                                                          intermediate_activation=activation,
                                                          layer_norm_epsilon=eps, name="mlm_head")
            zeros = np.zeros((1, 2), dtype="int32")
            self(zeros, zeros)  # builds every layer

        def encode(self, token_ids, segment_ids, training=False):
            padding_mask = ops.not_equal(token_ids, self.pad_id)
            x = self.token_embedding(token_ids)
            x = x + self.position_embedding(x) + self.segment_embedding(segment_ids)
            x = self.embeddings_dropout(self.embeddings_layer_norm(x), training=training)
            for layer in self.encoder_layers:
                x = layer(x, padding_mask=padding_mask, training=training)
            return x

        def call(self, token_ids, segment_ids, training=False):  # full-vocabulary logits at every position
            hidden = self.encode(token_ids, segment_ids, training=training)
            b, t = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
            return self.mlm_head(hidden, mask_positions=ops.broadcast_to(ops.arange(t, dtype="int32")[None], (b, t)))

    kh = KerasHubBertMaskedLM(ours.dropout_rate if dropout is None else dropout)
    copy_weights(ours, kh)
    return kh


def copy_weights(ours, kh):
    """few_shot BertMaskedLM -> keras-hub model. Dense [H, H] q/k/v kernels become EinsumDense
    [H, heads, head_dim] (ours splits columns as head * head_dim + d), the attention output kernel
    [H, H] becomes [heads, head_dim, H]. Every weight of kh must be mapped."""
    n, d = ours.num_heads, ours.hidden_size // ours.num_heads

    def dense(a, b):
        return [(a.kernel, b.kernel), (a.bias, b.bias)]

    def norm(a, b):
        return [(a.gamma, b.gamma), (a.beta, b.beta)]

    e = ours.embeddings
    pairs = [(e.token_embedding.embeddings, kh.token_embedding.embeddings),
             (e.position_embedding.embeddings, kh.position_embedding.position_embeddings),
             (e.segment_embedding.embeddings, kh.segment_embedding.embeddings)] + norm(e.layer_norm,
                                                                                      kh.embeddings_layer_norm)
    for src, dst in zip(ours.encoder_layers, kh.encoder_layers):
        mha = dst._self_attention_layer
        for a, b in ((src.query, mha._query_dense), (src.key, mha._key_dense), (src.value, mha._value_dense)):
            pairs += [(a.kernel, b.kernel, lambda w: w.reshape(w.shape[0], n, d)),
                      (a.bias, b.bias, lambda w: w.reshape(n, d))]
        pairs += [(src.attention_output.kernel, mha._output_dense.kernel, lambda w: w.reshape(n, d, w.shape[-1])),
                  (src.attention_output.bias, mha._output_dense.bias)]
        pairs += (norm(src.attention_layer_norm, dst._self_attention_layer_norm)
                  + dense(src.intermediate, dst._feedforward_intermediate_dense)
                  + dense(src.output_dense, dst._feedforward_output_dense)
                  + norm(src.output_layer_norm, dst._feedforward_layer_norm))
    m = ours.mlm_head
    pairs += (dense(m.dense, kh.mlm_head._intermediate_dense)
              + norm(m.layer_norm, kh.mlm_head._intermediate_layer_norm) + [(m.output_bias, kh.mlm_head._bias)])
    seen = set()
    for src, dst, *reshape in pairs:
        value = np.asarray(src.numpy())
        if reshape:
            value = reshape[0](value)
        if tuple(dst.shape) != value.shape:
            raise ValueError(f"{dst.path}: shape {tuple(dst.shape)} <- {src.path} {value.shape}")
        dst.assign(value)
        seen.add(id(dst))
    unmapped = [w.path for w in kh.weights if id(w) not in seen]
    if unmapped:
        raise ValueError(f"keras-hub weights left unmapped: {unmapped}")


def logits_at(model):
    """-> f(t, s, p, training): full-vocabulary logits at positions p [B, P] (ours or a keras-hub model)."""
    if hasattr(model, "mlm_logits"):  # ours
        return lambda t, s, p, training: model.mlm_logits(
            ops.take_along_axis(model.encode(t, s, training=training), p[:, :, None], axis=1))
    return lambda t, s, p, training: model.mlm_head(model.encode(t, s, training=training), mask_positions=p)


def exactness(mlm, hf_folder, texts, maxlen, chunk, activations):
    """max |Δ| vs transformers over non-pad positions; ours and one keras-hub model per activation."""
    transformers.logging.set_verbosity_error()
    reference = transformers.BertForMaskedLM.from_pretrained(hf_folder).eval()
    ours, tok = mlm.model, mlm.tokenizer
    ids = [tok.encode(text, maxlen=maxlen)[0] for text in texts]  # file order: chunks mix lengths
    models = {"ours": lambda t, s, training=False: ours({"token_ids": t, "segment_ids": s}, training=training),
              **{name: keras_hub_mlm(ours, activation=activation) for name, activation in activations.items()}}
    fns = {name: tf.function(lambda t, s, m=m: m(t, s, training=False), reduce_retracing=True)
           for name, m in models.items()}
    worst = dict.fromkeys([*fns, "keras_hub_vs_ours"], 0.0)
    scale, padded_chunks = 0.0, 0
    for start in range(0, len(ids), chunk):
        t, s = padded(ids[start:start + chunk], tok.pad_id)
        mask = t != tok.pad_id
        padded_chunks += int((~mask).any())
        with torch.no_grad():
            want = reference(input_ids=torch.as_tensor(t, dtype=torch.long),
                             token_type_ids=torch.as_tensor(s, dtype=torch.long),
                             attention_mask=torch.as_tensor(mask, dtype=torch.long)).logits.numpy()
        scale = max(scale, float(np.abs(want[mask]).max()))
        got = {name: keras.ops.convert_to_numpy(fn(t, s)) for name, fn in fns.items()}
        diffs = {**{name: value - want for name, value in got.items()},
                 "keras_hub_vs_ours": got["keras_hub"] - got["ours"]}
        for name, diff in diffs.items():
            worst[name] = max(worst[name], float(np.abs(diff)[mask].max()))
    return {"max_abs_diff_vs_transformers": {k: v for k, v in worst.items() if k != "keras_hub_vs_ours"},
            "max_abs_diff_keras_hub_vs_ours": worst["keras_hub_vs_ours"],
            "max_abs_logit_transformers": scale, "rows": len(ids), "chunks": -(-len(ids) // chunk),
            "padded_chunks": padded_chunks, "maxlen": maxlen}


def train_step(model):
    """-> tf.function(t, s, p, y): one step: forward (dropout on) + sparse CE on the full-vocabulary logits
    at positions p + backward wrt all weights + Adam update; returns the loss."""
    logits_fn, variables = logits_at(model), model.trainable_variables
    optimizer = keras.optimizers.Adam(learning_rate=1e-5)
    optimizer.build(variables)

    def step(t, s, p, y):
        with tf.GradientTape() as tape:
            loss = ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits_fn(t, s, p, True), from_logits=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss
    return tf.function(step, reduce_retracing=True)


def interleaved(fns, args, repeats, inner, warmup=2):
    """Median seconds per call of each fn, alternating sides (and their order) every repeat."""
    def run(fn):
        for _ in range(inner):
            out = fn(*args)
        np.asarray(out)  # sync
    for fn in fns.values():
        for _ in range(warmup):
            run(fn)
    times = {name: [] for name in fns}
    for r in range(repeats):
        for name in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            start = time.perf_counter()
            run(fns[name])
            times[name].append((time.perf_counter() - start) / inner)
    return {name: {"median_s": statistics.median(v), "all_s": v} for name, v in times.items()}


def speed(mlm, texts, maxlen, eval_batch, train_batch, repeats, inner, warmup=2):
    """Eval (ours, keras-hub, keras-hub at dropout 0) and train (ours, keras-hub) timings, with the
    ratios of keras-hub over ours."""
    ours, tok = mlm.model, mlm.tokenizer
    models = {"ours": ours, "keras_hub": keras_hub_mlm(ours), "keras_hub_dropout0": keras_hub_mlm(ours, dropout=0.0)}
    ids = [tok.encode(text, maxlen=maxlen)[0] for text in texts]
    eval_fns = {name: tf.function(lambda t, s, p, f=logits_at(m): f(t, s, p, False), reduce_retracing=True)
                for name, m in models.items()}
    train_fns = {name: train_step(models[name]) for name in ("ours", "keras_hub")}
    results = {}
    for stage, batch in (("eval", eval_batch), ("train", train_batch)):
        t, s = padded(ids[:batch], tok.pad_id)
        p = np.ones((len(t), 1), dtype="int32")
        if stage == "eval":
            got = {name: keras.ops.convert_to_numpy(fn(t, s, p)) for name, fn in eval_fns.items()}
            r = {"batch": list(t.shape), "what": "forward + full-vocab MLM logits at 1 position/row",
                 "max_abs_diff_between_sides": max(float(np.abs(v - got["ours"]).max()) for v in got.values()),
                 **interleaved(eval_fns, (t, s, p), repeats, inner, warmup)}
        else:
            y = np.random.default_rng(0).integers(104, ours.vocab_size, size=(len(t), 1)).astype("int32")
            r = {"batch": list(t.shape),
                 "what": "forward(dropout) + CE at 1 position/row + backward wrt all weights + Adam",
                 **interleaved(train_fns, (t, s, p, y), repeats, max(1, inner // 2), warmup)}
        # ratio of medians, and the median of per-repeat paired ratios (the two sides of one repeat ran
        # back to back, so a load change between repeats cancels; this is the one criterion (b) uses)
        for side in ("keras_hub", "keras_hub_dropout0"):
            if side in r:
                r[f"ratio_{side}_over_ours"] = r[side]["median_s"] / r["ours"]["median_s"]
                r[f"paired_ratio_median_{side}_over_ours"] = statistics.median(
                    a / b for a, b in zip(r[side]["all_s"], r["ours"]["all_s"]))
        results[stage] = r
    return results


def make_base_folder(folder):
    with open(os.path.join(BUNDLED, "vocab.txt"), encoding="utf-8") as f:
        config = transformers.BertConfig(vocab_size=sum(1 for _ in f), **BASE_SHAPE)
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(config).eval()
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(folder)
    shutil.copyfile(os.path.join(BUNDLED, "vocab.txt"), os.path.join(folder, "vocab.txt"))
    return folder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="mini,base")
    parser.add_argument("--rows", type=int, default=64, help="sentiment test texts for the exactness check")
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--maxlen", type=int, default=128)
    parser.add_argument("--eval-batch", type=int, default=64)
    parser.add_argument("--train-batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repeats (mini)")
    parser.add_argument("--inner", type=int, default=4, help="calls per timed repeat (mini; train uses half)")
    parser.add_argument("--base-maxlen", type=int, default=64, help="maxlen of the base-shape timings")
    parser.add_argument("--base-repeats", type=int, default=5, help="interleaved repeats (base), 1 call each")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--json", required=True)
    args = parser.parse_args(argv)
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("run with KERAS_BACKEND=tensorflow")
    torch.set_num_threads(os.cpu_count() or 1)
    began = time.time()
    report = {"command": " ".join([os.path.basename(sys.executable)] + sys.argv),
              "versions": {m.__name__: m.__version__ for m in (keras, keras_hub, tf, torch, transformers)},
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
              "gelu": gelu_activation_report(), "models": {}}
    texts = read_texts(max(args.rows, args.eval_batch, args.train_batch))
    with tempfile.TemporaryDirectory(prefix="keras_hub_check_", ignore_cleanup_errors=True) as tmp:
        for name in args.models.split(","):
            stage_start = time.time()
            folder = BUNDLED if name == "mini" else make_base_folder(os.path.join(tmp, "base"))
            mlm = load_mlm(folder)
            entry = {"folder": folder if name == "mini" else "(temporary) BertForMaskedLM seed 0",
                     "shape": {"layers": mlm.model.num_layers, "hidden": mlm.model.hidden_size,
                               "heads": mlm.model.num_heads, "intermediate": mlm.model.intermediate_size,
                               "vocab": mlm.model.vocab_size}}
            entry["exactness"] = exactness(mlm, folder, texts[:args.rows], args.maxlen, args.chunk,
                                           {"keras_hub": "gelu", "keras_hub_tanh_gelu": gelu_approximate})
            print(f"[{name}] exactness: {json.dumps(entry['exactness'])}", flush=True)
            if not args.skip_speed:
                mini = name == "mini"
                entry["speed"] = speed(mlm, texts, args.maxlen if mini else args.base_maxlen, args.eval_batch,
                                       args.train_batch, args.repeats if mini else args.base_repeats,
                                       args.inner if mini else 1, warmup=2 if mini else 1)
                print(f"[{name}] speed: " + json.dumps({k: {kk: vv for kk, vv in v.items() if kk != 'batch'}
                                                         for k, v in entry["speed"].items()}), flush=True)
            entry["seconds"] = time.time() - stage_start
            report["models"][name] = entry
            del mlm

    ok_a = all(m["exactness"]["max_abs_diff_vs_transformers"]["keras_hub"] < TOLERANCE
               for m in report["models"].values())
    ratios = [m["speed"][s]["paired_ratio_median_keras_hub_over_ours"] for m in report["models"].values()
              if "speed" in m for s in ("eval", "train")]
    ok_b = bool(ratios) and max(ratios) <= SLOWDOWN_LIMIT
    report["criteria"] = {"a_exact_below_1e-3": ok_a, "b_slowdown_at_most_5pct": ok_b if ratios else None,
                          "worst_ratio_keras_hub_over_ours": max(ratios) if ratios else None}
    report["total_seconds"] = time.time() - began

    lines = ["| model | max abs Δ vs transformers: ours | keras-hub (gelu) | keras-hub (tanh gelu) | "
             "keras-hub vs ours | max abs logit |", "|---|---|---|---|---|---|"]
    for name, m in report["models"].items():
        e = m["exactness"]
        d = e["max_abs_diff_vs_transformers"]
        lines.append(f"| {name} | {d['ours']:.2e} | {d['keras_hub']:.2e} | {d['keras_hub_tanh_gelu']:.2e} | "
                     f"{e['max_abs_diff_keras_hub_vs_ours']:.2e} | {e['max_abs_logit_transformers']:.1f} |")
    lines += ["", "| model | stage | batch | repeats | ours median s | keras-hub median s | ratio of medians | "
              "median paired ratio | keras-hub dropout=0 / ours (paired) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, m in report["models"].items():
        for stage, r in m.get("speed", {}).items():
            d0 = r.get("paired_ratio_median_keras_hub_dropout0_over_ours")
            lines.append(f"| {name} | {stage} | {r['batch'][0]}x{r['batch'][1]} | {len(r['ours']['all_s'])} | "
                         f"{r['ours']['median_s']:.4f} | {r['keras_hub']['median_s']:.4f} | "
                         f"{r['ratio_keras_hub_over_ours']:.3f} | {r['paired_ratio_median_keras_hub_over_ours']:.3f} | "
                         f"{'' if d0 is None else f'{d0:.3f}'} |")
    lines += ["", f"(a) keras-hub logits within {TOLERANCE:g} of transformers: {'PASS' if ok_a else 'FAIL'}",
              f"(b) keras-hub at most {100 * (SLOWDOWN_LIMIT - 1):.0f}% slower: "
              f"{'n/a' if not ratios else ('PASS' if ok_b else 'FAIL')} "
              f"(worst median paired ratio {max(ratios) if ratios else float('nan'):.3f})",
              f"gelu: activation='gelu' resolves to {report['gelu']['resolves_to']} in keras "
              f"{report['gelu']['keras_version']}", f"total {report['total_seconds']:.0f} s"]
    report["table"] = "\n".join(lines)
    print(report["table"])
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
