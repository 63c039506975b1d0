"""The methods users compare (issue #17): LoRA, deep prompts, prompt ensembles, calibration."""
import os

import keras
import numpy as np
import pytest

from conftest import TINY_ROWS, TinyMLM, tiny_bert, tiny_model, tiny_tokenizer
from few_shot.config import RunConfig
from few_shot.errors import FewShotError
from few_shot.ptuning import PtuningModel, count_params
from few_shot.training import training_batches

numpy = keras.ops.convert_to_numpy


def scores(model, data):
    x, _ = data.batch(np.arange(len(data)))
    return numpy(model(x))


def train_steps(model, data, steps=3, lr=1e-2):
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=model.loss_function())
    batches = training_batches(data, 4, seed=0)
    for _ in range(steps):
        model.train_on_batch(*next(batches))
    return model


def frozen_values(model):
    trainable = {id(v) for v in model.trainable_weights}
    return {v.path: numpy(v).copy() for v in model.backbone.weights if id(v) not in trainable}


# -- LoRA --------------------------------------------------------------------------------------

def test_lora_trains_only_the_adapters_and_the_backbone_stays_bit_identical():
    model, data, _ = tiny_model("lora", lora_rank=4)
    names = [v.path for v in model.trainable_weights]
    assert names and all(n.rsplit("/", 1)[-1] in ("lora_kernel_a", "lora_kernel_b") for n in names)
    assert {n.split("/")[-2] for n in names} == {"query", "value"}  # --lora-targets qv
    assert count_params(model.trainable_weights) == 2 * 2 * (16 * 4 + 4 * 16)  # layers x (q, v) x (A + B)
    before = frozen_values(model)
    b_before = [numpy(v).copy() for v in model.trainable_weights if v.path.endswith("lora_kernel_b")]
    train_steps(model, data)
    after = frozen_values(model)
    assert before.keys() == after.keys()
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)
    b_after = [numpy(v) for v in model.trainable_weights if v.path.endswith("lora_kernel_b")]
    assert all(np.abs(b).max() > 0 for b in b_after) and not all(np.abs(b).max() > 0 for b in b_before)


def test_lora_with_zero_b_scores_as_the_frozen_model():
    model, data, pre = tiny_model("lora", lora_rank=4, lora_targets="all")
    assert count_params(model.trainable_weights) == 2 * (4 * (16 * 4 + 4 * 16) + (16 * 4 + 4 * 32)
                                                         + (32 * 4 + 4 * 16))
    frozen = PtuningModel(tiny_bert(0), pre.label_token_ids, pre.prompt_token_ids, encoder=None)
    np.testing.assert_allclose(scores(model, data), scores(frozen, data), rtol=0, atol=1e-6)


def test_lora_merge_round_trip_and_adapter_file(tmp_path):
    from few_shot.lora import LoraModel, load_adapters, merge_lora, save_adapters
    model, data, pre = tiny_model("lora", lora_rank=4)
    train_steps(model, data)
    trained = scores(model, data)
    merged = merge_lora(model)
    assert type(merged) is PtuningModel and count_params(merged.trainable_weights) == 0
    assert not any(getattr(layer, "lora_enabled", False) for layer in merged.backbone._flatten_layers())
    assert np.abs(scores(merged, data) - trained).max() < 1e-5
    # model.keras keeps the frozen kernels and the adapters apart and trains on after loading
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, LoraModel) and loaded.lora_rank == 4
    np.testing.assert_allclose(scores(loaded, data), trained, rtol=0, atol=1e-6)
    frozen = frozen_values(model)
    for path_, value in frozen_values(loaded).items():
        np.testing.assert_array_equal(value, frozen[path_])
    assert [v.path for v in loaded.trainable_weights] == [v.path for v in model.trainable_weights]
    a_b = [numpy(v).copy() for v in loaded.trainable_weights]
    train_steps(loaded, data, steps=1)
    assert any(np.abs(numpy(v) - w).max() > 0 for v, w in zip(loaded.trainable_weights, a_b))
    # the adapters alone, on a fresh copy of the frozen MLM
    adapters = save_adapters(model, str(tmp_path / "lora.safetensors"), model_ref="tiny")
    assert os.path.getsize(adapters) < 12_000  # 2 layers x (q, v) x 2 x 64 floats + metadata
    again = load_adapters(adapters, TinyMLM(tiny_bert(0), tiny_tokenizer()))
    np.testing.assert_allclose(scores(again, data), trained, rtol=0, atol=1e-6)


def test_lora_bad_options_are_one_line_errors():
    for fields, needle in [(dict(method="lora", lora_rank=0), "--lora 0"),
                           (dict(method="lora", lora_targets="query,attn"), "attn matches no layer"),
                           (dict(method="lora", lora_targets=""), "matches no layer"),
                           (dict(method="finetune", lora_rank=4), "--lora is an option of lora runs"),
                           (dict(method="lora", trainable_layers=1), "--trainable-layers")]:
        with pytest.raises(FewShotError, match=needle) as e:
            RunConfig(**fields).check()
        assert "\n" not in str(e.value)
    from few_shot.lora import LoraModel
    with pytest.raises(FewShotError, match="--lora 0"):
        LoraModel(tiny_bert(), [[4], [5]], lora_rank=0)


# -- deep prompts --------------------------------------------------------------------------------

@pytest.mark.parametrize("reparam", [False, True])
def test_deep_prompts_off_equal_input_only_prompting(reparam):
    deep, data, _ = tiny_model("deep", deep_reparam=reparam)
    plain, _, _ = tiny_model("mlp" if reparam else "prompt")
    deep.deep_prompt.set_initial_states(np.random.default_rng(0).normal(size=(1, 8, 16)))
    on = scores(deep, data)
    deep.deep = False
    np.testing.assert_array_equal(scores(deep, data), scores(plain, data))
    assert np.abs(on - scores(deep, data)).max() > 1e-5  # the deeper states change the (tiny, random) scores


@pytest.mark.parametrize("options", [dict(), dict(deep_reparam=True), dict(head="cls")])
def test_deep_prompts_train_only_prompt_weights_and_round_trip(options, tmp_path):
    from few_shot.deep import DeepPromptModel
    from few_shot.portable import load_portable_prompt, save_portable_prompt
    model, data, pre = tiny_model("deep", **options)
    backbone = {id(v) for v in model.backbone.weights}
    assert not any(id(v) in backbone for v in model.trainable_weights)
    expected = 8 * 16 + (0 if options else 1 * 8 * 16)  # input rows + states of layer 1 (2 layers)
    if options.get("deep_reparam"):
        expected = (8 * 16 + 2 * (16 * 16 + 16)) + (8 * 16 + 16 * 16 + 16 + 16 * 16 + 16)
    if options.get("head") == "cls":
        expected = 8 * 16 + 8 * 16 + 16 * 2 + 2
    assert count_params(model.trainable_weights) == expected
    before = frozen_values(model)
    train_steps(model, data)
    for path, value in frozen_values(model).items():
        np.testing.assert_array_equal(value, before[path])
    trained = scores(model, data)
    model.save(str(tmp_path / "model.keras"))
    loaded = keras.models.load_model(str(tmp_path / "model.keras"))
    assert isinstance(loaded, DeepPromptModel) and loaded.head == model.head
    assert count_params(loaded.trainable_weights) == expected  # the reloaded MLM is frozen too
    np.testing.assert_allclose(scores(loaded, data), trained, rtol=0, atol=1e-6)
    path = save_portable_prompt(model, str(tmp_path / "prompt.safetensors"), model_ref="tiny")
    backbone = tiny_bert()
    backbone.set_weights(model.backbone.get_weights())
    portable = load_portable_prompt(path, TinyMLM(backbone, tiny_tokenizer()))
    assert isinstance(portable, DeepPromptModel) and not portable.reparam
    assert np.abs(scores(portable, data) - trained).max() < 1e-5


# -- prompt ensembles ----------------------------------------------------------------------------

def probs_of(model, data):
    from few_shot.calibration import probabilities
    return probabilities(scores(model, data))


def ensemble_of(prompts, deep=None, seed=0):
    """An EnsembleModel over tiny_bert(seed) with the given prompt rows (and deep states)."""
    from few_shot.ensemble import EnsembleModel, single_model
    _, data, pre = tiny_model("prompt", seed=seed)
    base = single_model(tiny_bert(seed), pre.label_token_ids, pre.prompt_token_ids, "label", pre, prompts[0],
                        None if deep is None else deep[0])
    return EnsembleModel(base, prompts, deep), data


def test_ensemble_of_copies_of_one_prompt_equals_that_prompt():
    rows = np.random.default_rng(1).normal(size=(8, 16)).astype("float32")
    ensemble, data = ensemble_of(np.stack([rows] * 3))
    single = ensemble.members()[0]
    np.testing.assert_allclose(probs_of(ensemble, data), probs_of(single, data), rtol=0, atol=1e-6)


@pytest.mark.parametrize("deep", [False, True])
def test_batched_ensemble_equals_the_mean_of_single_runs(deep):
    rng = np.random.default_rng(2)
    prompts = rng.normal(size=(4, 8, 16)).astype("float32")
    states = rng.normal(size=(4, 1, 8, 16)).astype("float32") if deep else None
    ensemble, data = ensemble_of(prompts, states)
    members = ensemble.members()
    assert len(members) == 4 and all(m.backbone is ensemble.base.backbone for m in members)  # one MLM
    mean = np.mean([probs_of(m, data) for m in members], axis=0)
    assert np.abs(probs_of(members[0], data) - mean).max() > 1e-6  # the members do differ
    np.testing.assert_allclose(probs_of(ensemble, data), mean, rtol=0, atol=1e-6)
    # through the Scorer (length-sorted batches of 3 rows): the same
    from few_shot.training import Scorer
    from few_shot.calibration import probabilities
    np.testing.assert_allclose(probabilities(Scorer(ensemble, batch_size=3).scores(data)), mean, rtol=0, atol=1e-6)


def saved_prompt(tmp_path, name, verbalizer=None, model_ref="tiny", seed=0):
    from few_shot.portable import save_portable_prompt
    model, _, _ = tiny_model("prompt", verbalizer=verbalizer, seed=seed)
    return save_portable_prompt(model, str(tmp_path / f"{name}.safetensors"), model_ref=model_ref)


def test_ensemble_members_must_share_mlm_and_verbalizer(tmp_path):
    from few_shot.ensemble import build_ensemble, load_member
    from few_shot.lora import save_adapters
    a, b = saved_prompt(tmp_path, "a"), saved_prompt(tmp_path, "b", seed=1)
    other_mlm = saved_prompt(tmp_path, "c", model_ref="other-mlm")
    other_words = saved_prompt(tmp_path, "d", verbalizer={"0": "差", "1": "好"})
    members = [load_member(p) for p in (a, b)]
    ensemble = build_ensemble(members, TinyMLM(tiny_bert(), tiny_tokenizer()))
    assert ensemble.size == 2 and ensemble.prompts.shape == (2, 8, 16)
    for odd, needle in ((other_mlm, "trained on the MLM other-mlm"), (other_words, "verbalizer")):
        with pytest.raises(FewShotError, match=needle) as e:
            build_ensemble([load_member(a), load_member(odd)])
        assert "\n" not in str(e.value)
    lora, _, _ = tiny_model("lora", lora_rank=2)
    adapters = save_adapters(lora, str(tmp_path / "lora.safetensors"), model_ref="tiny")
    with pytest.raises(FewShotError, match="LoRA adapters change the MLM"):
        load_member(adapters)


def test_ensemble_errors_through_the_script_are_one_line(tmp_path):
    from test_scripts import assert_one_line_error, run
    a, odd = saved_prompt(tmp_path, "a"), saved_prompt(tmp_path, "c", model_ref="other-mlm")
    assert_one_line_error(run("few_shot_ptuning.py", "--predict", a, odd, "这家酒店很好"), "other-mlm")
    assert_one_line_error(run("few_shot_ptuning.py", "--evaluate", a, str(tmp_path / "missing")), "missing")


# -- calibration -----------------------------------------------------------------------------------

def test_calibrated_argmax_follows_the_formula():
    from few_shot.calibration import calibrate, probabilities
    scores = np.log([[0.6, 0.4], [0.8, 0.2], [0.7, 0.3], [0.5, 0.5]]) + np.array([[3.0], [-1.0], [0.5], [2.0]])
    probs = probabilities(scores)  # label scores (logits, any per-row shift) -> [[0.6, 0.4], ...]
    np.testing.assert_allclose(probs, [[0.6, 0.4], [0.8, 0.2], [0.7, 0.3], [0.5, 0.5]])
    reference = np.array([0.75, 0.25])
    q = calibrate(probs, reference)
    expected = (probs / reference) / (probs / reference).sum(-1, keepdims=True)
    np.testing.assert_allclose(q, expected)
    assert q.argmax(-1).tolist() == [1, 0, 1, 1]  # 0.6/0.75 < 0.4/0.25; 0.8/0.75 > 0.2/0.25; ...
    assert probs.argmax(-1).tolist()[:3] == [0, 0, 0]
    # Zhao et al.'s softmax(diag(r)^-1 p) has the same argmax
    assert probabilities(probs / reference).argmax(-1).tolist() == q.argmax(-1).tolist()
    np.testing.assert_allclose(calibrate(probs, [0.5, 0.5]), probs)  # a uniform reference changes nothing


def test_content_free_scores_come_from_the_same_pattern():
    from few_shot.calibration import CONTENT_FREE, CalibratedScorer, calibrate, content_free_rows
    from few_shot.pattern import Pattern
    from few_shot.training import Scorer
    model, data, pre = tiny_model("prompt")
    scorer = CalibratedScorer(Scorer(model), pre, "content-free")
    expected = pre.encode_texts(list(CONTENT_FREE))
    assert scorer.reference_set.token_ids == expected.token_ids
    tok = pre.tokenizer
    assert expected.token_ids[0] == [tok.cls_id, 1, 2, 3, 4, tok.mask_id, 5, 6, 7, 8, tok.sep_id]  # "" in the pattern
    assert expected.token_ids[2].count(tok.mask_id) == 2  # the "[MASK]" text: a second mask token, not the label slot
    reference = probs_of(model, expected).mean(0)
    np.testing.assert_allclose(scorer.reference(), reference, atol=1e-6)
    np.testing.assert_allclose(np.exp(scorer.scores(data)), calibrate(probs_of(model, data), reference), atol=1e-5)
    assert content_free_rows(Pattern("[u1]{a}[SEP][MASK]{b}"))[1] == {"a": "N/A", "b": "N/A"}


def test_classifier_predicts_calibrated_probabilities():
    from few_shot.calibration import calibrate
    from few_shot.classifier import PromptClassifier
    model, _, pre = tiny_model("prompt")
    texts = [row for row, _ in TINY_ROWS]
    classifier = PromptClassifier(model)
    raw = classifier.predict_proba(texts)
    classifier.calibrate = "unlabeled"  # the texts themselves are the unlabelled reference
    np.testing.assert_allclose(classifier.predict_proba(texts), calibrate(raw, raw.mean(0)), atol=1e-5)
    assert np.allclose(classifier.predict_proba(texts).mean(0), 0.5, atol=0.05)  # (nearly) balanced after


def test_zero_shot_calibrated_through_the_script():
    from test_scripts import run
    result = run("few_shot_ptuning.py", "--zero-shot", "--calibrate", "content-free", "--max-valid", "40",
                 "--max-test", "40")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "calibration: label probabilities divided by those of content-free inputs" in result.stdout
    assert "zero-shot - pattern: [MASK]满意。{text} - valid_acc" in result.stdout


def test_lora_bad_flags_exit_2_with_one_line_before_tensorflow():
    from test_scripts import assert_one_line_error, run
    assert_one_line_error(run("few_shot_finetune.py", "--lora", "0"), "--lora", "0 must be an integer >= 1")
    assert_one_line_error(run("few_shot_finetune.py", "--lora", "8", "--lora-targets", "query,vv"), "vv matches no layer")
    assert_one_line_error(run("few_shot_finetune.py", "--lora", "8", "--trainable-layers", "2"), "--trainable-layers")
    assert_one_line_error(run("few_shot_ptuning.py", "--head", "cls"), "add --deep")
