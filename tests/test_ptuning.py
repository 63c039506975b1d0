"""PtuningModel, PromptEncoder, Pattern, Verbalizer: unit tests on a tiny random BERT, plus a few
checks against the bundled model."""
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from conftest import SENTIMENT, tiny_bert, tiny_model, tiny_tokenizer
from few_shot import FewShotError
from few_shot.layers import PromptEncoder
from few_shot.methods import prompt_method
from few_shot.pattern import PTUNING_PATTERN, ZERO_SHOT_PATTERN, Pattern
from few_shot.verbalizers import Verbalizer
from few_shot.preprocessor import PromptPreprocessor
from few_shot.ptuning import PtuningModel
from few_shot.training import Scorer, training_batches

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(encoder="lstm", pattern=PTUNING_PATTERN, objective="label"):
    """A tiny P-tuning model (build_model of the encoder's method) and the tiny rows encoded."""
    model, data, _ = tiny_model(prompt_method(encoder), pattern, objective=objective)
    return model, data


def fit_one_epoch(model, data, steps=4):
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=model.loss_function())
    gen = training_batches(data, 4, seed=0)
    for _ in range(steps):
        x, y = next(gen)
        model.train_on_batch(x, y)


def snapshot(weights):
    return [np.array(keras.ops.convert_to_numpy(w)) for w in weights]


def test_training_changes_only_the_prompt_encoder():
    model, data = build()
    backbone_before = snapshot(model.backbone.weights)
    prompt_before = snapshot(model.prompt_encoder.weights)
    assert {id(w) for w in model.trainable_weights} == {id(w) for w in model.prompt_encoder.weights}
    fit_one_epoch(model, data)
    for before, after in zip(backbone_before, snapshot(model.backbone.weights)):
        assert np.array_equal(before, after)  # bit-identical
    changed = [not np.array_equal(b, a) for b, a in zip(prompt_before, snapshot(model.prompt_encoder.weights))]
    assert all(changed)


def test_finetune_trains_the_backbone_and_trainable_layers_limits_it():
    tok = tiny_tokenizer()
    label_ids = Verbalizer({"0": "不", "1": "很"}).token_ids(tok)
    full = PtuningModel(tiny_bert(), label_ids, [1, 2], encoder=None, train_backbone=True)
    assert full.prompt_encoder is None
    assert len(full.trainable_weights) == len(full.backbone.weights)
    last = PtuningModel(tiny_bert(), label_ids, [1, 2], encoder=None, train_backbone=True, trainable_layers=1)
    names = {w.path for w in last.trainable_weights}
    assert any("encoder_layer_1" in n for n in names) and not any("encoder_layer_0" in n for n in names)
    assert not any("embeddings" in n for n in names) and any("mlm_head" in n for n in names)


def test_prompt_init_strategies():
    tok = tiny_tokenizer()
    label_ids = Verbalizer({"0": "不", "1": "很"}).token_ids(tok)
    table = keras.ops.convert_to_numpy(tiny_bert().embedding_matrix)
    rows = lambda m: keras.ops.convert_to_numpy(m.prompt_encoder.embedding.embeddings)  # noqa: E731
    unused = PtuningModel(tiny_bert(), label_ids, [1, 2, 3], init="unused")
    np.testing.assert_array_equal(rows(unused), table[[1, 2, 3]])
    label = PtuningModel(tiny_bert(), label_ids, [1, 2, 3], init="label")
    np.testing.assert_array_equal(rows(label), table[[label_ids[0][0], label_ids[1][0], label_ids[0][0]]])
    vocab = PtuningModel(tiny_bert(), label_ids, [1, 2, 3], init="vocab")
    assert all(any(np.array_equal(r, t) for t in table[106:]) for r in rows(vocab))
    rand = PtuningModel(tiny_bert(), label_ids, [1, 2, 3], init="random")
    assert not any(np.array_equal(r, t) for r in rows(rand) for t in table)


@pytest.mark.parametrize("encoder,expected", [("none", 3 * 16), ("mlp", 3 * 16 + 2 * (16 * 16 + 16)),
                                              ("lstm", None)])
def test_prompt_encoder_shapes_and_sizes(encoder, expected):
    layer = PromptEncoder(3, 16, encoder)
    layer.build()
    assert tuple(layer().shape) == (3, 16)
    n = sum(int(np.prod(w.shape)) for w in layer.weights)
    if expected is None:  # 2 BiLSTM layers of 8 units per direction + MLP
        lstm = 2 * 2 * (4 * (16 * 8 + 8 * 8 + 8))
        expected = 3 * 16 + lstm + 2 * (16 * 16 + 16)
    assert n == expected


def test_prompt_embeddings_replace_the_prompt_tokens():
    model, data = build(encoder="mlp")
    x, _ = data.batch(np.arange(3))
    prompts = keras.ops.convert_to_numpy(model.prompt_embeddings())
    # oracle: write the prompt vectors into the embedding rows by hand, then run the plain backbone
    bb = model.backbone
    emb = keras.ops.convert_to_numpy(bb.embed_tokens(x["token_ids"])).copy()
    for b, row in enumerate(x["token_ids"]):
        for t, token in enumerate(row):
            if token in model.prompt_token_ids:
                emb[b, t] = prompts[model.prompt_token_ids.index(token)]
    hidden = bb.encode(x["token_ids"], x["segment_ids"], token_embeddings=emb)
    at_mask = keras.ops.convert_to_numpy(hidden)[np.arange(3), x["mask_positions"][:, 0]]
    logits = keras.ops.convert_to_numpy(bb.mlm_logits(at_mask))
    expected = logits[:, [ids[0] for ids in model.label_token_ids]]
    np.testing.assert_allclose(model(x).numpy(), expected, atol=1e-5)
    assert not np.allclose(prompts, keras.ops.convert_to_numpy(bb.embedding_matrix)[1:9], atol=1e-3)


def test_objectives_rank_the_same_and_losses_match_definitions():
    model, data = build(encoder="none", objective="vocab")  # prompts = the [unused] rows: plain backbone oracle
    x, y = data.batch(np.arange(len(data)))
    infer = model(x).numpy()
    train = model(x, training=True).numpy()  # dropout is 0 in tiny_bert
    # training scores are full-vocabulary log-probs: shifted per row by a label-independent constant
    shift = infer - train
    np.testing.assert_allclose(shift, shift[:, :1].repeat(2, 1), rtol=1e-5)
    logits = model.backbone(x)  # full vocabulary logits at every position
    logp = keras.ops.convert_to_numpy(keras.ops.log_softmax(logits, axis=-1))
    mp = x["mask_positions"][:, 0]
    expected = logp[np.arange(len(mp)), mp][:, [model.label_token_ids[0][0], model.label_token_ids[1][0]]]
    np.testing.assert_allclose(train, expected, atol=1e-4)


def test_multi_mask_score_is_the_sum_of_slot_log_probs():
    tok = tiny_tokenizer()
    v = Verbalizer({"sports": "体育", "finance": "财经"})
    label_ids = v.token_ids(tok)
    assert [len(i) for i in label_ids] == [2, 2]
    p = Pattern("[u1][u2][MASK]新闻：{text}".replace("新闻：", "的"))
    bert = tiny_bert()
    data = PromptPreprocessor(tok, p, v, 32).encode([("这家酒店", "sports")])
    x, _ = data.batch(np.arange(1))
    assert x["mask_positions"].tolist() == [[3, 4]]
    # objective="vocab": a label's training score is the sum of its slots' full-vocabulary log-probs
    model = PtuningModel(bert, label_ids, tok.tokens_to_ids(p.prompt_tokens), encoder="none", objective="vocab")
    scores = model(x, training=True).numpy()[0]
    logits = keras.ops.convert_to_numpy(model.backbone(x))[0]
    logp = keras.ops.convert_to_numpy(keras.ops.log_softmax(logits, axis=-1))
    for c, ids in enumerate(label_ids):
        assert scores[c] == pytest.approx(logp[3, ids[0]] + logp[4, ids[1]], abs=1e-4)
    # objective="label" (default): the score is the sum of the slots' raw logits, softmaxed over labels
    model = PtuningModel(bert, label_ids, tok.tokens_to_ids(p.prompt_tokens), encoder="none")
    scores = model(x, training=True).numpy()[0]
    for c, ids in enumerate(label_ids):
        assert scores[c] == pytest.approx(logits[3, ids[0]] + logits[4, ids[1]], abs=1e-4)


def test_keras_file_round_trip_and_use_inside_a_functional_model(tmp_path):
    model, data = build()
    fit_one_epoch(model, data, steps=2)
    x, _ = data.batch(np.arange(len(data)))
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    np.testing.assert_array_equal(model(x).numpy(), loaded(x).numpy())
    # the preprocessor comes back with the model (config + vocabulary asset) and encodes alike
    assert loaded.preprocessor.pattern.template == PTUNING_PATTERN
    assert loaded.preprocessor.verbalizer.mapping == SENTIMENT
    again = loaded.preprocessor.encode([(t, "0") for t in ["这家酒店很好", "服务太差了"]])
    assert again.token_ids == data.token_ids[:2] and loaded.preprocessor.tokenizer.token_dict == \
        model.preprocessor.tokenizer.token_dict

    inputs = {"token_ids": keras.Input((None,), dtype="int32", name="token_ids"),
              "segment_ids": keras.Input((None,), dtype="int32", name="segment_ids"),
              "mask_positions": keras.Input((1,), dtype="int32", name="mask_positions")}
    probs = keras.layers.Softmax()(model(inputs))
    outer = keras.Model(inputs, probs)
    out = outer.predict(x, verbose=0)
    np.testing.assert_allclose(out, keras.ops.convert_to_numpy(keras.ops.softmax(model(x))), atol=1e-6)


def test_scorer_keeps_row_order():
    model, data = build()
    x, _ = data.batch(np.arange(len(data)))
    np.testing.assert_allclose(Scorer(model, batch_size=3).scores(data), model(x).numpy(), atol=1e-5)


def test_scorer_xla_pads_to_multiples_of_16_with_the_same_scores():
    model, data = build()
    x, _ = data.batch(np.arange(len(data)))
    scorer = Scorer(model, batch_size=3, jit_compile=True)
    assert scorer.pad_multiple == 16 and Scorer(model).pad_multiple == 1
    shapes = {data.batch(idx, multiple=16)[0]["token_ids"].shape[1] for idx in np.array_split(np.arange(len(data)), 3)}
    assert shapes and all(n % 16 == 0 and n - 16 < data.lengths.max() for n in shapes)
    np.testing.assert_allclose(scorer.scores(data), model(x).numpy(), atol=1e-5)


def test_zero_shot_scores_equal_predict_logits_columns(bundled_mlm):
    tok = bundled_mlm.tokenizer
    preprocessor = PromptPreprocessor(tok, ZERO_SHOT_PATTERN, SENTIMENT, 128)
    label_ids = preprocessor.label_token_ids
    texts = ["这家酒店很好", "服务太差了，再也不来了", "一般般吧"]
    data = preprocessor.encode([(t, "0") for t in texts])
    model = PtuningModel(bundled_mlm.model, label_ids, encoder=None)
    scores = Scorer(model).scores(data)
    logits = bundled_mlm.predict_logits(data.token_ids)
    for i, mask in enumerate(data.mask_positions[:, 0]):
        np.testing.assert_allclose(scores[i], logits[i, mask, [ids[0] for ids in label_ids]], atol=1e-4)


@pytest.mark.parametrize("template,message", [
    ("[MASK]满意。", "no {text}"), ("满意。{text}", "no [MASK]"), ("[MASK]{text}{text}", "twice")])
def test_bad_patterns(template, message):
    with pytest.raises(FewShotError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Pattern(template)


def test_bad_verbalizers():
    tok = tiny_tokenizer()
    with pytest.raises(FewShotError, match="not in the vocabulary"):
        Verbalizer({"0": "坏", "1": "很"}).token_ids(tok)
    with pytest.raises(FewShotError, match="different token lengths"):
        Verbalizer({"0": "不", "1": "体育"}).token_ids(tok)
    with pytest.raises(FewShotError, match="same word"):
        Verbalizer({"0": "很", "1": "很"})
    with pytest.raises(FewShotError, match=r"labels \['2'\] are not in the verbalizer"):
        Verbalizer({"0": "不", "1": "很"}).check_labels(["0", "2"], "train.tsv")
    assert Verbalizer.parse("1:很,0:不").mapping == {"1": "很", "0": "不"}
    with pytest.raises(FewShotError, match="label:word"):
        Verbalizer.parse("很,不")


def test_mirrored_strategy_two_cpus_matches_single_device(tmp_path):
    """One train step on 2 logical CPU devices gives the single-device loss and weights."""
    script = textwrap.dedent(f"""
        import sys, numpy as np, tensorflow as tf
        tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
            [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
        sys.path.insert(0, {REPO!r}); sys.path.insert(0, {os.path.dirname(__file__)!r})
        import keras
        from test_ptuning import build
        x = y = None
        results = []
        for strategy in (tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), tf.distribute.get_strategy()):
            with strategy.scope():
                model, data = build()
                model.compile(optimizer=keras.optimizers.SGD(0.1), loss=model.loss_function())
            x, y = data.batch(np.arange(8))
            loss = float(model.train_on_batch(x, y))
            results.append((strategy.num_replicas_in_sync, loss,
                            keras.ops.convert_to_numpy(model.prompt_encoder.weights[-1])))
        (n1, l1, w1), (n2, l2, w2) = results
        assert n1 == 2 and n2 == 1, (n1, n2)
        print("losses", l1, l2, "max weight diff", np.abs(w1 - w2).max())
        assert abs(l1 - l2) < 1e-4, (l1, l2)
        assert np.abs(w1 - w2).max() < 1e-4
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "losses" in result.stdout
