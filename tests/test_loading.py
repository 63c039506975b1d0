"""load_mlm / save_preset: every checkpoint layout gives transformers' logits; bad input gives a
one-line FewShotError that names the offending file or folder."""
import json
import os
import shutil

import numpy as np
import pytest

from few_shot import FewShotError, load_mlm
from few_shot.checkpoints import MissingHeadWarning
from few_shot.paths import DEFAULT_MODEL

pytest.importorskip("torch")
pytest.importorskip("transformers")

SHARED_REL = os.path.join("..", "shared", "models", "zh-bert-mini")
N_SENTENCES, CHUNK, MAXLEN = 200, 20, 128


def assert_one_line_naming(error, *paths):
    message = str(error.value)
    assert message and "\n" not in message, f"message is not one line: {message!r}"
    for path in paths:
        assert str(path) in message, f"{path} not named in: {message}"


def max_abs_diff_non_pad(a, b, token_ids):
    """max |a - b| over the real (non-pad) positions of right-padded sequences."""
    assert a.shape[:2] == b.shape[:2] == (len(token_ids), max(len(t) for t in token_ids))
    lengths = np.array([len(t) for t in token_ids])
    mask = np.arange(a.shape[1])[None, :] < lengths[:, None]
    return float(np.abs(a - b)[mask].max())


def random_batch(rng, vocab_size, lengths, tokenizer):
    """Id lists [CLS] w... [SEP] w... [SEP] with random ordinary tokens, and matching segment ids."""
    token_ids, segment_ids = [], []
    for n in lengths:
        words = rng.integers(104, vocab_size, size=n - 3).tolist()
        cut = (n - 3) // 2
        token_ids.append([tokenizer.cls_id] + words[:cut] + [tokenizer.sep_id] + words[cut:] + [tokenizer.sep_id])
        segment_ids.append([0] * (cut + 2) + [1] * (n - 2 - cut))
    return token_ids, segment_ids


# -- the shared zh-bert-mini in both formats vs transformers --------------------------------------

@pytest.mark.slow
def test_shared_hf_and_google_match_transformers(in_repo_root, shared_hf_dir, shared_google_dir, sentiment_texts,
                                                 hf_oracle, hf_mlm_loader):
    hf = load_mlm(os.path.join(SHARED_REL, "hf"))
    google = load_mlm(os.path.join(SHARED_REL, "google"))
    assert (hf.format, google.format) == ("hf", "google")
    assert hf.head_loaded and google.head_loaded
    reference = hf_mlm_loader(shared_hf_dir)
    tok = hf.tokenizer
    # sorted by length so each chunk pads to its own longest sentence (still padded, less wasted work)
    ids = sorted((tok.encode(text, maxlen=MAXLEN)[0] for text in sentiment_texts("test")[:N_SENTENCES]), key=len)
    worst_hf = worst_google = worst_between = 0.0
    padded_chunks = 0
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        padded_chunks += len({len(t) for t in chunk}) > 1
        want = hf_oracle(reference, chunk)
        got_hf, got_google = hf.predict_logits(chunk), google.predict_logits(chunk)
        worst_hf = max(worst_hf, max_abs_diff_non_pad(got_hf, want, chunk))
        worst_google = max(worst_google, max_abs_diff_non_pad(got_google, want, chunk))
        worst_between = max(worst_between, max_abs_diff_non_pad(got_hf, got_google, chunk))
    assert padded_chunks >= CHUNK // 4, "the comparison should exercise padding"
    assert worst_hf < 1e-3, f"hf load vs transformers: max |Δ| {worst_hf}"
    assert worst_google < 1e-3, f"google load vs transformers: max |Δ| {worst_google}"
    assert worst_between < 1e-3, f"hf vs google load: max |Δ| {worst_between}"


# -- the bundled model --------------------------------------------------------------------------

def test_done_check_bundled_model_by_relative_path(in_repo_root):
    from few_shot import Tokenizer

    tok = Tokenizer("models/zh-bert-mini/vocab.txt")
    mlm = load_mlm("models/zh-bert-mini")
    assert mlm.predict_logits([tok.encode("这家酒店很好")[0]]).shape == (1, 8, 21128)
    assert mlm.format == "hf" and mlm.head_loaded


def test_load_mlm_without_argument_loads_the_bundled_model(bundled_mlm, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # must not depend on the working directory
    mlm = load_mlm()
    assert os.path.samefile(mlm.path, DEFAULT_MODEL)
    assert os.path.samefile(DEFAULT_MODEL, os.path.join(os.path.dirname(__file__), "..", "models", "zh-bert-mini"))
    # the same weights, bit for bit; logits only to float tolerance: after tests/test_ptuning.py has run in the
    # same process, TF's CPU kernels summed in another order (max |d| 9.5e-6 observed)
    assert len(mlm.model.weights) == len(bundled_mlm.model.weights)
    for got, want in zip(mlm.model.weights, bundled_mlm.model.weights):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=got.path)
    ids = [mlm.tokenizer.encode("这家酒店很好")[0], mlm.tokenizer.encode("[MASK]满意。不错")[0]]
    np.testing.assert_allclose(mlm.predict_logits(ids), bundled_mlm.predict_logits(ids), rtol=0, atol=1e-5)


def test_bundled_model_matches_transformers(bundled_mlm, bundled_model_dir, hf_oracle):
    tok = bundled_mlm.tokenizer
    ids = [tok.encode("这家酒店很好")[0], tok.encode("[MASK]满意。房间很小，服务一般", "还行")[0]]
    segments = [tok.encode("这家酒店很好")[1], tok.encode("[MASK]满意。房间很小，服务一般", "还行")[1]]
    got = bundled_mlm.predict_logits(ids, segments)
    want = hf_oracle(bundled_model_dir, ids, segments)
    assert max_abs_diff_non_pad(got, want, ids) < 1e-3


# -- tiny random transformers checkpoints round-trip ----------------------------------------------

@pytest.mark.parametrize("arch,weights", [("pretraining", "safetensors"), ("pretraining", "bin"),
                                          ("masked_lm", "safetensors"), ("masked_lm", "bin")])
def test_tiny_transformers_checkpoint_round_trips(make_tiny_bert, hf_oracle, arch, weights):
    folder = make_tiny_bert(arch=arch, weights=weights, seed=1)
    expected_file = "model.safetensors" if weights == "safetensors" else "pytorch_model.bin"
    assert expected_file in os.listdir(folder)
    mlm = load_mlm(folder)
    assert mlm.format == "hf" and mlm.head_loaded
    token_ids, segment_ids = random_batch(np.random.default_rng(0), mlm.model.vocab_size, [5, 17, 40, 9],
                                          mlm.tokenizer)
    got = mlm.predict_logits(token_ids, segment_ids)
    want = hf_oracle(folder, token_ids, segment_ids)
    assert got.shape == want.shape == (4, 40, 200)
    assert max_abs_diff_non_pad(got, want, token_ids) < 1e-4


def test_backbone_only_checkpoint_warns_and_has_no_head(make_tiny_bert):
    import torch
    import transformers

    folder = make_tiny_bert(arch="model", seed=2)
    with pytest.warns(MissingHeadWarning):
        mlm = load_mlm(folder)
    assert mlm.head_loaded is False
    # the backbone itself is loaded exactly
    token_ids, segment_ids = random_batch(np.random.default_rng(1), 200, [12, 7], mlm.tokenizer)
    from few_shot.batching import pad_batch
    ids, segs = pad_batch(token_ids), pad_batch(segment_ids)
    got = np.asarray(mlm.model.encode(ids, segs))
    backbone = transformers.BertModel.from_pretrained(folder).eval()
    with torch.no_grad():
        want = backbone(input_ids=torch.as_tensor(ids, dtype=torch.long),
                        token_type_ids=torch.as_tensor(segs, dtype=torch.long),
                        attention_mask=torch.as_tensor(ids != 0, dtype=torch.long)).last_hidden_state.numpy()
    assert max_abs_diff_non_pad(got, want, token_ids) < 1e-4


# -- presets ------------------------------------------------------------------------------------
def _build(mlm):
    return mlm  # the model is built on load: save_preset works before any call


def test_save_preset_right_after_load(make_tiny_bert, tmp_path):
    mlm = load_mlm(make_tiny_bert())
    mlm.save_preset(str(tmp_path / "preset"))
    assert load_mlm(str(tmp_path / "preset")).format == "preset"


def test_save_preset_round_trip_is_identical(bundled_model_dir, tmp_path):
    source = _build(load_mlm(bundled_model_dir))
    folder = tmp_path / "preset"
    source.save_preset(str(folder))
    assert sorted(os.listdir(folder)) == ["assets", "config.json", "metadata.json", "model.weights.h5"]
    loaded = load_mlm(str(folder))
    assert loaded.format == "preset" and loaded.head_loaded
    for a, b in zip(source.model.weights, loaded.model.weights, strict=True):
        assert a.path == b.path
        np.testing.assert_array_equal(np.asarray(a.numpy()), np.asarray(b.numpy()), err_msg=a.path)
    assert loaded.tokenizer.token_dict == source.tokenizer.token_dict
    tok = source.tokenizer
    pairs = [tok.encode("这家酒店很好"), tok.encode("[MASK]满意。房间很小", "服务一般")]
    ids, segments = [p[0] for p in pairs], [p[1] for p in pairs]
    fresh = load_mlm(bundled_model_dir)  # same call history as `loaded`, so the same compiled graph
    np.testing.assert_array_equal(loaded.predict_logits(ids, segments), fresh.predict_logits(ids, segments))
    # against the (differently traced) source model, equal up to float32 kernel-choice noise
    np.testing.assert_allclose(loaded.predict_logits(ids, segments), source.predict_logits(ids, segments),
                               rtol=0, atol=1e-5)


def test_save_preset_keeps_head_loaded_false(make_tiny_bert, tmp_path):
    with pytest.warns(MissingHeadWarning):
        mlm = _build(load_mlm(make_tiny_bert(arch="model")))
    mlm.save_preset(str(tmp_path / "preset"))
    assert load_mlm(str(tmp_path / "preset")).head_loaded is False


def test_save_preset_refuses_non_empty_folder(make_tiny_bert, tmp_path):
    mlm = _build(load_mlm(make_tiny_bert()))
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(FewShotError) as info:
        mlm.save_preset(str(folder))
    assert_one_line_naming(info, folder)
    assert os.listdir(folder) == ["notes.txt"]
    mlm.save_preset(str(folder), overwrite=True)
    assert load_mlm(str(folder)).format == "preset"


# -- bad input: one-line FewShotError naming the culprit ------------------------------------------

def test_missing_folder(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(FewShotError) as info:
        load_mlm(str(missing))
    assert_one_line_naming(info, missing)


def test_missing_relative_folder(in_repo_root):
    with pytest.raises(FewShotError) as info:
        load_mlm("./models/no-such-model")
    assert_one_line_naming(info, "./models/no-such-model")


def test_vocab_size_differs_from_vocab_lines(make_tiny_bert):
    folder = make_tiny_bert()
    with open(os.path.join(folder, "vocab.txt"), "a", encoding="utf-8") as f:
        f.write("extra-token\n")
    with pytest.raises(FewShotError) as info:
        load_mlm(folder)
    assert_one_line_naming(info, folder)
    assert "vocab" in str(info.value)


def test_truncated_safetensors(make_tiny_bert):
    folder = make_tiny_bert()
    path = os.path.join(folder, "model.safetensors")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    with pytest.raises(FewShotError) as info:
        load_mlm(folder)
    assert_one_line_naming(info, path)


def test_truncated_copy_of_bundled_safetensors(bundled_model_dir, tmp_path):
    folder = tmp_path / "cut"
    folder.mkdir()
    for name in ("config.json", "vocab.txt"):
        shutil.copyfile(os.path.join(bundled_model_dir, name), folder / name)
    with open(os.path.join(bundled_model_dir, "model.safetensors"), "rb") as f:
        data = f.read()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(FewShotError) as info:
        load_mlm(str(folder))
    assert_one_line_naming(info, folder / "model.safetensors")


def test_truncated_pytorch_bin(make_tiny_bert):
    folder = make_tiny_bert(weights="bin")
    path = os.path.join(folder, "pytorch_model.bin")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    with pytest.raises(FewShotError) as info:
        load_mlm(folder)
    assert_one_line_naming(info, path)


def test_unknown_hub_id_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time
    with pytest.raises(FewShotError) as info:
        load_mlm("nobody-xyz/no-such-model")
    assert_one_line_naming(info, "nobody-xyz/no-such-model")


@pytest.mark.parametrize("encoding", ["latin-1", "gbk"])
def test_non_utf8_vocab(make_tiny_bert, encoding):
    folder = make_tiny_bert()
    path = os.path.join(folder, "vocab.txt")
    with open(path, encoding="utf-8") as f:
        tokens = f.read().splitlines()
    tokens[150] = "café" if encoding == "latin-1" else "很好"  # same line count, one non-UTF-8 line
    with open(path, "wb") as f:
        f.write("\n".join(t if i == 150 else t.encode("ascii", "replace").decode()
                          for i, t in enumerate(tokens)).encode(encoding) + b"\n")
    with pytest.raises(FewShotError) as info:
        load_mlm(folder)
    assert_one_line_naming(info, path)


def test_folder_without_config(make_tiny_bert):
    folder = make_tiny_bert()
    os.remove(os.path.join(folder, "config.json"))
    with pytest.raises(FewShotError) as info:
        load_mlm(folder)
    assert_one_line_naming(info, folder)


def test_empty_folder(tmp_path):
    with pytest.raises(FewShotError) as info:
        load_mlm(str(tmp_path))
    assert_one_line_naming(info, tmp_path)


def test_folder_without_weights(make_tiny_bert):
    folder = make_tiny_bert()
    os.remove(os.path.join(folder, "model.safetensors"))
    with pytest.raises(FewShotError) as info:
        load_mlm(folder)
    assert_one_line_naming(info, folder)


def test_config_weights_shape_mismatch(make_tiny_bert):
    folder = make_tiny_bert()
    config_path = os.path.join(folder, "config.json")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    config["hidden_size"] = 64
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(config, f)
    with pytest.raises(FewShotError) as info:
        load_mlm(folder)
    assert_one_line_naming(info, folder)
    assert "shape" in str(info.value)


def test_file_instead_of_folder(bundled_model_dir):
    path = os.path.join(bundled_model_dir, "config.json")
    with pytest.raises(FewShotError) as info:
        load_mlm(path)
    assert_one_line_naming(info, path)


def _edit_config(folder, **changes):
    config_path = os.path.join(folder, "config.json")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    for key, value in changes.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(config, f)
    return config_path


@pytest.mark.parametrize("changes", [{"hidden_act": "relu"}, {"hidden_size": None}, {"num_attention_heads": 3}],
                         ids=["unsupported_act", "missing_key", "heads_do_not_divide_hidden"])
def test_invalid_config_values(make_tiny_bert, changes):
    folder = make_tiny_bert()
    config_path = _edit_config(folder, **changes)
    with pytest.raises(FewShotError) as info:
        load_mlm(folder)
    assert_one_line_naming(info, config_path)


def test_config_not_an_object(make_tiny_bert):
    folder = make_tiny_bert()
    config_path = os.path.join(folder, "config.json")
    with open(config_path, "w", encoding="utf-8") as f:
        f.write("[1, 2]")
    with pytest.raises(FewShotError) as info:
        load_mlm(folder)
    assert_one_line_naming(info, config_path)


def test_length_sorted_batches_groups_rows_of_similar_length():
    from few_shot.batching import length_sorted_batches, pad_batch
    lengths = [5, 1, 3, 1, 4]
    batches = length_sorted_batches(lengths, 2)
    # shortest first, ties in row order, the last batch holds the remainder
    assert [b.tolist() for b in batches] == [[1, 3], [2, 4], [0]]
    rows = [[7] * n for n in lengths]
    assert [pad_batch([rows[i] for i in b]).shape[1] for b in batches] == [1, 4, 5]
