"""Hybrid prompts and "changed" prompt tuning (issue 25): what trains, what stays frozen (bit for bit),
which input positions get the trained rows, and that both survive the portable prompt, ensembles and
serving."""
import numpy as np
import pytest
from keras import ops

from conftest import SENTIMENT, TINY_ROWS, TinyMLM, tiny_model, tiny_tokenizer
from few_shot import RunConfig
from few_shot.training import training_batches


def weights(variables):
    return [np.array(ops.convert_to_numpy(v)) for v in variables]


def train_steps(model, data, steps=5):
    import keras
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=model.loss_function())
    batches = training_batches(data, 4, seed=0)
    for _ in range(steps):
        x, y = next(batches)
        model.train_on_batch(x, y)


def test_hybrid_is_soft_tokens_before_the_hand_written_pattern():
    config = RunConfig(method="hybrid").check()
    assert config.resolved_pattern() == "[u1][u2][u3][u4][MASK]满意。{text}"
    assert RunConfig(method="hybrid", prompt_length=2).resolved_pattern() == "[u1][u2][MASK]满意。{text}"


def test_hybrid_trains_only_the_soft_rows_and_reads_the_words_frozen():
    model, data, pre = tiny_model("hybrid", pattern="[u1][u2][u3][u4][MASK]满意。{text}")
    words = pre.tokenizer.tokens_to_ids(list("满意"))
    x, _ = data.batch(np.arange(len(data)))
    assert all(w in np.asarray(x["token_ids"])[0] for w in words)  # the pattern's words are in every row
    assert [v.path for v in model.trainable_weights] == [v.path for v in model.prompt_encoder.trainable_weights]
    frozen, prompt = weights(model.backbone.weights), weights(model.prompt_encoder.weights)
    train_steps(model, data)
    assert all(np.array_equal(a, b) for a, b in zip(frozen, weights(model.backbone.weights)))  # the MLM, words too
    assert not np.allclose(prompt[0], weights(model.prompt_encoder.weights)[0])


def test_changed_prompt_rows_replace_their_source_tokens_in_the_input():
    model, data, pre = tiny_model("changed", init="label")
    tok = tiny_tokenizer()
    hen, bu = tok.tokens_to_ids(["很", "不"])
    # label words 不 / 很 (label order 0, 1) repeated over 8 rows: rows 0 and 1 are the sources, the rest -1
    assert model.source_token_ids == [bu, hen, -1, -1, -1, -1, -1, -1]
    x, _ = data.batch(np.arange(len(data)))
    ids = np.asarray(x["token_ids"])
    match = np.asarray(ops.convert_to_numpy(model.prompt_slots(ops.convert_to_tensor(ids), "float32")))
    assert match.sum(-1).max() == 1.0  # one row per position at most
    for b, t in zip(*np.nonzero(ids == hen)):
        assert match[b, t, 1] == 1.0  # every 很 of the input takes row 1
    frozen, prompt = weights(model.backbone.weights), weights(model.prompt_encoder.weights)
    train_steps(model, data)
    assert all(np.array_equal(a, b) for a, b in zip(frozen, weights(model.backbone.weights)))
    rows = weights(model.prompt_encoder.weights)[0]
    assert not np.allclose(prompt[0], rows)
    # the input's 很 now reads the trained row 1, not the frozen embedding of 很
    embedded = model.backbone.embed_tokens(ops.convert_to_tensor(ids))
    placed = np.asarray(ops.convert_to_numpy(model.hidden_states(x)))
    assert placed.shape == tuple(embedded.shape)
    from few_shot.ptuning import place_prompts
    states = np.asarray(ops.convert_to_numpy(place_prompts(embedded, ops.convert_to_tensor(match),
                                                           model.prompt_embeddings())))
    b, t = next(zip(*np.nonzero(ids == hen)))
    assert np.allclose(states[b, t], rows[1]) and not np.allclose(states[b, t], ops.convert_to_numpy(embedded)[b, t])


def test_changed_without_vocabulary_init_is_refused():
    from few_shot import FewShotError
    with pytest.raises(FewShotError, match="add --init label"):
        RunConfig(method="changed").check()
    assert RunConfig(method="changed", init="vocab").check()


def test_changed_survives_the_portable_prompt_ensembles_and_serving(tmp_path):
    from few_shot import PromptClassifier
    from few_shot.ensemble import build_ensemble, load_member
    from few_shot.export import serving_model
    from few_shot.portable import save_portable_prompt
    from few_shot.preprocessor import PromptPreprocessor
    model, _, pre = tiny_model("changed", init="label")
    texts = [t for t, _ in TINY_ROWS]
    expected = PromptClassifier(model).predict_proba(texts)
    mlm = TinyMLM(model.backbone, pre.tokenizer)
    path = save_portable_prompt(model, str(tmp_path / "prompt.safetensors"), "tiny")
    loaded = PromptClassifier.load(path, mlm)
    assert loaded.model.source_token_ids == model.source_token_ids
    assert np.abs(loaded.predict_proba(texts) - expected).max() < 1e-5
    ensemble = PromptClassifier(build_ensemble([load_member(path), load_member(path)], mlm))
    assert np.abs(ensemble.predict_proba(texts) - expected).max() < 1e-5
    assert serving_model(model).source_token_ids == model.source_token_ids
    plain, _, _ = tiny_model("prompt")
    other = save_portable_prompt(plain, str(tmp_path / "plain.safetensors"), "tiny")
    from few_shot import FewShotError
    with pytest.raises(FewShotError, match="replace the same tokens"):
        build_ensemble([load_member(path), load_member(other)], mlm)
    assert isinstance(pre, PromptPreprocessor) and SENTIMENT == pre.verbalizer.mapping
