"""Portable prompts: a trained P-tuning prompt as one small file.

The prompt encoder (BiLSTM/MLP over trainable rows) only ever produces one thing at inference:
the [prompt_length, hidden] matrix that replaces the prompt tokens' embeddings. Folded into that
matrix and saved with everything else a frozen MLM needs (pattern, verbalizer, prompt and label
token ids, maxlen, which MLM), a prompt is a few KB instead of a model.keras that repeats the
whole backbone:

    save_portable_prompt(model, "prompt.safetensors", model_ref="models/zh-bert-mini")
    model = load_portable_prompt("prompt.safetensors")           # PtuningModel, encoder="none"
    PromptClassifier.load("prompt.safetensors").predict(["这家酒店很好"])

The file is safetensors: one tensor `prompt_embeddings` and the JSON metadata (under the
`few_shot` key of the safetensors header metadata).
"""
import json
import os

import numpy as np

from few_shot.errors import FewShotError

FORMAT = "few_shot.portable_prompt/1"
TENSOR = "prompt_embeddings"


def fold_prompt(model):
    """Run the prompt encoder once -> float32 numpy [prompt_length, hidden]."""
    import keras
    if model.prompt_encoder is None:
        raise FewShotError("this model has no prompt encoder (zero-shot or full finetune); only P-tuning / "
                           "prompt-tuning runs have a portable prompt")
    return np.asarray(keras.ops.convert_to_numpy(model.prompt_embeddings(training=False)), dtype="float32")


def save_portable_prompt(model, path, model_ref=None):
    """Write the folded prompt and its metadata to `path` (a .safetensors file) -> path. Deep prompts
    (few_shot/deep.py) add their per-layer states (and a [CLS] head's weights)."""
    matrix = fold_prompt(model)
    meta = {**model_meta(model, model_ref), "trained_encoder": model.encoder, "init": model.init}
    tensors = {TENSOR: np.ascontiguousarray(matrix)}
    if hasattr(model, "portable_tensors"):
        tensors.update(model.portable_tensors())
        meta.update(model.portable_meta())
    return write_tensors(path, tensors, FORMAT, meta)


def model_meta(model, model_ref=None):
    """What a small file (portable prompt, LoRA adapters) needs besides its tensors to rebuild `model`
    on a frozen MLM: pattern, verbalizer, token ids, maxlen, which MLM."""
    if model.preprocessor is None:
        raise FewShotError("this model has no preprocessor (pattern, verbalizer, maxlen) to save with the prompt; "
                           "build it with build_model(method, mlm, preprocessor)")
    text = model.preprocessor.get_config()
    return {"pattern": text["pattern"], "verbalizer": text["verbalizer"],
            "prompt_token_ids": model.prompt_token_ids, "label_token_ids": model.label_token_ids,
            "maxlen": text["maxlen"], "model": None if model_ref is None else str(model_ref),
            "hidden_size": int(model.backbone.hidden_size), "vocab_size": int(model.backbone.vocab_size),
            "objective": model.objective, "source_token_ids": getattr(model, "source_token_ids", None)}


def write_tensors(path, tensors, fmt, meta):
    """numpy tensors + JSON metadata (under the `few_shot` key) -> a .safetensors file -> path."""
    from safetensors.numpy import save_file
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file(tensors, path, metadata={"format": fmt, "few_shot": json.dumps({"format": fmt, **meta},
                                                                             ensure_ascii=False)})
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # safetensors writes 0600 files; give it the usual permissions
    return path


def read_portable_prompt(path):
    """-> (matrix [prompt_length, hidden], metadata dict)."""
    tensors, meta = read_tensors(path, FORMAT, "prompt.safetensors written by a P-tuning run", TENSOR)
    return tensors[TENSOR], meta


def file_format(path):
    """The few_shot format named in a .safetensors header, or None."""
    from safetensors import safe_open
    try:
        with safe_open(path, framework="numpy") as f:
            return (f.metadata() or {}).get("format")
    except Exception:  # not safetensors: read_tensors reports it
        return None


def read_tensors(path, fmt, what, required=None):
    """A file of `write_tensors` in format `fmt` -> ({name: numpy}, metadata); FewShotError otherwise."""
    from safetensors import safe_open
    if not os.path.isfile(path):
        raise FewShotError(f"{path}: no such file; pass the {what}")
    try:
        with safe_open(path, framework="numpy") as f:
            header = f.metadata() or {}
            if header.get("format") != fmt or (required is not None and required not in f.keys()):
                raise FewShotError(f"{path}: not a few_shot {'portable prompt' if fmt == FORMAT else 'file of ' + fmt}"
                                   f" (no {fmt} metadata); pass the {what}")
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except FewShotError:
        raise
    except Exception as e:  # truncated or not safetensors at all
        raise FewShotError(f"{path}: cannot be read ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                           f"the file is truncated or not a {what.split()[0]}") from None
    return tensors, json.loads(header["few_shot"])


def load_portable_prompt(path, mlm=None):
    """Rebuild the trained model from a portable prompt: a PtuningModel with `encoder="none"` whose
    prompt rows are the folded matrix. `mlm`: a loaded PretrainedMLM (or BertMaskedLM) to attach
    the prompt to; default: load the MLM the file names."""
    model, _ = _load(path, mlm)
    return model


def _load(path, mlm):
    from few_shot.ptuning import PtuningModel

    tensors, meta = read_tensors(path, FORMAT, "prompt.safetensors written by a P-tuning run", TENSOR)
    matrix = tensors[TENSOR]
    backbone, preprocessor = frozen_mlm(path, meta, mlm)
    if matrix.shape != (len(meta["prompt_token_ids"]), backbone.hidden_size):
        raise FewShotError(f"{path}: the prompt matrix is {matrix.shape}, not [prompt tokens, hidden size "
                           f"{backbone.hidden_size}]; the file is damaged")
    common = dict(encoder="none", init="unused", objective=meta.get("objective", "label"), preprocessor=preprocessor,
                  source_token_ids=meta.get("source_token_ids"))
    if meta.get("deep"):
        from few_shot.deep import DeepPromptModel
        model = DeepPromptModel(backbone, meta["label_token_ids"], meta["prompt_token_ids"], head=meta["head"],
                                **common)
        model.set_portable_tensors(tensors)
    else:
        model = PtuningModel(backbone, meta["label_token_ids"], meta["prompt_token_ids"], **common)
    model.prompt_encoder.set_initial_embeddings(matrix)
    return model, None if preprocessor is None else preprocessor.tokenizer


def frozen_mlm(path, meta, mlm):
    """The frozen MLM a small file (`meta`) belongs on: `mlm` (a PretrainedMLM, BertMaskedLM or model
    folder), else the one the file names -> (backbone, PromptPreprocessor or None without a tokenizer)."""
    from few_shot.bert import BertMaskedLM
    from few_shot.loading import load_mlm
    from few_shot.preprocessor import PromptPreprocessor

    if mlm is None or isinstance(mlm, (str, os.PathLike)):
        ref = mlm if mlm is not None else meta.get("model")
        if mlm is None and ref is not None and not os.path.exists(ref):
            raise FewShotError(f"{path}: its MLM {ref} is not here; pass the same model with --model")
        mlm = load_mlm(ref)
    backbone, tokenizer = (mlm, None) if isinstance(mlm, BertMaskedLM) else (mlm.model, mlm.tokenizer)
    if (backbone.hidden_size, backbone.vocab_size) != (meta["hidden_size"], meta["vocab_size"]):
        raise FewShotError(f"{path}: the prompt was trained on an MLM with hidden size {meta['hidden_size']} and "
                           f"vocab {meta['vocab_size']}, this one has {backbone.hidden_size} and "
                           f"{backbone.vocab_size}; use the model the prompt names ({meta.get('model')})")
    preprocessor = None
    if tokenizer is not None:
        preprocessor = PromptPreprocessor(tokenizer, meta["pattern"], meta["verbalizer"], meta["maxlen"])
    return backbone, preprocessor
