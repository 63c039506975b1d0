"""Checkpoint formats <-> BertMaskedLM variables.

One table (`weight_table`) names every variable in both the HuggingFace and the Google/bert4keras
layouts; readers and writers all go through it, so the formats cannot drift apart.
"""
import json
import os
import warnings

import numpy as np

from few_shot.errors import FewShotError

HF_CONFIG, HF_SAFETENSORS, HF_BIN = "config.json", "model.safetensors", "pytorch_model.bin"
GOOGLE_CONFIG, GOOGLE_CKPT = "bert_config.json", "bert_model.ckpt"
VOCAB = "vocab.txt"
# the files export_hf / export_google write (glob patterns), so that a re-export replaces only these
HF_FILES = (HF_CONFIG, HF_SAFETENSORS, VOCAB, "tokenizer_config.json")
GOOGLE_FILES = (GOOGLE_CONFIG, GOOGLE_CKPT + ".index", GOOGLE_CKPT + ".data-*", "checkpoint", VOCAB)


class MissingHeadWarning(UserWarning):
    """The checkpoint has no MLM-head weights: label-word scores are random until trained."""


def weight_table(model):
    """-> [(hf_name, google_name, variable, is_kernel)] for every variable of a BertMaskedLM.

    HF names carry no `bert.` prefix here; kernels are stored [out, in] by HF and [in, out] by
    Google and Keras, hence `is_kernel`.
    """
    emb = model.embeddings
    rows = [
        ("embeddings.word_embeddings.weight", "bert/embeddings/word_embeddings",
         emb.token_embedding.embeddings, False),
        ("embeddings.position_embeddings.weight", "bert/embeddings/position_embeddings",
         emb.position_embedding.embeddings, False),
        ("embeddings.token_type_embeddings.weight", "bert/embeddings/token_type_embeddings",
         emb.segment_embedding.embeddings, False),
        ("embeddings.LayerNorm.weight", "bert/embeddings/LayerNorm/gamma", emb.layer_norm.gamma, False),
        ("embeddings.LayerNorm.bias", "bert/embeddings/LayerNorm/beta", emb.layer_norm.beta, False),
    ]
    for i, layer in enumerate(model.encoder_layers):
        hf, g = f"encoder.layer.{i}.", f"bert/encoder/layer_{i}/"
        for dense, hf_part, g_part in [
            (layer.query, "attention.self.query", "attention/self/query"),
            (layer.key, "attention.self.key", "attention/self/key"),
            (layer.value, "attention.self.value", "attention/self/value"),
            (layer.attention_output, "attention.output.dense", "attention/output/dense"),
            (layer.intermediate, "intermediate.dense", "intermediate/dense"),
            (layer.output_dense, "output.dense", "output/dense"),
        ]:
            rows.append((hf + hf_part + ".weight", g + g_part + "/kernel", dense.kernel, True))
            rows.append((hf + hf_part + ".bias", g + g_part + "/bias", dense.bias, False))
        for norm, hf_part, g_part in [
            (layer.attention_layer_norm, "attention.output.LayerNorm", "attention/output/LayerNorm"),
            (layer.output_layer_norm, "output.LayerNorm", "output/LayerNorm"),
        ]:
            rows.append((hf + hf_part + ".weight", g + g_part + "/gamma", norm.gamma, False))
            rows.append((hf + hf_part + ".bias", g + g_part + "/beta", norm.beta, False))
    head = model.mlm_head
    rows += [
        ("cls.predictions.transform.dense.weight", "cls/predictions/transform/dense/kernel",
         head.dense.kernel, True),
        ("cls.predictions.transform.dense.bias", "cls/predictions/transform/dense/bias", head.dense.bias, False),
        ("cls.predictions.transform.LayerNorm.weight", "cls/predictions/transform/LayerNorm/gamma",
         head.layer_norm.gamma, False),
        ("cls.predictions.transform.LayerNorm.bias", "cls/predictions/transform/LayerNorm/beta",
         head.layer_norm.beta, False),
        ("cls.predictions.bias", "cls/predictions/output_bias", head.output_bias, False),
    ]
    return rows


def _is_head(hf_name):
    return hf_name.startswith("cls.")


def assign_weights(model, weights, source, naming):
    """Copy `weights` ({name: array}, `naming` 'hf' or 'google') into the model.

    Backbone weights must all be present; missing MLM-head weights only warn (the head then
    keeps its random init). Returns True when the head was loaded.
    """
    missing_head = []
    for hf_name, g_name, variable, is_kernel in weight_table(model):
        name = hf_name if naming == "hf" else g_name
        value = weights.get(name)
        if value is None:
            if _is_head(hf_name):
                missing_head.append(name)
                continue
            raise FewShotError(f"{source}: weight '{name}' is missing; this is not a complete BERT checkpoint "
                               f"(point to the folder of a BERT / RoBERTa-wwm masked-LM)")
        value = np.asarray(value, dtype="float32")
        if is_kernel and naming == "hf":
            value = value.T
        if tuple(value.shape) != tuple(variable.shape):
            raise FewShotError(f"{source}: weight '{name}' has shape {tuple(value.shape)} but the config implies "
                               f"{tuple(variable.shape)}; the config file does not belong to these weights")
        variable.assign(value)
    if missing_head:
        warnings.warn(
            f"\n{'!' * 100}\n{source}: NO MASKED-LM HEAD WEIGHTS ({', '.join(missing_head[:3])}...). The MLM head "
            f"is RANDOM, so zero-shot scores are noise and p-tuning starts from a random verbalizer. "
            f"Use a checkpoint that ships its MLM head (e.g. hfl/chinese-roberta-wwm-ext, not -large).\n{'!' * 100}",
            MissingHeadWarning, stacklevel=3)
    return not missing_head


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
        if not isinstance(value, dict):
            raise FewShotError(f"{path}: expected a JSON object of settings; restore the config file that came "
                               f"with the checkpoint")
        return value
    except FileNotFoundError:
        raise FewShotError(f"{path}: not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FewShotError(f"{path}: not valid JSON ({e}); restore the config file that came with the checkpoint") \
            from None


# -- HuggingFace --------------------------------------------------------------------------------

def read_hf_weights(folder):
    """-> {hf_name without 'bert.' prefix: array} from model.safetensors or pytorch_model.bin."""
    st_path, bin_path = os.path.join(folder, HF_SAFETENSORS), os.path.join(folder, HF_BIN)
    if os.path.exists(st_path):
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
        try:
            raw = load_file(st_path)
        except (SafetensorError, OSError, ValueError) as e:
            raise FewShotError(f"{st_path}: cannot be read ({str(e).splitlines()[0]}); the file is truncated or "
                               f"corrupt, download it again") from None
        except Exception as e:  # bf16 and other dtypes numpy lacks: fall back to torch if present
            raw = _read_with_torch(st_path, e)
        source = st_path
    elif os.path.exists(bin_path):
        raw = _read_with_torch(bin_path, None)
        source = bin_path
    else:
        raise FewShotError(f"{folder}: has neither {HF_SAFETENSORS} nor {HF_BIN}; download the weights into it")
    weights = {}
    for name, value in raw.items():
        for prefix in ("bert.", "model."):
            if name.startswith(prefix):
                name = name[len(prefix):]
        name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        if name == "cls.predictions.decoder.bias" and "cls.predictions.bias" in raw:
            continue
        if name == "cls.predictions.decoder.bias":
            name = "cls.predictions.bias"
        weights[name] = value
    return weights, source


def _read_with_torch(path, first_error):
    try:
        import torch
    except ImportError:
        why = f" ({first_error})" if first_error else ""
        raise FewShotError(f"{path}: reading it needs PyTorch{why}; `pip install torch` or convert it to "
                           f"model.safetensors") from None
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file
            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise FewShotError(f"{path}: cannot be read ({str(e).splitlines()[0]}); the file is truncated or corrupt, "
                           f"download it again") from None
    return {k: v.float().numpy() for k, v in state.items() if hasattr(v, "float")}


def export_hf(model, tokenizer_vocab_path, folder):
    """Write config.json + model.safetensors (BertForMaskedLM names) + vocab.txt. Needs no TensorFlow."""
    import shutil

    from safetensors.numpy import save_file
    os.makedirs(folder, exist_ok=True)
    tensors = {}
    for hf_name, _, variable, is_kernel in weight_table(model):
        value = np.asarray(keras_to_numpy(variable), dtype="float32")
        tensors["bert." + hf_name if not hf_name.startswith("cls.") else hf_name] = np.ascontiguousarray(
            value.T if is_kernel else value)
    tensors["cls.predictions.decoder.bias"] = tensors["cls.predictions.bias"]
    save_file(tensors, os.path.join(folder, HF_SAFETENSORS), metadata={"format": "pt"})
    with open(os.path.join(folder, HF_CONFIG), "w", encoding="utf-8") as f:
        json.dump(model.bert_config(), f, indent=2)
    shutil.copyfile(tokenizer_vocab_path, os.path.join(folder, VOCAB))
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}, f, indent=2)


def keras_to_numpy(variable):
    import keras
    return keras.ops.convert_to_numpy(variable)


# -- Google / bert4keras ------------------------------------------------------------------------

def find_google_checkpoint(folder):
    """-> the checkpoint prefix (bert_model.ckpt or whatever the single *.index file is named)."""
    if os.path.exists(os.path.join(folder, GOOGLE_CKPT + ".index")):
        return os.path.join(folder, GOOGLE_CKPT)
    indexes = sorted(f for f in os.listdir(folder) if f.endswith(".ckpt.index"))
    if not indexes:
        raise FewShotError(f"{folder}: has {GOOGLE_CONFIG} but no bert_model.ckpt.index; copy the checkpoint "
                           f"files (bert_model.ckpt.index and .data-*) into it")
    return os.path.join(folder, indexes[0][: -len(".index")])


def read_google_weights(prefix):
    try:
        import tensorflow as tf
    except ImportError:
        raise FewShotError(f"{prefix}: reading a Google/TF checkpoint needs TensorFlow; `pip install tensorflow` "
                           f"or use the HF format (config.json + model.safetensors)") from None
    try:
        reader = tf.train.load_checkpoint(prefix)
        names = reader.get_variable_to_shape_map()
        return {name: reader.get_tensor(name) for name in names}
    except (tf.errors.OpError, ValueError) as e:
        raise FewShotError(f"{prefix}: cannot be read ({str(e).splitlines()[0][:200]}); the checkpoint is "
                           f"truncated or corrupt, copy it again") from None


def export_google(model, tokenizer_vocab_path, folder):
    """Write bert_config.json + bert_model.ckpt.* (TF1 names, as bert4keras reads) + vocab.txt."""
    import shutil

    import tensorflow as tf
    os.makedirs(folder, exist_ok=True)
    # read before entering the graph: eager-only `numpy()` of a Keras variable fails inside tf.Graph()
    values = {g_name: np.asarray(keras_to_numpy(variable), dtype="float32")
              for _, g_name, variable, _ in weight_table(model)}
    tf_vars = {}
    with tf.Graph().as_default():
        for g_name, value in values.items():
            tf_vars[g_name] = tf.Variable(value, name=g_name)
        # tf.compat.v1.train.Saver writes the TF1 names bert4keras looks up
        saver = tf.compat.v1.train.Saver(var_list=tf_vars)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, os.path.join(folder, GOOGLE_CKPT), write_meta_graph=False)
    config = {k: v for k, v in model.bert_config().items()
              if k not in ("architectures", "model_type", "pad_token_id", "tie_word_embeddings", "layer_norm_eps")}
    with open(os.path.join(folder, GOOGLE_CONFIG), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    shutil.copyfile(tokenizer_vocab_path, os.path.join(folder, VOCAB))
