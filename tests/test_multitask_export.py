"""The multi-task SavedModel (few_shot/multitask_export.py, `--export-tasks`): in a fresh process, plain
TensorFlow cannot load it (the TF Text tokenizer ops are not registered); with tensorflow_text imported
(as tensorflow_model_server links them in) its mixed signature (task, text) and its per-task signatures give
the single-task model's probabilities."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np

from test_multitask import TEXTS, mlm, targets  # noqa: F401  (mlm, targets: the fixtures)

LOAD = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    folder, rows, out = sys.argv[1], json.loads(sys.argv[2]), {}
    try:  # plain TensorFlow, as `saved_model_cli run` is
        tf.saved_model.load(folder)
        out["plain"] = "loaded"
    except Exception as e:
        out["plain"] = f"{type(e).__name__}: {e}"
    import tensorflow_text  # noqa: F401  the tokenizer ops, as tensorflow_model_server has them
    model = tf.saved_model.load(folder)
    out["signatures"] = sorted(model.signatures)
    mixed = model.signatures["serving_default"](task=tf.constant([t for t, _ in rows]),
                                                text=tf.constant([x for _, x in rows]))
    out["mixed"] = {k: v.numpy().tolist() if v.dtype != tf.string else
                    [[s.decode() for s in r] if v.shape.rank == 2 else r.decode() for r in v.numpy()]
                    for k, v in mixed.items()}
    out["tasks"] = {}
    for name in sorted({t for t, _ in rows}):
        texts = [x for t, x in rows if t == name]
        got = model.signatures[name](text=tf.constant(texts))
        out["tasks"][name] = {"probabilities": got["probabilities"].numpy().tolist(),
                              "label": [s.decode() for s in got["label"].numpy()]}
    try:
        model.signatures["serving_default"](task=tf.constant(["nope"]), text=tf.constant(["好"]))
    except Exception as e:
        out["unknown"] = str(e)
    json.dump(out, open(sys.argv[3], "w"))
""")


def test_one_saved_model_serves_every_task(tmp_path, mlm, targets):  # noqa: F811
    from few_shot.classifier import PromptClassifier
    from few_shot.multitask import load_tasks
    from few_shot.multitask_export import export_multitask
    model = load_tasks(targets, mlm)
    folder = export_multitask(model, str(tmp_path / "tasks" / "1"))
    meta = json.loads((tmp_path / "tasks" / "1" / "assets.extra" / "few_shot.json").read_text(encoding="utf-8"))
    assert meta["task_signatures"] == list(targets) and meta["tasks"]["three"]["labels"] == ["0", "1", "2"]
    rows = [(task, text) for text in TEXTS for task in targets]  # every task in every position
    done = subprocess.run([sys.executable, "-c", LOAD, folder, json.dumps(rows), str(tmp_path / "out.json")],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert "Op type not registered" in out["plain"] and "RegexSplitWithOffsets" in out["plain"], out["plain"]
    assert out["signatures"] == sorted(["serving_default", *targets])
    want = {t: PromptClassifier.load(path, mlm).predict_proba(TEXTS) for t, path in targets.items()}
    mixed = out["mixed"]
    for k, (task, text) in enumerate(rows):
        expected, n = want[task][TEXTS.index(text)], len(want[task][0])
        assert mixed["num_labels"][k] == n
        assert np.abs(np.asarray(mixed["probabilities"][k][:n]) - expected).max() < 1e-5, (task, text)
        assert mixed["probabilities"][k][n:] == [0.0] * (3 - n)
        labels = model.labels(task)
        assert mixed["labels"][k] == labels + [""] * (3 - n) and mixed["label"][k] == labels[int(expected.argmax())]
    for task, got in out["tasks"].items():
        assert np.abs(np.asarray(got["probabilities"]) - want[task]).max() < 1e-5, task
    assert "unknown task; the tasks are sentiment, three, topics, deep, changed" in out["unknown"]


def test_export_tasks_refuses_pair_patterns_and_used_folders_before_tensorflow(tmp_path):
    from test_scripts import assert_one_line_error, run
    from few_shot.portable import write_tensors, FORMAT, TENSOR
    pair = write_tensors(str(tmp_path / "pair.safetensors"), {TENSOR: np.zeros((1, 16), "float32")}, FORMAT,
                         {"pattern": "[u1][MASK]{sentence1}[SEP]{sentence2}", "verbalizer": {"0": "不", "1": "很"},
                          "prompt_token_ids": [1], "label_token_ids": [[1], [2]], "maxlen": 32, "model": "tiny",
                          "hidden_size": 16, "vocab_size": 100})
    assert_one_line_error(run("few_shot_ptuning.py", "--export-tasks", str(tmp_path / "out"), f"bustm={pair}"),
                          "task bustm", "export supports one text field")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "mine.txt").write_text("x")
    assert_one_line_error(run("few_shot_ptuning.py", "--export-tasks", str(tmp_path / "used"), f"a={pair}"),
                          "not empty")
    assert_one_line_error(run("few_shot_ptuning.py", "--export-tasks", str(tmp_path / "out")), "OUT_DIR TASK=TARGET")
    assert not (tmp_path / "out").exists() and os.listdir(tmp_path / "used") == ["mine.txt"]
