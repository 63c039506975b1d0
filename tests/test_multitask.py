"""One frozen MLM, many tasks (few_shot/multitask.py): a mixed-task batch scores every row as its own task's
single model does (PromptClassifier.predict_proba), and the tasks are checked to share the MLM."""
import json
import os

import numpy as np
import pytest

from conftest import TINY_ROWS, TinyMLM, tiny_bert, tiny_model, tiny_tokenizer
from few_shot import FewShotError

TEXTS = [t for t, _ in TINY_ROWS] + ["这家酒店很好，服务满意，房间还可以，我们一个是了太吵", "好"]
THREE = {"0": "差", "1": "好", "2": "可"}
TOPICS = {"sports": "体育", "finance": "财经", "fun": "娱乐"}  # two [MASK] slots per label


def randomized(model, seed):
    """Random prompt rows (and deep states), so that tasks made on one tiny MLM differ."""
    rng = np.random.default_rng(seed)
    rows = model.prompt_encoder.weights[0].shape
    if model.encoder == "none":
        model.prompt_encoder.set_initial_embeddings(rng.normal(size=rows).astype("float32"))
    if hasattr(model, "deep_prompt"):
        model.deep_prompt.set_initial_states(rng.normal(size=model.deep_prompt.states.shape).astype("float32"))
    return model


def prompt_file(tmp_path, name, method="prompt", model_ref="tiny", seed=1, **options):
    from few_shot.portable import save_portable_prompt
    model, _, _ = tiny_model(method, **options)
    return save_portable_prompt(randomized(model, seed), str(tmp_path / f"{name}.safetensors"), model_ref=model_ref)


def run_folder(tmp_path, name, method="ptuning", **options):
    """A run folder as a training run leaves it: model.keras + metrics.json naming the MLM and the method."""
    model, _, _ = tiny_model(method, **options)
    folder = tmp_path / name
    folder.mkdir()
    randomized(model, 5).build()
    model.save(str(folder / "model.keras"))
    (folder / "metrics.json").write_text(json.dumps({"config": {"model": "tiny", "method": method}}))
    return str(folder)


@pytest.fixture
def mlm():
    """The tiny MLM with its weights scaled up: random tiny weights give every prompt nearly the same
    probabilities, which could not show a task mixed up with another."""
    backbone = tiny_bert()
    for w in backbone.weights:
        if len(w.shape) >= 2:
            w.assign(w.numpy() * 10)
    return TinyMLM(backbone, tiny_tokenizer())


@pytest.fixture
def targets(tmp_path):
    return {"sentiment": prompt_file(tmp_path, "sentiment"),
            "three": prompt_file(tmp_path, "three", pattern="[u1][u2][u3][u4]觉得[MASK]。{text}", verbalizer=THREE,
                                 seed=2),
            "topics": prompt_file(tmp_path, "topics", pattern="[u1][u2][MASK][MASK]新闻{text}", verbalizer=TOPICS,
                                  seed=3),
            "deep": prompt_file(tmp_path, "deep", method="deep", seed=4),
            "changed": prompt_file(tmp_path, "changed", method="changed", init="label", seed=6)}


def single_task(target, mlm, texts):
    from few_shot.classifier import PromptClassifier
    return PromptClassifier.load(target, mlm).predict_proba(texts)


def test_rows_of_one_task_and_mixed_batches_equal_the_single_task_model(targets, mlm):
    from few_shot.multitask import load_tasks
    model = load_tasks(targets, mlm)
    assert model.backbone is mlm.model and model.num_labels == 3 and model.num_masks == 2
    assert [len(model.labels(t)) for t in targets] == [2, 3, 3, 2, 2]
    expected = {}
    for task, target in targets.items():
        expected[task] = single_task(target, mlm, TEXTS)
        got = np.stack(model.predict_proba([(task, t) for t in TEXTS]))
        assert got.shape == expected[task].shape
        assert np.abs(got - expected[task]).max() < 1e-5, task
    # the tasks do differ from each other (else a mixed batch could not tell them apart)
    assert np.abs(expected["sentiment"] - expected["deep"]).max() > 1e-3
    assert np.abs(expected["sentiment"] - expected["changed"]).max() > 1e-3
    # one mixed batch: every row of every task, interleaved, in ONE pass of the MLM
    rows = [(task, text) for text in TEXTS for task in targets]
    encoded = [model.encode(task, text) for task, text in rows]
    probs = model.probabilities(encoded)
    for (task, text), p in zip(rows, probs):
        assert np.abs(p - expected[task][TEXTS.index(text)]).max() < 1e-5, (task, text)
    # through predict_proba's length-sorted batches of 5 mixed rows: the same
    for (task, text), p in zip(rows, model.predict_proba(rows, batch_size=5)):
        assert np.abs(p - expected[task][TEXTS.index(text)]).max() < 1e-5
    label, prob = model.predict([("three", "这家酒店很好")])[0]
    assert label in THREE and prob == pytest.approx(expected["three"][0].max(), abs=1e-5)


def test_run_folders_bring_their_own_mlm(tmp_path, targets):
    from few_shot.classifier import PromptClassifier
    from few_shot.multitask import load_tasks
    run = run_folder(tmp_path, "run")  # a P-tuning run: its BiLSTM prompt encoder is folded
    model = load_tasks({"run": run, "sentiment": targets["sentiment"]})  # on the run folder's MLM
    expected = PromptClassifier.load(run).predict_proba(TEXTS)
    got = np.stack(model.predict_proba([("run", t) for t in TEXTS]))
    assert np.abs(got - expected).max() < 1e-5
    assert model.preprocessors["run"].tokenizer is model.preprocessors["sentiment"].tokenizer  # one vocabulary


def test_tasks_must_share_the_mlm_and_keep_it_frozen(tmp_path, targets, mlm):
    from few_shot.lora import save_adapters
    from few_shot.multitask import load_tasks
    odd = prompt_file(tmp_path, "odd", model_ref="other-mlm")
    with pytest.raises(FewShotError, match="task odd .*other-mlm") as e:
        load_tasks({"sentiment": targets["sentiment"], "odd": odd}, mlm)
    assert "\n" not in str(e.value)
    lora, _, _ = tiny_model("lora", lora_rank=2)
    adapters = save_adapters(lora, str(tmp_path / "lora.safetensors"), model_ref="tiny")
    with pytest.raises(FewShotError, match="task ad: .*lora weights, which change the MLM.*serve this task apart"):
        load_tasks({"sentiment": targets["sentiment"], "ad": adapters}, mlm)
    finetune = tmp_path / "finetune"
    finetune.mkdir()
    (finetune / "model.keras").write_bytes(b"")
    (finetune / "metrics.json").write_text(json.dumps({"config": {"method": "finetune"}}))
    with pytest.raises(FewShotError, match="task ft: .*finetune run, which changes the MLM"):
        load_tasks({"ft": str(finetune)}, mlm)
    cls = prompt_file(tmp_path, "cls", method="deep", head="cls")
    with pytest.raises(FewShotError, match="task c .*--head cls"):
        load_tasks({"c": cls}, mlm)
    with pytest.raises(FewShotError, match="task gone: .*no such run folder or prompt file"):
        load_tasks({"gone": str(tmp_path / "gone")}, mlm)
    with pytest.raises(FewShotError, match="task name 'a/b'"):
        load_tasks({"a/b": targets["sentiment"]}, mlm)
    model = load_tasks({"sentiment": targets["sentiment"]}, mlm)
    with pytest.raises(FewShotError, match="task 'nope': not one of"):
        model.predict_proba([("nope", "好")])


def test_task_specs_are_checked_before_tensorflow():
    from few_shot.serving_targets import parse_task_specs
    assert parse_task_specs(["a=x", "b.2=y=z"]) == {"a": "x", "b.2": "y=z"}
    for specs, needle in ((["a"], "NAME=TARGET"), (["=x"], "task name ''"), (["a=x", "a=y"], "given twice"),
                          (["a b=x"], "task name 'a b'"), ([], "no task")):
        with pytest.raises(FewShotError, match=needle):
            parse_task_specs(specs)


def test_no_import_cycle_and_no_tensorflow_in_the_checks():
    import subprocess
    import sys
    code = ("import sys; from few_shot.serving_targets import check_task_target, parse_task_specs; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'loaded TF'")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
