"""The task pipeline: patterns over named fields with one truncation rule, the preprocessor, RunConfig
checks, the one builder, the one gather and label-word scorer."""
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import REPO_ROOT, TINY_ROWS, tiny_bert, tiny_model, tiny_preprocessor, tiny_tokenizer
from few_shot.bert import gather_positions
from few_shot.config import RunConfig
from few_shot.methods import methods
from few_shot.errors import FewShotError
from few_shot.builder import build_model
from few_shot.pattern import Pattern, truncated_lengths
from few_shot.preprocessor import PromptPreprocessor
from few_shot.ptuning import count_params

PAIR = "[u1][u2]{sentence1}[SEP][MASK][u3]{sentence2}"


def test_pair_pattern_keeps_both_texts_all_slots_and_segments_when_tight():
    tok = tiny_tokenizer()
    pattern = Pattern(PAIR)
    assert pattern.fields == ["sentence1", "sentence2"]
    long_a, short_b = "这家酒店很好" * 5, "服务差"
    row = pattern.encode(tok, {"sentence1": long_a, "sentence2": short_b}, maxlen=16)
    ids = row.token_ids
    assert len(ids) == 16
    # [CLS] u1 u2 | a... | [SEP] [MASK] u3 | b b b | [SEP]: fixed parts 7 tokens, budget 9
    assert ids[:3] == [tok.cls_id, 1, 2] and ids[-1] == tok.sep_id
    assert [tok.id_dict[i] for i in ids[-4:-1]] == list(short_b)  # the short field survives whole
    assert len(row.text_positions) == 9 and all(ids[p] != tok.mask_id for p in row.text_positions)
    assert ids[row.mask_positions[0]] == tok.mask_id and 3 in ids  # the [MASK] and the third slot stay
    sep = ids.index(tok.sep_id)
    assert row.segment_ids == [0] * (sep + 1) + [1] * (16 - sep - 1)
    both_long = pattern.encode(tok, {"sentence1": long_a, "sentence2": long_a}, maxlen=16)
    counts = [len([p for p in both_long.text_positions if both_long.segment_ids[p] == s]) for s in (0, 1)]
    assert sorted(counts) == [4, 5]  # cut to equal shares (the later field loses the odd token)


def test_truncation_cuts_the_longest_field_first():
    assert truncated_lengths({"a": 10, "b": 3}, 8) == {"a": 5, "b": 3}
    assert truncated_lengths({"a": 10, "b": 10}, 8) == {"a": 4, "b": 4}
    assert truncated_lengths({"a": 10, "b": 9}, 12) == {"a": 6, "b": 6}
    assert truncated_lengths({"a": 3, "b": 4}, 10) == {"a": 3, "b": 4}  # fits: untouched
    assert truncated_lengths({"text": 300}, 100) == {"text": 100}


def test_single_text_row_longer_than_maxlen():
    tok = tiny_tokenizer()
    pattern = Pattern("[MASK]满意。{text}")
    row = pattern.encode(tok, "这家酒店很好" * 20, maxlen=20)
    assert len(row.token_ids) == 20 and row.token_ids[-1] == tok.sep_id
    assert row.token_ids[1] == tok.mask_id and row.mask_positions == [1]
    assert [tok.id_dict[i] for i in row.token_ids[2:5]] == list("满意。")  # the pattern's words are never cut


def test_list_fields_are_joined_and_missing_fields_named():
    tok = tiny_tokenizer()
    pattern = Pattern("[MASK]{keyword}")
    row = pattern.encode(tok, {"keyword": ["酒店", "服务"]}, maxlen=32)
    assert [tok.id_dict[i] for i in row.token_ids[2:-1]] == ["酒", "店", "[UNK]", "服", "务"]  # ，not in vocab
    with pytest.raises(FewShotError, match="no field 'keyword'"):
        pattern.encode(tok, {"text": "好"}, maxlen=32)
    with pytest.raises(FewShotError, match=r"\{keyword\} is not a field of data.tsv"):
        pattern.check_fields({"text": "x"}, "data.tsv")


@pytest.mark.parametrize("template, needle", [
    ("[MASK]满意。", "no {text}"), ("满意。{text}", "no [MASK]"), ("[MASK]{text}{text}", "twice"),
    ("{a}[SEP]{b}[SEP][MASK]", "[SEP] twice"), (None, "not a string")])
def test_bad_patterns_are_few_shot_errors(template, needle):
    with pytest.raises(FewShotError) as e:
        Pattern(template)
    assert needle in str(e.value)


def test_preprocessor_encodes_labels_and_reloads_from_config(tmp_path):
    pre = tiny_preprocessor()
    data = pre.encode(TINY_ROWS + [("这家", "unknown")])
    assert data.labels.tolist() == [1, 0, 1, 0, 1, 0, 1, 0, -1]
    assert pre.labels == ["0", "1"] and pre.num_masks == 1 and pre.prompt_token_ids == list(range(1, 9))
    again = PromptPreprocessor.from_config(pre.get_config())
    assert again.tokenizer is None
    pre.save_assets(str(tmp_path))
    again.load_assets(str(tmp_path))
    assert again.encode(TINY_ROWS).token_ids == data.token_ids[:8]
    x, y = data.batch(np.arange(3))
    assert set(x) == {"token_ids", "segment_ids", "mask_positions"} and y.tolist() == [1, 0, 1]
    with pytest.raises(FewShotError, match="maxlen=8 is too short"):
        tiny_preprocessor(maxlen=8)


def test_run_config_checks():
    assert RunConfig().check().learning_rate == 1e-3
    assert RunConfig(method="finetune").learning_rate == 1e-4
    bad = [dict(epochs=0), dict(batch_size=-1), dict(max_valid=0), dict(lr=-1.0), dict(train_fraction=0.0),
           dict(mlm_weight=0.0), dict(method="nope"), dict(fewclue_fold="abc"), dict(trainable_layers=1),
           dict(pattern="[MASK]{text}", prompt_length=4), dict(init="zeros"), dict(k=0)]
    for fields in bad:
        with pytest.raises(FewShotError) as e:
            RunConfig(**fields).check()
        assert "\n" not in str(e.value)
    assert RunConfig(prompt_length=3).resolved_pattern() == "[u1][MASK][u2][u3]{text}"
    assert RunConfig(method="zeroshot").resolved_pattern() == "[MASK]满意。{text}"
    assert "新闻" in RunConfig(method="zeroshot", verbalizer="tnews").resolved_pattern()


@pytest.mark.parametrize("method", [m.name for m in methods()])
def test_build_model_every_method(method):
    pattern = "[MASK]满意。{text}" if method == "zeroshot" else None
    model, data, pre = tiny_model(method, pattern)
    backbone_params = count_params(model.backbone.weights)
    trainable = count_params(model.trainable_weights)
    expected = {"ptuning": lambda n: 0 < n < backbone_params, "mlp": lambda n: n == 8 * 16 + 2 * (16 * 16 + 16),
                "prompt": lambda n: n == 8 * 16, "finetune": lambda n: n == backbone_params,
                "deep": lambda n: n == 8 * 16 + 1 * 8 * 16, "lora": lambda n: n == 2 * 2 * (16 * 8 + 8 * 16),
                "zeroshot": lambda n: n == 0, "hybrid": lambda n: n == 8 * 16, "changed": lambda n: n == 8 * 16}[method]
    assert expected(trainable), (method, trainable)
    x, _ = data.batch(np.arange(len(data)))
    assert tuple(model(x).shape) == (len(data), 2)


def test_build_model_refuses_what_cannot_train():
    with pytest.raises(FewShotError, match="no soft-prompt slots"):
        tiny_model("ptuning", "[MASK]满意。{text}")
    with pytest.raises(FewShotError, match="untrained"):
        tiny_model("zeroshot")
    with pytest.raises(FewShotError, match="--trainable-layers 5"):
        build_model("finetune", tiny_bert(), tiny_preprocessor(), RunConfig(method="finetune", trainable_layers=5))


def test_gather_and_label_word_scores_match_full_logits():
    bert = tiny_bert()
    pre = tiny_preprocessor(verbalizer={"a": "体育", "b": "财经"}, pattern="[u1][MASK]{text}")
    data = pre.encode([("这家酒店", "a"), ("服务太差了", "b")])
    x, _ = data.batch(np.arange(2))
    hidden = bert.encode(x["token_ids"], x["segment_ids"])
    gathered = keras.ops.convert_to_numpy(gather_positions(hidden, x["mask_positions"]))
    h = keras.ops.convert_to_numpy(hidden)
    np.testing.assert_array_equal(gathered, h[np.arange(2)[:, None], x["mask_positions"]])
    scores = keras.ops.convert_to_numpy(bert.label_word_scores(gathered, pre.label_token_ids))
    logits = keras.ops.convert_to_numpy(bert.mlm_logits(gathered))  # [B, M, V]
    for c, ids in enumerate(pre.label_token_ids):
        np.testing.assert_allclose(scores[:, c], logits[:, 0, ids[0]] + logits[:, 1, ids[1]], atol=1e-5)


def test_argument_checks_need_no_tensorflow():
    """`import few_shot`, the CLI and every check before a run load neither TensorFlow nor Keras."""
    code = ("import sys; sys.argv = ['x']; import few_shot, few_shot.cli, few_shot.run; "
            "from few_shot.config import RunConfig; few_shot.run.prepare(RunConfig(max_valid=5)); "
            "print(sorted(m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_public_api_names():
    import few_shot
    for name in ("PromptClassifier", "PromptPreprocessor", "PtuningModel", "build_model", "RunConfig", "load_mlm",
                 "save_portable_prompt", "load_portable_prompt"):
        assert getattr(few_shot, name).__name__ == name
    with pytest.raises(AttributeError):
        few_shot.NoSuchThing  # noqa: B018


def test_readme_python_api_snippet(tmp_path, monkeypatch):
    """The README's Python API example runs as written (bundled model, no training run)."""
    import re
    readme = open(f"{REPO_ROOT}/README.md", encoding="utf-8").read()
    code = re.search(r"## Python in ten lines\n\n```python\n(.*?)```", readme, re.S).group(1)
    assert len([line for line in code.splitlines() if line.strip()]) <= 11
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "sentiment.keras").exists()
    label, prob = namespace["PromptClassifier"].load("sentiment.keras").predict(["服务很周到"])[0]
    expected = namespace["PromptClassifier"](namespace["model"]).predict(["服务很周到"])[0]
    assert label == expected[0] and abs(prob - expected[1]) < 1e-6 and 0.5 <= prob <= 1.0
