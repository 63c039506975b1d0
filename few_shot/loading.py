"""`load_mlm(name_or_path)`: one entry point for every checkpoint layout users have."""
import json
import os
import shutil

import keras
import numpy as np

from few_shot import checkpoints as ckpt
from few_shot.backend import inference_function
from few_shot.batching import pad_batch
from few_shot.bert import BertMaskedLM
from few_shot.errors import FewShotError
from few_shot.tokenizer import Tokenizer

from few_shot.model_folder import (ACCEPTED, PRESET_VOCAB, PRESET_WEIGHTS, detect_format,
                                   looks_like_hub_id, model_path)


class PretrainedMLM:
    """A loaded masked-LM: `.tokenizer`, `.model` (a `BertMaskedLM`), where it came from."""

    def __init__(self, model, tokenizer, path, fmt, head_loaded=True):
        self.model = model
        self.tokenizer = tokenizer
        self.path = path
        self.format = fmt
        self.head_loaded = head_loaded
        self._logits_fn = None

    def __repr__(self):
        m = self.model
        return (f"PretrainedMLM({self.path!r}, format={self.format}, layers={m.num_layers}, "
                f"hidden={m.hidden_size}, vocab={m.vocab_size}, head_loaded={self.head_loaded})")

    def predict_logits(self, token_ids, segment_ids=None, batch_size=32):
        """Full-vocabulary MLM logits, numpy [batch, longest, vocab]; padding is masked in attention
        (its rows are computed but meaningless)."""
        if self._logits_fn is None:
            self._logits_fn = inference_function(lambda t, s: self.model({"token_ids": t, "segment_ids": s}))
        length = max(len(s) for s in token_ids)
        out = []
        for start in range(0, len(token_ids), batch_size):
            t = pad_batch(token_ids[start:start + batch_size], self.tokenizer.pad_id, length)
            s = (np.zeros_like(t) if segment_ids is None
                 else pad_batch(segment_ids[start:start + batch_size], 0, length))
            out.append(keras.ops.convert_to_numpy(self._logits_fn(t, s)))
        return np.concatenate(out, axis=0)

    def save_preset(self, folder, overwrite=False):
        """Save as a keras-hub-style preset folder: config.json, model.weights.h5, metadata.json,
        assets/tokenizer/vocabulary.txt. `load_mlm(folder)` reads it back."""
        if os.path.isdir(folder) and os.listdir(folder) and not overwrite:
            raise FewShotError(f"{folder}: exists and is not empty; choose a new folder or pass overwrite=True")
        os.makedirs(os.path.join(folder, os.path.dirname(PRESET_VOCAB)), exist_ok=True)
        with open(os.path.join(folder, ckpt.HF_CONFIG), "w", encoding="utf-8") as f:
            json.dump(keras.saving.serialize_keras_object(self.model), f, indent=2)
        self.model.save_weights(os.path.join(folder, PRESET_WEIGHTS))
        shutil.copyfile(self.tokenizer.vocab_path, os.path.join(folder, PRESET_VOCAB))
        with open(os.path.join(folder, "metadata.json"), "w", encoding="utf-8") as f:
            json.dump({"keras_version": keras.__version__, "parameter_count": self.model.count_params(),
                       "head_loaded": self.head_loaded, "source": str(self.path)}, f, indent=2)


def _check_vocab(config, tokenizer, config_path, vocab_path):
    if config["vocab_size"] != tokenizer.vocab_size:
        raise FewShotError(f"{config_path}: vocab_size={config['vocab_size']} but {vocab_path} has "
                           f"{tokenizer.vocab_size} tokens; use the vocab.txt that came with this checkpoint")


REQUIRED_CONFIG = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


def _model_from_config(config, config_path):
    """BertMaskedLM for a checkpoint config, or a one-line error naming the file and the bad value."""
    missing = [key for key in REQUIRED_CONFIG if key not in config]
    if missing:
        raise FewShotError(f"{config_path}: missing {', '.join(missing)}; restore the config file that came "
                           f"with the checkpoint")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise FewShotError(f"{config_path}: hidden_size {config['hidden_size']} is not divisible by "
                           f"num_attention_heads {config['num_attention_heads']}; fix the config")
    try:
        return BertMaskedLM.from_bert_config(config)
    except (ValueError, TypeError) as e:
        raise FewShotError(f"{config_path}: {e}") from None


def _load_hf(folder):
    config_path, vocab_path = os.path.join(folder, ckpt.HF_CONFIG), os.path.join(folder, ckpt.VOCAB)
    config = ckpt.read_json(config_path)
    tokenizer = Tokenizer(vocab_path)
    _check_vocab(config, tokenizer, config_path, vocab_path)
    weights, source = ckpt.read_hf_weights(folder)
    model = _model_from_config(config, config_path)
    head = ckpt.assign_weights(model, weights, source, "hf")
    return PretrainedMLM(model, tokenizer, folder, "hf", head)


def _load_google(folder):
    config_path, vocab_path = os.path.join(folder, ckpt.GOOGLE_CONFIG), os.path.join(folder, ckpt.VOCAB)
    config = ckpt.read_json(config_path)
    tokenizer = Tokenizer(vocab_path)
    _check_vocab(config, tokenizer, config_path, vocab_path)
    prefix = ckpt.find_google_checkpoint(folder)
    weights = ckpt.read_google_weights(prefix)
    model = _model_from_config(config, config_path)
    head = ckpt.assign_weights(model, weights, prefix, "google")
    return PretrainedMLM(model, tokenizer, folder, "google", head)


def _load_preset(folder):
    config_path = os.path.join(folder, ckpt.HF_CONFIG)
    try:
        model = keras.saving.deserialize_keras_object(ckpt.read_json(config_path))
    except (TypeError, ValueError) as e:
        raise FewShotError(f"{config_path}: not a few_shot preset config ({e}); save presets with "
                           f"PretrainedMLM.save_preset") from None
    tokenizer = Tokenizer(os.path.join(folder, PRESET_VOCAB))
    _check_vocab(model.get_config(), tokenizer, config_path, os.path.join(folder, PRESET_VOCAB))
    try:
        model.load_weights(os.path.join(folder, PRESET_WEIGHTS))
    except (OSError, ValueError) as e:
        raise FewShotError(f"{os.path.join(folder, PRESET_WEIGHTS)}: cannot be read ({str(e).splitlines()[0]}); "
                           f"save the preset again") from None
    meta_path = os.path.join(folder, "metadata.json")
    head = ckpt.read_json(meta_path).get("head_loaded", True) if os.path.exists(meta_path) else True
    return PretrainedMLM(model, tokenizer, folder, "preset", head)


def _download_from_hub(repo_id):
    try:
        from huggingface_hub import snapshot_download
        return snapshot_download(repo_id, allow_patterns=["config.json", "vocab.txt", "model.safetensors",
                                                          "pytorch_model.bin", "tokenizer_config.json"])
    except Exception as e:  # offline, unknown repo, no huggingface_hub: all mean "give me a folder"
        reason = type(e).__name__
        raise FewShotError(f"'{repo_id}' is not a local folder and could not be fetched from the Hugging Face hub "
                           f"({reason}); pass {ACCEPTED}") from None


def load_mlm(name_or_path=None):
    """Load a BERT masked-LM from a local folder (Google, HF or preset layout) or a hub id.

    With no argument, the small model bundled in `models/zh-bert-mini` is loaded.
    """
    path = model_path(name_or_path)
    if not os.path.exists(path):
        if not looks_like_hub_id(path):
            raise FewShotError(f"{path}: folder not found; pass {ACCEPTED}, or a hub id such as "
                               f"hfl/chinese-roberta-wwm-ext")
        path = _download_from_hub(path)
    if not os.path.isdir(path):
        raise FewShotError(f"{path}: is a file; pass the folder that holds it ({ACCEPTED})")
    loader = {"preset": _load_preset, "google": _load_google, "hf": _load_hf}[detect_format(path)]
    return loader(path)
