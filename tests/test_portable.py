"""Portable prompts (few_shot/portable.py) and multi-[MASK] scoring with two-character label words."""
import os

import keras
import numpy as np
import pytest

from few_shot import BertMaskedLM, FewShotError, Tokenizer
from few_shot.pattern import PTUNING_PATTERN, Pattern, Verbalizer
from few_shot.portable import load_portable_prompt, portable_classifier, read_portable_prompt, save_portable_prompt
from few_shot.ptuning import PtuningModel
from few_shot.training import EncodedSet, training_batches

CHARS = list("很不好差酒店服务满意这家的是了我们一个房间还可以太吵。新闻条体育财经娱乐")
VOCAB = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"] + CHARS
ROWS = [("这家酒店很好", "1"), ("服务太差了", "0"), ("房间还可以", "1"), ("太吵了", "0"),
        ("我们满意", "1"), ("不好", "0"), ("这个酒店好", "1"), ("服务差", "0")]


class TinyMLM:
    """Stands in for a PretrainedMLM: .model, .tokenizer, .path."""

    def __init__(self, model, tokenizer, path="tiny"):
        self.model, self.tokenizer, self.path = model, tokenizer, path


def tiny_tokenizer():
    return Tokenizer({t: i for i, t in enumerate(VOCAB)})


def tiny_bert(seed=0):
    keras.utils.set_random_seed(seed)
    return BertMaskedLM(vocab_size=len(VOCAB), hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                        max_position=64, dropout=0.0)


def trained(encoder, verbalizer=None, rows=ROWS, pattern=PTUNING_PATTERN):
    tok = tiny_tokenizer()
    p, v = Pattern(pattern), Verbalizer(verbalizer or {"0": "不", "1": "很"})
    label_ids = v.token_ids(tok)
    model = PtuningModel(tiny_bert(), label_ids, tok.tokens_to_ids(p.prompt_tokens), encoder=encoder,
                         pattern=p.template, verbalizer=v.mapping, maxlen=32)
    data = EncodedSet(rows, tok, p, v, 32, label_ids)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=model.loss_function())
    batches = training_batches(data, 4, seed=0)
    for _ in range(3):
        model.train_on_batch(*next(batches))
    return model, data, tok


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
    assert loaded.pattern == model.pattern and loaded.verbalizer == model.verbalizer and loaded.maxlen == 32
    matrix, meta = read_portable_prompt(path)
    np.testing.assert_array_equal(matrix, keras.ops.convert_to_numpy(model.prompt_embeddings()))
    assert meta["prompt_token_ids"] == list(range(1, 9)) and meta["model"] == "tiny"
    assert meta["label_token_ids"] == model.label_token_ids and meta["trained_encoder"] == encoder
    assert os.path.getsize(path) < 4096  # 8 x 16 floats + metadata
    probs = portable_classifier(path, TinyMLM(backbone, tok)).predict(["这家酒店很好"])
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
    other = BertMaskedLM(vocab_size=len(VOCAB), hidden_size=8, num_layers=1, num_heads=2, intermediate_size=16,
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
    from few_shot.cli import make_verbalizer, zero_shot_pattern
    from few_shot.datasets import TNEWS_VERBALIZER
    v = make_verbalizer("tnews")
    assert v.mapping == TNEWS_VERBALIZER and len(v.labels) == 15
    ids = v.token_ids(bundled_tokenizer)
    assert {len(i) for i in ids} == {2}
    compiled = Pattern(PTUNING_PATTERN).compile(bundled_tokenizer, 2)
    assert compiled[0].count(bundled_tokenizer.mask_id) == 2
    assert make_verbalizer("sentiment").mapping == {"0": "不", "1": "很"}
    assert make_verbalizer(None).mapping == {"0": "不", "1": "很"}

    class Args:
        pattern, verbalizer = PTUNING_PATTERN, "tnews"
    assert "新闻" in zero_shot_pattern(Args) and "[MASK]" in zero_shot_pattern(Args)
    Args.verbalizer = None
    assert zero_shot_pattern(Args) == "[MASK]满意。{text}"
