"""What a model folder must hold, read without TensorFlow: the checkpoint layouts, and `check_model_folder`, the checks a run
makes before anything heavy loads (a missing or unreadable file is one line, not a traceback 10 s in)."""
import os

from few_shot import checkpoints as ckpt
from few_shot.errors import FewShotError, permission_denied
from few_shot.paths import DEFAULT_MODEL
PRESET_WEIGHTS = "model.weights.h5"
PRESET_VOCAB = os.path.join("assets", "tokenizer", "vocabulary.txt")
ACCEPTED = ("a Google/bert4keras folder (bert_config.json + bert_model.ckpt.* + vocab.txt), "
            "a HuggingFace folder (config.json + model.safetensors or pytorch_model.bin + vocab.txt), "
            "or a few_shot preset folder (config.json + model.weights.h5)")


def model_path(name_or_path):
    """--model / --init-from as given (None: the bundled model) -> a path, `~` expanded."""
    return DEFAULT_MODEL if name_or_path is None else os.path.expanduser(str(name_or_path))


def looks_like_hub_id(path):
    """'owner/name' that is not a local path: load_mlm tries the Hugging Face hub for it."""
    import re
    return (not path.startswith((".", "/", "~")) and path.count("/") == 1
            and re.fullmatch(r"[\w.-]+/[\w.-]+", path) is not None)


def detect_format(folder):
    files = set(os.listdir(folder))
    if ckpt.HF_CONFIG in files and PRESET_WEIGHTS in files:
        return "preset"
    if ckpt.GOOGLE_CONFIG in files:
        return "google"
    if ckpt.HF_CONFIG in files:
        return "hf"
    raise FewShotError(f"{folder}: no bert_config.json or config.json found; pass {ACCEPTED}")


def _readable(path, what):
    if not os.access(path, os.R_OK):
        raise permission_denied(path, what)


def check_model_folder(name_or_path, flag="--model"):
    """The folder exists, is a known layout, and its config, vocabulary and weights can be read. A hub
    id that is not a local folder passes (load_mlm fetches it or says why not)."""
    path = model_path(name_or_path)
    if not os.path.exists(path):
        if looks_like_hub_id(path):
            return
        raise FewShotError(f"{flag} {path}: folder not found; pass {ACCEPTED}, or a hub id such as "
                           f"hfl/chinese-roberta-wwm-ext")
    if not os.path.isdir(path):
        raise FewShotError(f"{flag} {path}: is a file; pass the folder that holds it ({ACCEPTED})")
    _readable(path, "folder")
    fmt = detect_format(path)
    config = ckpt.GOOGLE_CONFIG if fmt == "google" else ckpt.HF_CONFIG
    vocab = PRESET_VOCAB if fmt == "preset" else ckpt.VOCAB
    weights = {"preset": (PRESET_WEIGHTS,), "hf": (ckpt.HF_SAFETENSORS, ckpt.HF_BIN)}.get(fmt, ())
    for name, what in ((config, "config file"), (vocab, "vocabulary")):
        if not os.path.isfile(os.path.join(path, name)):
            raise FewShotError(f"{os.path.join(path, name)}: not found; {flag} needs {ACCEPTED}")
        _readable(os.path.join(path, name), what)
    present = [w for w in weights if os.path.isfile(os.path.join(path, w))]
    if weights and not present:
        raise FewShotError(f"{path}: has no weights ({' or '.join(weights)}); copy them into it")
    for name in present[:1]:
        _readable(os.path.join(path, name), "weights file")
    return path
