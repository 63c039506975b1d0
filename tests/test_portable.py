"""Portable prompts (few_shot/portable.py) and multi-[MASK] scoring with two-character label words."""
import os

import keras
import numpy as np
import pytest

from conftest import TINY_ROWS, TINY_VOCAB, TinyMLM, tiny_bert, tiny_model
from few_shot import BertMaskedLM, FewShotError
from few_shot.pattern import PTUNING_PATTERN, Pattern
from few_shot.classifier import PromptClassifier
from few_shot.portable import load_portable_prompt, read_portable_prompt, save_portable_prompt
from few_shot.ptuning import PtuningModel
from few_shot.training import training_batches


def trained(encoder, verbalizer=None, rows=TINY_ROWS, pattern=PTUNING_PATTERN):
    """A tiny prompt model after 3 training steps -> (model, data, tokenizer)."""
    method = {"lstm": "ptuning", "mlp": "mlp", "none": "prompt"}[encoder]
    model, data, preprocessor = tiny_model(method, pattern, verbalizer, rows)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=model.loss_function())
    batches = training_batches(data, 4, seed=0)
    for _ in range(3):
        model.train_on_batch(*next(batches))
    return model, data, preprocessor.tokenizer


@pytest.mark.parametrize("encoder", ["lstm", "mlp"])
def test_folded_prompt_predicts_identically(encoder, tmp_path):
    model, data, tok = trained(encoder)
    path = save_portable_prompt(model, str(tmp_path / "prompt.safetensors"), model_ref="tiny")
    x, _ = data.batch(np.arange(len(data)))
    # a fresh backbone with the same weights: nothing of the trained model is shared
    backbone = tiny_bert()
    backbone.set_weights(model.backbone.get_weights())
    loaded = load_portable_prompt(path, TinyMLM(backbone, tok))
    assert loaded.encoder == "none" and loaded.prompt_encoder.lstm is None and loaded.prompt_encoder.mlp is None
    assert [w.shape for w in loaded.prompt_encoder.weights] == [(8, 16)]  # just the folded rows
    delta = np.abs(keras.ops.convert_to_numpy(loaded(x)) - keras.ops.convert_to_numpy(model(x)))
    assert delta.max() < 1e-5
    assert loaded.preprocessor.get_config()["pattern"] == model.preprocessor.get_config()["pattern"]
    assert loaded.preprocessor.verbalizer.mapping == model.preprocessor.verbalizer.mapping
    assert loaded.preprocessor.maxlen == 32
    matrix, meta = read_portable_prompt(path)
    np.testing.assert_array_equal(matrix, keras.ops.convert_to_numpy(model.prompt_embeddings()))
    assert meta["prompt_token_ids"] == list(range(1, 9)) and meta["model"] == "tiny"
    assert meta["label_token_ids"] == model.label_token_ids and meta["trained_encoder"] == encoder
    assert os.path.getsize(path) < 4096  # 8 x 16 floats + metadata
    probs = PromptClassifier.load(path, TinyMLM(backbone, tok)).predict(["这家酒店很好"])
    assert probs[0][0] in ("0", "1") and 0.5 <= probs[0][1] <= 1.0


def test_prompt_encoder_none_is_just_the_rows():
    from few_shot.layers import PromptEncoder
    layer = PromptEncoder(3, 16, "none")
    layer.build()
    rows = np.arange(48, dtype="float32").reshape(3, 16)
    layer.set_initial_embeddings(rows)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer()), rows)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(training=True)), rows)


def test_portable_prompt_errors(tmp_path):
    model, _, tok = trained("mlp")
    path = save_portable_prompt(model, str(tmp_path / "p.safetensors"), model_ref=str(tmp_path / "gone"))
    with pytest.raises(FewShotError, match="not here"):
        load_portable_prompt(path)
    other = BertMaskedLM(vocab_size=len(TINY_VOCAB), hidden_size=8, num_layers=1, num_heads=2, intermediate_size=16,
                         max_position=64)
    with pytest.raises(FewShotError, match="hidden size 16"):
        load_portable_prompt(path, TinyMLM(other, tok))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(FewShotError, match="bad.safetensors"):
        read_portable_prompt(str(bad))
    finetuned = PtuningModel(tiny_bert(), model.label_token_ids, [1, 2], encoder=None, train_backbone=True)
    with pytest.raises(FewShotError, match="no prompt encoder"):
        save_portable_prompt(finetuned, str(tmp_path / "f.safetensors"))


def test_multi_mask_scores_are_sums_of_slot_log_probs():
    """Two-character label words (as tnews): [MASK] expands to two slots; the training scores with
    objective=vocab are sum over slots of log_softmax(full logits)[slot, piece], and the inference
    scores differ from them by one per-row constant (so label differences agree)."""
    v = {"sports": "体育", "finance": "财经", "ent": "娱乐"}
    rows = [("这家酒店很好", "sports"), ("服务太差了", "finance"), ("房间还可以", "ent")]
    model, data, tok = trained("lstm", v, rows, pattern="[u1][u2][MASK]新闻。{text}")
    model.objective = "vocab"
    x, _ = data.batch(np.arange(len(data)))
    assert x["mask_positions"].tolist() == [[3, 4]] * 3
    train_scores = keras.ops.convert_to_numpy(model(x, training=True))
    infer = keras.ops.convert_to_numpy(model(x))
    # oracle: the backbone's full logits with the prompt vectors written in by hand
    prompts = keras.ops.convert_to_numpy(model.prompt_embeddings())
    emb = keras.ops.convert_to_numpy(model.backbone.embed_tokens(x["token_ids"])).copy()
    emb[:, 1:3] = prompts  # [CLS] [u1] [u2] [MASK] [MASK] ...
    hidden = model.backbone.encode(x["token_ids"], x["segment_ids"], token_embeddings=emb)
    logits = keras.ops.convert_to_numpy(model.backbone.mlm_logits(hidden))
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    for c, ids in enumerate(model.label_token_ids):
        np.testing.assert_allclose(train_scores[:, c], logp[:, 3, ids[0]] + logp[:, 4, ids[1]], atol=1e-4)
        np.testing.assert_allclose(infer[:, c], logits[:, 3, ids[0]] + logits[:, 4, ids[1]], atol=1e-4)
    diff = infer - train_scores
    np.testing.assert_allclose(diff, diff[:, :1].repeat(3, 1), atol=1e-4)


def test_tnews_verbalizer_has_two_pieces_per_label_on_the_bundled_vocab(bundled_tokenizer):
    from few_shot.datasets import TNEWS_VERBALIZER
    from few_shot.tasks import make_verbalizer
    from few_shot.verbalizers import zero_shot_pattern
    v = make_verbalizer("tnews")
    assert v.mapping == TNEWS_VERBALIZER and len(v.labels) == 15
    ids = v.token_ids(bundled_tokenizer)
    assert {len(i) for i in ids} == {2}
    row = Pattern(PTUNING_PATTERN).encode(bundled_tokenizer, "体育新闻", 32, num_masks=2)
    assert row.token_ids.count(bundled_tokenizer.mask_id) == 2 and row.mask_positions == [5, 6]
    assert make_verbalizer("sentiment").mapping == {"0": "不", "1": "很"}
    assert make_verbalizer(None).mapping == {"0": "不", "1": "很"}
    assert "新闻" in zero_shot_pattern("tnews") and "[MASK]" in zero_shot_pattern("tnews")
    assert zero_shot_pattern(None) == "[MASK]满意。{text}"
