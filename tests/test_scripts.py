"""The two top-level scripts end to end on the bundled model, with tiny settings."""
import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = ["--k", "8", "--epochs", "2", "--passes-per-epoch", "1", "--batch-size", "8", "--max-valid", "24",
         "--max-test", "24", "--maxlen", "64"]
LINE = re.compile(r"^epoch: (\d+) - loss: [\d.]+ - valid_acc: [01]\.\d{4} - test_acc: [01]\.\d{4} - "
                  r"best_valid_acc: [01]\.\d{4} - test_acc_at_best: [01]\.\d{4}(?P<eta> - eta: \d+:\d\d:\d\d)?$", re.M)


def run(script, *args, env=None):
    return subprocess.run([sys.executable, os.path.join(REPO, script), *args], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}, timeout=600)


def assert_one_line_error(result, *needles):
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def ptuning_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ptuning") / "run"
    result = run("few_shot_ptuning.py", *QUICK, "--output", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result


def test_ptuning_logs_each_epoch_and_writes_metrics_and_model(ptuning_run):
    out, result = ptuning_run
    assert [int(m.group(1)) for m in LINE.finditer(result.stdout)] == [1, 2]
    # the remaining time of the fit after each epoch but the last (issue 27)
    assert [bool(m.group("eta")) for m in LINE.finditer(result.stdout)] == [True, False]
    assert "bundled models/zh-bert-mini" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("epochs", "best_epoch", "best_valid_acc", "test_acc_at_best", "config", "seed",
                "trainable_params", "wall_seconds"):
        assert key in metrics
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert set(metrics["epochs"][0]) >= {"epoch", "loss", "valid_acc", "test_acc"}
    best = max(metrics["epochs"], key=lambda e: e["valid_acc"])  # first best on valid
    assert metrics["best_valid_acc"] == best["valid_acc"] and metrics["test_acc_at_best"] == best["test_acc"]
    assert metrics["train_rows"] == 8 and metrics["trainable_params"] > 0
    assert (out / "model.keras").stat().st_size > 0 and (out / "vocab.txt").exists()


def test_refuses_to_overwrite_without_flag(ptuning_run):
    out, _ = ptuning_run
    before = (out / "metrics.json").read_text()
    result = run("few_shot_ptuning.py", *QUICK, "--output", str(out))
    assert_one_line_error(result, str(out), "--overwrite")
    assert (out / "metrics.json").read_text() == before


def test_predict_prints_label_and_probability(ptuning_run):
    out, _ = ptuning_run
    result = run("few_shot_ptuning.py", "--predict", str(out), "这家酒店很好", "太差了")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [l.split("\t") for l in result.stdout.strip().splitlines()]
    assert [r[2] for r in rows] == ["这家酒店很好", "太差了"]
    assert all(r[0] in ("0", "1") and 0.5 <= float(r[1]) <= 1.0 for r in rows)


def test_zero_shot_prints_accuracies():
    result = run("few_shot_ptuning.py", "--zero-shot", "--max-valid", "40", "--max-test", "40")
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"zero-shot - pattern: \[MASK\]满意。\{text\} - valid_acc: [01]\.\d{4} - test_acc: [01]\.\d{4}",
                     result.stdout), result.stdout


def test_finetune_runs_with_trainable_layers(tmp_path):
    result = run("few_shot_finetune.py", *QUICK, "--trainable-layers", "1", "--output", str(tmp_path / "ft"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(LINE.findall(result.stdout)) == 2
    metrics = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert metrics["config"]["trainable_layers"] == 1


@pytest.mark.parametrize("args,needles", [
    (["--model", "no/such/folder"], ["no/such/folder", "folder not found"]),
    (["--pattern", "[MASK]{tekst}"], ["{tekst} is not a field", "text"]),
    (["--verbalizer", "0:不,1:龘"], ["not in the vocabulary"]),
    (["--verbalizer", "1:很,2:不"], ["'0'", "not in the verbalizer"]),
    (["--data", "no_such_data_dir"], ["no_such_data_dir"]),
])
def test_bad_input_is_one_line_and_exit_2(args, needles, tmp_path):
    result = run("few_shot_ptuning.py", *QUICK, "--output", str(tmp_path / "o"), *args)
    assert_one_line_error(result, *needles)


def test_finetune_rejects_too_many_trainable_layers(tmp_path):
    result = run("few_shot_finetune.py", *QUICK, "--trainable-layers", "9", "--output", str(tmp_path / "o"))
    assert_one_line_error(result, "--trainable-layers 9", "4 encoder layers")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_workers(*args):
    """Two MultiWorkerMirroredStrategy workers of few_shot_ptuning.py on 127.0.0.1 (fresh ports)."""
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen([sys.executable, "few_shot_ptuning.py", *args, "--strategy", "multiworker"],
                                      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def test_multiworker_two_workers_on_loopback(tmp_path):
    """MultiWorkerMirroredStrategy with 2 workers on 127.0.0.1; worker 0 writes the run."""
    procs = start_workers(*QUICK, "--epochs", "1", "--output", str(tmp_path / "mw"))
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out[-2000:] + err[-3000:]
    assert "MultiWorkerMirroredStrategy with 2 replica(s)" in outs[0][0]
    assert len(LINE.findall(outs[0][0])) == 1 and len(LINE.findall(outs[1][0])) == 1
    assert (tmp_path / "mw" / "metrics.json").exists() and (tmp_path / "mw" / "model.keras").exists()


def test_multiworker_worker_killed_then_cluster_resumed(tmp_path):
    """TensorFlow's fault-tolerance recipe: worker 1 is killed (SIGKILL) during epoch 2; worker 0
    stops with one line and status 1; both restarted with --resume restore epoch 1 from their own
    BackupAndRestore folders and finish epochs 2 and 3."""
    out = tmp_path / "mw"
    args = [*QUICK, "--epochs", "3", "--passes-per-epoch", "60", "--output", str(out)]
    chief, worker = start_workers(*args)
    seen = []
    for line in chief.stdout:  # Keras prints "Epoch 2/3" when epoch 2 begins (epoch 1's backups are written)
        seen.append(line)
        if line.startswith("Epoch 2/3"):
            break
    assert any(LINE.match(line) for line in seen), "".join(seen)
    time.sleep(1.0)  # into epoch 2 (60 steps, several seconds)
    worker.kill()
    worker.wait(timeout=60)
    rest, err = chief.communicate(timeout=300)
    assert chief.returncode == 1, "".join(seen) + rest + err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
    assert "worker of the cluster was lost during epoch 2" in errors[0] and "--resume" in errors[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "failed" and [e["epoch"] for e in metrics["epochs"]] == [1]
    assert (out / "backup").is_dir() and (out / "backup-worker-1").is_dir()

    procs = start_workers(*args, "--resume")
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (stdout, stderr) in zip(procs, outs):
        assert p.returncode == 0, stdout[-2000:] + stderr[-3000:]
        assert [int(m.group(1)) for m in LINE.finditer(stdout)] == [2, 3], stdout  # epoch 1 restored, not redone
    assert "resuming" in outs[0][0] and "after epoch 1" in outs[0][0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert (out / "model.keras").exists()
    assert not (out / "backup").exists() and not (out / "backup-worker-1").exists()  # removed when done
