"""Shared fixtures for the few_shot test suite.

Paths
    repo_root, bundled_model_dir, bundled_vocab_path        always present (bundled in the repo)
    shared_model_dir, shared_hf_dir, shared_google_dir      ../shared/models/zh-bert-mini/...; tests
                                                            using them skip when the folder is absent
Data
    sentiment_texts(split) / sentiment_rows(split)          data/sentiment/sentiment.{split}.data
Models
    bundled_mlm, bundled_tokenizer                          the bundled model, loaded once per session
    tiny_vocab_path                                         first TINY_VOCAB_SIZE lines of the real vocab
    make_tiny_bert(...)                                     save a tiny random transformers BERT to a
                                                            fresh folder (see its docstring)
    hf_oracle(model_or_folder, token_ids, segment_ids)      transformers BertForMaskedLM logits (oracle)
    hf_mlm_loader(folder)                                   a transformers BertForMaskedLM to pass to hf_oracle

torch/transformers are imported lazily, only by the fixtures that need them.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED_MODEL_DIR = os.path.join(REPO_ROOT, "models", "zh-bert-mini")
SHARED_MODEL_DIR = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "models", "zh-bert-mini"))
SENTIMENT_DIR = os.path.join(REPO_ROOT, "data", "sentiment")

TINY_VOCAB_SIZE = 200
TINY_CONFIG = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                   max_position_embeddings=64, type_vocab_size=2)


def _skip_unless_dir(path):
    if not os.path.isdir(path):
        pytest.skip(f"{path} is absent (the shared model folder lives beside the repo as ../shared)")
    return path


# -- paths ---------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope="session")
def bundled_model_dir():
    return BUNDLED_MODEL_DIR


@pytest.fixture(scope="session")
def bundled_vocab_path():
    return os.path.join(BUNDLED_MODEL_DIR, "vocab.txt")


@pytest.fixture(scope="session")
def shared_model_dir():
    return _skip_unless_dir(SHARED_MODEL_DIR)


@pytest.fixture(scope="session")
def shared_hf_dir():
    return _skip_unless_dir(os.path.join(SHARED_MODEL_DIR, "hf"))


@pytest.fixture(scope="session")
def shared_google_dir():
    return _skip_unless_dir(os.path.join(SHARED_MODEL_DIR, "google"))


@pytest.fixture
def in_repo_root(monkeypatch):
    """Run the test with the repo root as working directory (for repo-relative paths)."""
    monkeypatch.chdir(REPO_ROOT)
    return REPO_ROOT


# -- data ----------------------------------------------------------------------------------------

def read_sentiment(split):
    """-> [(text, label)] from data/sentiment/sentiment.{split}.data (`text<TAB>label`)."""
    rows = []
    with open(os.path.join(SENTIMENT_DIR, f"sentiment.{split}.data"), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            text, label = line.rsplit("\t", 1)
            rows.append((text, label))
    return rows


@pytest.fixture(scope="session")
def sentiment_rows():
    cache = {}

    def get(split):
        if split not in cache:
            cache[split] = read_sentiment(split)
        return cache[split]
    return get


@pytest.fixture(scope="session")
def sentiment_texts(sentiment_rows):
    return lambda split: [text for text, _ in sentiment_rows(split)]


# -- models --------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def bundled_mlm():
    """The bundled zh-bert-mini, loaded once. Do not mutate it in tests."""
    from few_shot import load_mlm
    return load_mlm(BUNDLED_MODEL_DIR)


@pytest.fixture(scope="session")
def bundled_tokenizer(bundled_vocab_path):
    from few_shot import Tokenizer
    return Tokenizer(bundled_vocab_path)


@pytest.fixture(scope="session")
def tiny_vocab_path(tmp_path_factory, bundled_vocab_path):
    """The first TINY_VOCAB_SIZE lines of the real vocab ([PAD]=0, [unused*], [UNK]=100, [CLS]=101,
    [SEP]=102, [MASK]=103, then punctuation/digits)."""
    with open(bundled_vocab_path, encoding="utf-8") as f:
        lines = [next(f) for _ in range(TINY_VOCAB_SIZE)]
    path = tmp_path_factory.mktemp("tiny_vocab") / "vocab.txt"
    path.write_text("".join(lines), encoding="utf-8")
    return str(path)


def build_tiny_bert(folder, vocab_path, arch="pretraining", weights="safetensors", seed=0, **config):
    """Save a tiny random transformers BERT into `folder` (created) with vocab.txt; -> folder.

    arch: "pretraining" (BertForPreTraining), "masked_lm" (BertForMaskedLM) or "model" (BertModel:
    backbone only, no cls.predictions). weights: "safetensors" (save_pretrained) or "bin"
    (pytorch_model.bin via torch.save of the state dict, as safe_serialization=False used to write).
    Biases and LayerNorm parameters are randomised too (transformers initialises them to 0/1), so a
    mis-mapped bias or gamma cannot hide. `config` overrides TINY_CONFIG entries.
    """
    import shutil

    import torch
    import transformers

    classes = {"pretraining": transformers.BertForPreTraining, "masked_lm": transformers.BertForMaskedLM,
               "model": transformers.BertModel}
    with open(vocab_path, encoding="utf-8") as f:
        vocab_size = sum(1 for _ in f)
    cfg = transformers.BertConfig(vocab_size=vocab_size, **{**TINY_CONFIG, **config})
    torch.manual_seed(seed)
    model = classes[arch](cfg).eval()
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    os.makedirs(folder, exist_ok=True)
    if weights == "safetensors":
        model.save_pretrained(folder)
    elif weights == "bin":
        model.config.save_pretrained(folder)
        torch.save(model.state_dict(), os.path.join(folder, "pytorch_model.bin"))
    else:
        raise ValueError(f"weights={weights!r}")
    shutil.copyfile(vocab_path, os.path.join(folder, "vocab.txt"))
    return str(folder)


@pytest.fixture
def make_tiny_bert(tmp_path, tiny_vocab_path):
    """Factory: make_tiny_bert(arch="pretraining", weights="safetensors", seed=0, name=None, **config)
    -> path of a fresh folder under this test's tmp_path (see build_tiny_bert)."""
    counter = iter(range(1_000_000))

    def make(arch="pretraining", weights="safetensors", seed=0, name=None, **config):
        folder = tmp_path / (name or f"tiny_{arch}_{weights}_{next(counter)}")
        return build_tiny_bert(str(folder), tiny_vocab_path, arch=arch, weights=weights, seed=seed, **config)
    return make


def load_hf_mlm(folder):
    """transformers.BertForMaskedLM.from_pretrained(folder) in eval mode, load report silenced."""
    import transformers
    transformers.logging.set_verbosity_error()
    return transformers.BertForMaskedLM.from_pretrained(folder).eval()


def hf_mlm_logits(model_or_folder, token_ids, segment_ids=None, pad_id=0):
    """Oracle: transformers BertForMaskedLM logits -> numpy [B, T, V].

    `model_or_folder`: a loaded BertForMaskedLM or a folder to load it from; `token_ids`: a list of id
    lists (right-padded here with `pad_id`) or an int array [B, T]; padding is masked in attention.
    """
    import numpy as np
    import torch

    from few_shot.batching import pad_batch
    model = load_hf_mlm(model_or_folder) if isinstance(model_or_folder, (str, os.PathLike)) else model_or_folder
    ids = pad_batch(token_ids, pad_id) if not hasattr(token_ids, "shape") else np.asarray(token_ids)
    segs = np.zeros_like(ids) if segment_ids is None else pad_batch(segment_ids, 0, ids.shape[1])
    with torch.no_grad():
        out = model(input_ids=torch.as_tensor(ids, dtype=torch.long),
                    token_type_ids=torch.as_tensor(segs, dtype=torch.long),
                    attention_mask=torch.as_tensor(ids != pad_id, dtype=torch.long))
    return out.logits.numpy()


@pytest.fixture(scope="session")
def hf_mlm_loader():
    """The load_hf_mlm function (load a transformers BertForMaskedLM once, reuse it with hf_oracle)."""
    return load_hf_mlm


@pytest.fixture(scope="session")
def hf_oracle():
    """The hf_mlm_logits function, as a fixture for test files that prefer not to import conftest."""
    return hf_mlm_logits


# -- tiny models for unit tests (import these: `from conftest import tiny_bert, ...`) -----------

TINY_CHARS = list("很不好差酒店服务满意这家的是了我们一个房间还可以太吵。新闻条体育财经娱乐")
TINY_VOCAB = (["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
              + TINY_CHARS + ["体育", "财经"])
TINY_ROWS = [("这家酒店很好", "1"), ("服务太差了", "0"), ("房间还可以", "1"), ("太吵了", "0"),
             ("我们满意", "1"), ("不好", "0"), ("这个酒店好", "1"), ("服务差", "0")]
SENTIMENT = {"0": "不", "1": "很"}


def tiny_tokenizer():
    """A Tokenizer over TINY_VOCAB (Chinese BERT layout: [PAD], [unused1..99], [UNK], [CLS], [SEP], [MASK])."""
    from few_shot import Tokenizer
    return Tokenizer({t: i for i, t in enumerate(TINY_VOCAB)})


def tiny_bert(seed=0, dropout=0.0, **shape):
    """A random 2-layer, hidden-16 BertMaskedLM over TINY_VOCAB (dropout off unless asked)."""
    import keras

    from few_shot import BertMaskedLM
    keras.utils.set_random_seed(seed)
    config = dict(hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32, max_position=64, **shape)
    return BertMaskedLM(vocab_size=len(TINY_VOCAB), dropout=dropout, **config)


def tiny_preprocessor(pattern=None, verbalizer=None, maxlen=32):
    from few_shot.pattern import PTUNING_PATTERN
    from few_shot.preprocessor import PromptPreprocessor
    return PromptPreprocessor(tiny_tokenizer(), pattern or PTUNING_PATTERN, verbalizer or SENTIMENT, maxlen)


def tiny_model(method="ptuning", pattern=None, verbalizer=None, rows=TINY_ROWS, maxlen=32, seed=0, **config):
    """build_model(method) on tiny_bert(seed) -> (model, EncodedSet of `rows`, preprocessor)."""
    from few_shot.config import RunConfig
    from few_shot.builder import build_model
    preprocessor = tiny_preprocessor(pattern, verbalizer, maxlen)
    model = build_model(method, tiny_bert(seed), preprocessor, RunConfig(method=method, seed=seed, **config))
    return model, preprocessor.encode(rows), preprocessor


class TinyMLM:
    """Stands in for a PretrainedMLM: .model, .tokenizer, .path."""

    def __init__(self, model, tokenizer, path="tiny"):
        self.model, self.tokenizer, self.path = model, tokenizer, path
