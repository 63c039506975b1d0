#!/usr/bin/env python
"""Could keras-hub's layers replace few_shot/layers/? Exactness against transformers and CPU speed.

    python scripts/keras_hub_check.py --json runs/keras_hub_check.json            # mini + base (~10 min on 2 shared cores)
    python scripts/keras_hub_check.py --models mini --repeats 3 --json /tmp/k.json  # quick

Builds a BERT masked-LM out of keras-hub layers (ReversibleEmbedding for tokens, PositionEmbedding,
a segment Embedding, LayerNorm, N x keras_hub.layers.TransformerEncoder (post-LN, keras
MultiHeadAttention, padding_mask), keras_hub.layers.MaskedLMHead tied to the token embedding),
copies the weights of a few_shot BertMaskedLM (few_shot.loading.load_mlm) into it, and reports:

  exactness  max |Δ| of full-vocabulary logits over the real (non-pad) positions of the first
             --rows sentiment test texts (maxlen --maxlen, chunks of --chunk rows each padded to its
             longest, attention mask from padding) against transformers BertForMaskedLM (torch,
             eval): ours, keras-hub with activation="gelu", and keras-hub with keras-hub's own
             BertBackbone activation (gelu_approximate, tanh) to show what that trap costs.
  speed      TensorFlow backend, tf.function (reduce_retracing, no XLA; as few_shot.backend does),
             interleaved A/B repeats (order alternates each repeat), median seconds per call:
               eval   forward of --eval-batch real texts padded to their longest, hidden states
                      gathered at one position per row (position 1), full-vocabulary MLM logits there
               train  one step on --train-batch rows: forward (dropout on) + sparse CE on the
                      full-vocabulary logits at one position per row + backward wrt all weights +
                      Adam update (tf.GradientTape + keras.optimizers.Adam)
             Each side's model has dropout as in the checkpoint config (0.1); keras
             MultiHeadAttention takes its einsum+softmax path whenever dropout > 0, and the fused
             ops.dot_product_attention path only at dropout=0, so an eval row for a dropout=0
             keras-hub copy is added as a reference (`keras_hub_dropout0`).

Models: `mini` (models/zh-bert-mini) and `base` (BERT-base shape: 12 layers, hidden 768, 12 heads,
3072 intermediate, vocab 21128; transformers BertForMaskedLM with torch.manual_seed(0) and its 1-D
parameters (biases, LayerNorm) randomised by 0.1*randn so a mis-mapped bias cannot hide; saved with
save_pretrained to a temporary folder with the bundled vocab.txt).
Prints a markdown table and writes --json.
"""
import argparse
import json
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

import numpy as np  # noqa: E402

BUNDLED = os.path.join(REPO_ROOT, "models", "zh-bert-mini")
SENTIMENT_TEST = os.path.join(REPO_ROOT, "data", "sentiment", "sentiment.test.data")
BASE_SHAPE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                  max_position_embeddings=512, type_vocab_size=2)
TOLERANCE = 1e-3
SLOWDOWN_LIMIT = 1.05


# -- data ---------------------------------------------------------------------------------------

def read_texts(n):
    texts = []
    with open(SENTIMENT_TEST, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n").rstrip("\r")
            if line.strip():
                texts.append(line.rsplit("\t", 1)[0])
            if len(texts) == n:
                break
    return texts


def padded(token_id_lists, pad_id):
    from few_shot.loading import pad_batch
    t = pad_batch(token_id_lists, pad_id)
    return t, np.zeros_like(t)


# -- the keras-hub model ------------------------------------------------------------------------

def gelu_activation_report():
    """What activation="gelu" resolves to in this keras, checked numerically against erf/tanh GELU."""
    import inspect
    import math

    import keras
    fn = keras.activations.get("gelu")
    x = np.linspace(-6, 6, 2001).astype("float32")
    got = keras.ops.convert_to_numpy(fn(x)).astype("float64")
    erf = 0.5 * x * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x.astype("float64")]))
    tanh = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x.astype("float64") ** 3)))
    default = inspect.signature(keras.activations.gelu).parameters["approximate"].default
    return {"keras_version": keras.__version__, "gelu_approximate_default": default,
            "string_gelu_vs_erf_max_abs": float(np.abs(got - erf).max()),
            "string_gelu_vs_tanh_max_abs": float(np.abs(got - tanh).max()),
            "erf_vs_tanh_max_abs": float(np.abs(erf - tanh).max()),
            "resolves_to": "erf" if np.abs(got - erf).max() < np.abs(got - tanh).max() else "tanh"}


def build_keras_hub_mlm(ours, activation="gelu", dropout=None):
    """A keras-hub-layer BERT masked-LM with the same shape as `ours` (a few_shot BertMaskedLM)."""
    import keras
    import keras_hub
    from keras import ops

    class KerasHubBertMaskedLM(keras.Model):
        def __init__(self, vocab_size, hidden_size, num_layers, num_heads, intermediate_size, max_position,
                     type_vocab_size, dropout, layer_norm_epsilon, pad_id, activation, **kwargs):
            super().__init__(**kwargs)
            h = hidden_size
            self.pad_id = pad_id
            self.token_embedding = keras_hub.layers.ReversibleEmbedding(vocab_size, h, tie_weights=True,
                                                                        name="token_embedding")
            self.position_embedding = keras_hub.layers.PositionEmbedding(max_position, name="position_embedding")
            self.segment_embedding = keras.layers.Embedding(type_vocab_size, h, name="segment_embedding")
            self.embeddings_layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon,
                                                                         name="embeddings_layer_norm")
            self.embeddings_dropout = keras.layers.Dropout(dropout)
            self.encoder_layers = [
                keras_hub.layers.TransformerEncoder(intermediate_size, num_heads, dropout=dropout,
                                                    activation=activation, layer_norm_epsilon=layer_norm_epsilon,
                                                    name=f"transformer_layer_{i}")
                for i in range(num_layers)]
            self.mlm_head = keras_hub.layers.MaskedLMHead(token_embedding=self.token_embedding,
                                                          intermediate_activation=activation,
                                                          layer_norm_epsilon=layer_norm_epsilon, name="mlm_head")
            self.token_embedding.build((None, None))
            self.position_embedding.build((None, None, h))
            self.segment_embedding.build((None, None))
            self.embeddings_layer_norm.build((None, None, h))
            for layer in self.encoder_layers:
                layer.build((None, None, h))
            self.mlm_head.build((None, None, h))
            self.built = True

        def encode(self, token_ids, segment_ids, training=False):
            padding_mask = ops.not_equal(token_ids, self.pad_id)
            x = self.token_embedding(token_ids)
            x = x + self.position_embedding(x) + self.segment_embedding(segment_ids)
            x = self.embeddings_dropout(self.embeddings_layer_norm(x), training=training)
            for layer in self.encoder_layers:
                x = layer(x, padding_mask=padding_mask, training=training)
            return x

        def head(self, hidden, positions):
            """Full-vocabulary logits at `positions` [B, P]."""
            return self.mlm_head(hidden, mask_positions=positions)

        def call(self, token_ids, segment_ids, training=False):
            hidden = self.encode(token_ids, segment_ids, training=training)
            b, t = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
            positions = ops.broadcast_to(ops.arange(t, dtype="int32")[None], (b, t))
            return self.head(hidden, positions)

    return KerasHubBertMaskedLM(
        vocab_size=ours.vocab_size, hidden_size=ours.hidden_size, num_layers=ours.num_layers,
        num_heads=ours.num_heads, intermediate_size=ours.intermediate_size, max_position=ours.max_position,
        type_vocab_size=ours.type_vocab_size, dropout=ours.dropout_rate if dropout is None else dropout,
        layer_norm_epsilon=ours.layer_norm_epsilon, pad_id=ours.pad_id, activation=activation)


def copy_weights(ours, kh):
    """few_shot BertMaskedLM -> keras-hub model. Dense [H, H] q/k/v kernels become EinsumDense
    [H, heads, head_dim] (ours splits columns as head * head_dim + d), the attention output kernel
    [H, H] becomes [heads, head_dim, H]. Returns the number of arrays copied (all of kh's weights)."""
    n, d = ours.num_heads, ours.hidden_size // ours.num_heads
    pairs = []
    e = ours.embeddings
    pairs += [(e.token_embedding.embeddings, kh.token_embedding.embeddings),
              (e.position_embedding.embeddings, kh.position_embedding.position_embeddings),
              (e.segment_embedding.embeddings, kh.segment_embedding.embeddings),
              (e.layer_norm.gamma, kh.embeddings_layer_norm.gamma),
              (e.layer_norm.beta, kh.embeddings_layer_norm.beta)]
    for src, dst in zip(ours.encoder_layers, kh.encoder_layers):
        mha = dst._self_attention_layer
        for a, b in ((src.query, mha._query_dense), (src.key, mha._key_dense), (src.value, mha._value_dense)):
            pairs += [(a.kernel, b.kernel, lambda w: w.reshape(w.shape[0], n, d)),
                      (a.bias, b.bias, lambda w: w.reshape(n, d))]
        pairs += [(src.attention_output.kernel, mha._output_dense.kernel, lambda w: w.reshape(n, d, w.shape[-1])),
                  (src.attention_output.bias, mha._output_dense.bias),
                  (src.attention_layer_norm.gamma, dst._self_attention_layer_norm.gamma),
                  (src.attention_layer_norm.beta, dst._self_attention_layer_norm.beta),
                  (src.intermediate.kernel, dst._feedforward_intermediate_dense.kernel),
                  (src.intermediate.bias, dst._feedforward_intermediate_dense.bias),
                  (src.output_dense.kernel, dst._feedforward_output_dense.kernel),
                  (src.output_dense.bias, dst._feedforward_output_dense.bias),
                  (src.output_layer_norm.gamma, dst._feedforward_layer_norm.gamma),
                  (src.output_layer_norm.beta, dst._feedforward_layer_norm.beta)]
    m = ours.mlm_head
    pairs += [(m.dense.kernel, kh.mlm_head._intermediate_dense.kernel),
              (m.dense.bias, kh.mlm_head._intermediate_dense.bias),
              (m.layer_norm.gamma, kh.mlm_head._intermediate_layer_norm.gamma),
              (m.layer_norm.beta, kh.mlm_head._intermediate_layer_norm.beta),
              (m.output_bias, kh.mlm_head._bias)]
    seen = set()
    for pair in pairs:
        src, dst = pair[0], pair[1]
        value = np.asarray(src.numpy())
        if len(pair) == 3:
            value = pair[2](value)
        if tuple(dst.shape) != value.shape:
            raise ValueError(f"{dst.path}: shape {tuple(dst.shape)} <- {src.path} {value.shape}")
        dst.assign(value)
        seen.add(id(dst))
    unmapped = [w.path for w in kh.weights if id(w) not in seen]
    if unmapped:
        raise ValueError(f"keras-hub weights left unmapped: {unmapped}")
    return len(seen)


# -- exactness ----------------------------------------------------------------------------------

def exactness(mlm, hf_folder, texts, maxlen, chunk, activations):
    """max |Δ| vs transformers over non-pad positions; ours and one keras-hub model per activation."""
    import keras
    import tensorflow as tf
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    reference = transformers.BertForMaskedLM.from_pretrained(hf_folder).eval()
    ours = mlm.model
    tok = mlm.tokenizer
    ids = [tok.encode(text, maxlen=maxlen)[0] for text in texts]  # file order: chunks mix lengths
    models = {"ours": lambda t, s, training=False: ours({"token_ids": t, "segment_ids": s}, training=training)}
    for name, activation in activations.items():
        kh = build_keras_hub_mlm(ours, activation=activation)
        copy_weights(ours, kh)
        models[name] = kh
    fns = {name: tf.function(lambda t, s, m=m: m(t, s, training=False), reduce_retracing=True)
           for name, m in models.items()}
    worst = {name: 0.0 for name in fns}
    worst["keras_hub_vs_ours"] = 0.0
    scale = 0.0
    padded_chunks = 0
    for start in range(0, len(ids), chunk):
        part = ids[start:start + chunk]
        t, s = padded(part, tok.pad_id)
        mask = t != tok.pad_id
        padded_chunks += int((~mask).any())
        with torch.no_grad():
            want = reference(input_ids=torch.as_tensor(t, dtype=torch.long),
                             token_type_ids=torch.as_tensor(s, dtype=torch.long),
                             attention_mask=torch.as_tensor(mask, dtype=torch.long)).logits.numpy()
        scale = max(scale, float(np.abs(want[mask]).max()))
        got = {name: keras.ops.convert_to_numpy(fn(t, s)) for name, fn in fns.items()}
        for name, value in got.items():
            worst[name] = max(worst[name], float(np.abs(value - want)[mask].max()))
        worst["keras_hub_vs_ours"] = max(worst["keras_hub_vs_ours"],
                                         float(np.abs(got["keras_hub"] - got["ours"])[mask].max()))
    return {"max_abs_diff_vs_transformers": {k: v for k, v in worst.items() if k != "keras_hub_vs_ours"},
            "max_abs_diff_keras_hub_vs_ours": worst["keras_hub_vs_ours"],
            "max_abs_logit_transformers": scale, "rows": len(ids), "chunks": -(-len(ids) // chunk),
            "padded_chunks": padded_chunks, "maxlen": maxlen}


# -- speed --------------------------------------------------------------------------------------

def make_steps(ours, kh):
    """-> {side: (eval_fn, train_fn)}; eval(t, s, p) logits at positions p [B, 1]; train(t, s, p, y) loss."""
    import keras
    import tensorflow as tf
    from keras import ops

    def ours_logits(t, s, p, training):
        hidden = ours.encode(t, s, training=training)
        return ours.mlm_logits(ops.take_along_axis(hidden, p[:, :, None], axis=1))

    def kh_logits(model):
        return lambda t, s, p, training: model.head(model.encode(t, s, training=training), p)

    def train_fn(model, logits_fn):
        optimizer = keras.optimizers.Adam(learning_rate=1e-5)
        variables = model.trainable_variables
        optimizer.build(variables)

        def step(t, s, p, y):
            with tf.GradientTape() as tape:
                logits = logits_fn(t, s, p, True)
                loss = ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, variables))
            return loss
        return tf.function(step, reduce_retracing=True)

    def eval_fn(logits_fn):
        return tf.function(lambda t, s, p: logits_fn(t, s, p, False), reduce_retracing=True)

    return {"ours": (eval_fn(ours_logits), train_fn(ours, ours_logits)),
            "keras_hub": (eval_fn(kh_logits(kh)), train_fn(kh, kh_logits(kh)))}


def interleaved(fns, args, repeats, inner, warmup=2):
    """Median seconds per call of each fn, alternating sides (and their order) every repeat."""
    def run(fn):
        out = None
        for _ in range(inner):
            out = fn(*args)
        np.asarray(out)  # sync
    for fn in fns.values():
        for _ in range(warmup):
            run(fn)
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            run(fns[name])
            times[name].append((time.perf_counter() - start) / inner)
    return {name: {"median_s": statistics.median(v), "all_s": v} for name, v in times.items()}


def speed(mlm, texts, maxlen, eval_batch, train_batch, repeats, inner, dropout0_reference, warmup=2):
    import keras
    import tensorflow as tf

    ours = mlm.model
    kh = build_keras_hub_mlm(ours)
    copy_weights(ours, kh)
    tok = mlm.tokenizer
    ids = [tok.encode(text, maxlen=maxlen)[0] for text in texts]
    steps = make_steps(ours, kh)
    rng = np.random.default_rng(0)
    results = {}
    t, s = padded(ids[:eval_batch], tok.pad_id)
    p = np.ones((len(t), 1), dtype="int32")
    eval_fns = {name: fns[0] for name, fns in steps.items()}
    if dropout0_reference:
        kh0 = build_keras_hub_mlm(ours, dropout=0.0)
        copy_weights(ours, kh0)
        eval_fns["keras_hub_dropout0"] = tf.function(
            lambda t, s, p: kh0.head(kh0.encode(t, s, training=False), p), reduce_retracing=True)
    got = {name: keras.ops.convert_to_numpy(fn(t, s, p)) for name, fn in eval_fns.items()}
    agree = max(float(np.abs(v - got["ours"]).max()) for v in got.values())
    results["eval"] = {"batch": list(t.shape), "what": "forward + full-vocab MLM logits at 1 position/row",
                       "max_abs_diff_between_sides": agree,
                       **interleaved(eval_fns, (t, s, p), repeats, inner, warmup)}
    t, s = padded(ids[:train_batch], tok.pad_id)
    p = np.ones((len(t), 1), dtype="int32")
    y = rng.integers(104, ours.vocab_size, size=(len(t), 1)).astype("int32")
    train_fns = {name: fns[1] for name, fns in steps.items()}
    results["train"] = {"batch": list(t.shape),
                        "what": "forward(dropout) + CE at 1 position/row + backward wrt all weights + Adam",
                        **interleaved(train_fns, (t, s, p, y), repeats, max(1, inner // 2), warmup)}
    for stage in ("eval", "train"):
        add_ratios(results[stage])
    return results


def add_ratios(r):
    """Ratio of medians, and the median of per-repeat paired ratios (the two sides of one repeat ran back
    to back, so a load change between repeats cancels; this is the one criterion (b) uses)."""
    for side in ("keras_hub", "keras_hub_dropout0"):
        if side in r:
            r[f"ratio_{side}_over_ours"] = r[side]["median_s"] / r["ours"]["median_s"]
            r[f"paired_ratio_median_{side}_over_ours"] = statistics.median(
                a / b for a, b in zip(r[side]["all_s"], r["ours"]["all_s"]))


# -- models -------------------------------------------------------------------------------------

def make_base_folder(folder):
    import torch
    import transformers
    with open(os.path.join(BUNDLED, "vocab.txt"), encoding="utf-8") as f:
        vocab_size = sum(1 for _ in f)
    config = transformers.BertConfig(vocab_size=vocab_size, **BASE_SHAPE)
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

    import keras
    import keras_hub
    import tensorflow as tf
    import torch
    import transformers
    from keras_hub.src.utils.keras_utils import gelu_approximate

    from few_shot.loading import load_mlm

    if keras.backend.backend() != "tensorflow":
        raise SystemExit("run with KERAS_BACKEND=tensorflow")
    torch.set_num_threads(os.cpu_count() or 1)
    began = time.time()
    report = {"command": " ".join([os.path.basename(sys.executable)] + sys.argv), "versions": {
        "keras": keras.__version__, "keras_hub": keras_hub.__version__, "tensorflow": tf.__version__,
        "torch": torch.__version__, "transformers": transformers.__version__},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "gelu": gelu_activation_report(), "models": {}}
    texts = read_texts(max(args.rows, args.eval_batch, args.train_batch))
    tmp = tempfile.mkdtemp(prefix="keras_hub_check_")
    try:
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
                                       args.inner if mini else 1, dropout0_reference=True, warmup=2 if mini else 1)
                print(f"[{name}] speed: " + json.dumps({k: {kk: vv for kk, vv in v.items() if kk != 'batch'}
                                                         for k, v in entry["speed"].items()}), flush=True)
            entry["seconds"] = time.time() - stage_start
            report["models"][name] = entry
            del mlm
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

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
