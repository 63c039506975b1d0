"""Semi-supervised training (--semi / --unlabeled): unlabelled reading, text-only masking, the
extra MLM loss (value and effect on the trained weights), and both scripts end to end."""
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from conftest import TINY_ROWS, tiny_model  # noqa: E402
from few_shot.config import RunConfig  # noqa: E402
from few_shot.datasets import read_unlabeled, unlabeled_remainder, unlabeled_texts  # noqa: E402
from few_shot.errors import FewShotError  # noqa: E402
from few_shot.semi import SemiSupervisedModel, UnlabeledSet, masked_lm_loss, semi_batches  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = TINY_ROWS[:4]
TEXTS = ["我们满意这家酒店的服务", "房间太吵了不好", "还可以的一个酒店", "服务很差", "这家店房间好",
         "我们还满意", "太差了", "酒店服务还可以"]
QUICK = ["--k", "8", "--epochs", "2", "--passes-per-epoch", "1", "--batch-size", "8", "--max-valid", "24",
         "--max-test", "24", "--maxlen", "64"]


def build(train_backbone=False, seed=0, objective="label"):
    """A tiny dropout-free P-tuning (MLP encoder) or finetune model, identical for equal seeds ->
    (model, preprocessor)."""
    model, _, preprocessor = tiny_model("finetune" if train_backbone else "mlp", seed=seed, objective=objective)
    return model, preprocessor


def batches(preprocessor, seed=0):
    labelled = preprocessor.encode(ROWS)
    unlabeled = UnlabeledSet(TEXTS, preprocessor, seed=seed)
    return labelled, unlabeled, next(semi_batches(labelled, unlabeled, 4, 8, seed))


# -- unlabelled texts ---------------------------------------------------------------------------

def test_read_unlabeled_plain_tsv_and_json_lines(tmp_path):
    path = tmp_path / "u.txt"
    path.write_text("\ufeff第一条\n\n第二条\t1\n" + json.dumps({"sentence": "第三条", "label": "x"},
                                                              ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_unlabeled(str(path)) == ["第一条", "第二条", "第三条"]
    assert unlabeled_remainder([("a", "1"), ("b", "0"), ("c", "1")], [("b", "0")]) == ["a", "c"]


def test_where_the_unlabeled_texts_come_from(tmp_path):
    def args(**kw):
        return RunConfig(data=str(tmp_path), **kw)

    def jsonl(name, rows):
        (tmp_path / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")

    jsonl("train_few_all.json", [{"sentence": t, "label": "1"} for t in ("甲", "乙", "丙")])
    assert unlabeled_texts(args(), [("甲", "1")]) == (None, None)
    assert unlabeled_texts(args(semi=True, fewclue_fold="0"), [("甲", "1")]) == (
        ["乙", "丙"], "the rest of the train split")
    jsonl("unlabeled.json", [{"sentence": t} for t in ("子", "丑", "寅")])
    assert unlabeled_texts(args(semi=True, fewclue_fold="0", max_unlabeled=2), []) == (
        ["子", "丑"], str(tmp_path / "unlabeled.json"))
    own = tmp_path / "own.txt"
    own.write_text("卯\n", encoding="utf-8")
    assert unlabeled_texts(args(unlabeled=str(own), fewclue_fold="0"), []) == (["卯"], str(own))


@pytest.mark.parametrize("content, needle", [(b"", "no texts"), (b"\xff\xfe\xb2\n", "not UTF-8")])
def test_read_unlabeled_errors_are_one_line(tmp_path, content, needle):
    path = tmp_path / "u.txt"
    path.write_bytes(content)
    for bad, expected in ((path, needle), (tmp_path / "missing.txt", "no such file")):
        with pytest.raises(FewShotError) as e:
            read_unlabeled(str(bad))
        assert expected in str(e.value) and "\n" not in str(e.value)


def test_only_text_tokens_are_masked_and_targets_are_the_originals():
    _, preprocessor = build()
    tok = preprocessor.tokenizer
    data = UnlabeledSet(TEXTS * 20, preprocessor, seed=3)
    before = preprocessor.encode_row(TEXTS[0]).text_positions[0]  # [CLS], 8 prompt slots, [MASK]
    after = 1  # [SEP]
    assert before == 10
    inputs, _ = data.batch(np.arange(len(data)))
    chosen = masked = 0
    for i in range(len(data)):
        original, ids = data.token_ids[i], inputs["mlm_token_ids"][i]
        n = len(original)
        w = inputs["mlm_weights"][i] > 0
        positions, labels = inputs["mlm_positions"][i][w], inputs["mlm_labels"][i][w]
        assert len(positions) >= 1
        assert np.all((positions >= before) & (positions < n - after))  # the text part only
        np.testing.assert_array_equal(labels, original[positions])
        untouched = np.setdiff1d(np.arange(n), positions)
        np.testing.assert_array_equal(ids[untouched], original[untouched])  # prompt, label [MASK], CLS/SEP kept
        assert np.all(ids[n:] == tok.pad_id)
        chosen += len(positions)
        masked += int(np.sum(ids[positions] == tok.mask_id))
    text_tokens = int(sum(len(t) - before - after for t in data.token_ids))
    assert 0.1 < chosen / text_tokens < 0.3
    assert 0.65 < masked / chosen < 0.95  # 80% [MASK], the rest random or unchanged
    again, _ = data.batch(np.arange(len(data)))
    assert not np.array_equal(again["mlm_positions"], inputs["mlm_positions"])  # fresh masking per draw


def test_mlm_loss_at_the_label_slot_is_the_vocab_objective():
    """The MLM loss of predicting label word c at the pattern's [MASK] slot equals -(the
    vocab-objective score of c): both read the same prompted hidden state and head."""
    model, preprocessor = build(objective="vocab")
    label_ids = preprocessor.label_token_ids
    labelled = preprocessor.encode(ROWS)
    inputs, _ = labelled.batch(np.arange(len(ROWS)))
    scores = keras.ops.convert_to_numpy(model(inputs, training=True))  # full-vocab log-probs [B, C]
    for c in range(2):
        for row in range(len(ROWS)):
            mlm = {"mlm_token_ids": inputs["token_ids"][row:row + 1],
                   "mlm_segment_ids": inputs["segment_ids"][row:row + 1],
                   "mlm_positions": inputs["mask_positions"][row:row + 1],
                   "mlm_labels": np.array([[label_ids[c][0]]]), "mlm_weights": np.ones((1, 1), "float32")}
            loss = float(keras.ops.convert_to_numpy(masked_lm_loss(model, mlm, training=True)))
            assert loss == pytest.approx(-scores[row, c], abs=1e-4)


def test_semi_adds_the_mlm_loss_to_the_labelled_loss():
    model, preprocessor = build()
    _, _, (x, y) = batches(preprocessor)
    trainer = SemiSupervisedModel(model, mlm_weight=0.5)
    plain_scores = keras.ops.convert_to_numpy(model(x, training=True))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(trainer(x, training=True)), plain_scores, atol=1e-6)
    assert len(trainer.losses) == 1
    mlm = float(keras.ops.convert_to_numpy(masked_lm_loss(model, x, training=True)))
    assert float(keras.ops.convert_to_numpy(trainer.losses[0])) == pytest.approx(0.5 * mlm, rel=1e-5)
    assert mlm > 1.0
    trainer(x, training=False)
    assert not trainer.losses  # evaluation: label scores only
    # one compiled training step: the reported loss is the labelled loss + 0.5 x MLM loss
    trainer.compile(optimizer=keras.optimizers.SGD(0.0), loss=model.loss_function())
    plain, *_ = build()
    plain.compile(optimizer=keras.optimizers.SGD(0.0), loss=plain.loss_function())
    logs = trainer.train_on_batch(x, y, return_dict=True)
    semi_loss = float(logs["loss"])
    assert float(logs["mlm_loss"]) == pytest.approx(mlm, rel=1e-4)
    plain_loss = float(plain.train_on_batch({k: x[k] for k in ("token_ids", "segment_ids", "mask_positions")}, y))
    assert semi_loss - plain_loss == pytest.approx(0.5 * mlm, rel=1e-4)


@pytest.mark.parametrize("train_backbone", [False, True], ids=["ptuning", "finetune"])
def test_semi_changes_what_is_trained(train_backbone):
    """The same step with and without the unlabelled batch moves the trainable weights differently;
    with P-tuning's frozen backbone the MLM loss trains the prompt encoder only."""
    results = {}
    for semi in (False, True):
        model, preprocessor = build(train_backbone)
        _, _, (x, y) = batches(preprocessor)
        frozen_before = [keras.ops.convert_to_numpy(w) for w in model.non_trainable_weights]
        trainer = SemiSupervisedModel(model) if semi else model
        trainer.compile(optimizer=keras.optimizers.Adam(1e-2), loss=model.loss_function())
        if not semi:
            x = {k: x[k] for k in ("token_ids", "segment_ids", "mask_positions")}
        for _ in range(2):
            trainer.train_on_batch(x, y)
        for before, w in zip(frozen_before, model.non_trainable_weights):
            np.testing.assert_array_equal(before, keras.ops.convert_to_numpy(w))
        results[semi] = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    assert len(results[False]) == len(results[True])
    assert max(float(np.abs(a - b).max()) for a, b in zip(results[False], results[True])) > 1e-4


# -- the scripts --------------------------------------------------------------------------------

def run(script, *args):
    return subprocess.run([sys.executable, os.path.join(REPO, script), *args], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)


@pytest.mark.slow
def test_ptuning_semi_runs_logs_epochs_and_predicts(tmp_path):
    out = tmp_path / "run"
    result = run("few_shot_ptuning.py", *QUICK, "--semi", "--max-unlabeled", "64", "--output", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "semi-supervised: + 1.0 x MLM loss on 64 unlabelled texts (the rest of the train split)" in result.stdout
    assert [line.split(" - ")[0] for line in result.stdout.splitlines() if line.startswith("epoch: ")] == \
        ["epoch: 1", "epoch: 2"]
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["unlabeled_rows"] == 64 and metrics["config"]["semi"] is True and len(metrics["epochs"]) == 2
    for epoch in metrics["epochs"]:  # the total loss = labelled loss + 1.0 x the MLM loss
        assert 0 < epoch["mlm_loss"] < epoch["loss"]
    predicted = run("few_shot_ptuning.py", "--predict", str(out), "这家酒店很好")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert predicted.stdout.strip().endswith("这家酒店很好")


@pytest.mark.slow
def test_finetune_with_an_unlabeled_file(tmp_path):
    path = tmp_path / "unlabeled.txt"
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    result = run("few_shot_finetune.py", *QUICK, "--epochs", "1", "--trainable-layers", "1", "--unlabeled",
                 str(path), "--mlm-weight", "0.5", "--output", str(tmp_path / "run"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"semi-supervised: + 0.5 x MLM loss on {len(TEXTS)} unlabelled texts ({path})" in result.stdout
    assert "epoch: 1 - loss:" in result.stdout


@pytest.mark.parametrize("args, needle", [(["--unlabeled", "/nonexistent/u.txt"], "no such file"),
                                          (["--semi", "--mlm-weight", "0"], "--mlm-weight"),
                                          (["--semi", "--k", "16883"], "no rows beyond")])
def test_bad_semi_input_is_one_line_and_exit_2(args, needle, tmp_path):
    result = run("few_shot_ptuning.py", *args, "--output", str(tmp_path / "run"))
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and needle in errors[0] and "Traceback" not in result.stderr, result.stderr
