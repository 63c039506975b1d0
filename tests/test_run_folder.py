"""The run folder: --overwrite keeps the user's files, default folders are unique, an interrupted
run saves its best epoch."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from few_shot.errors import FewShotError
from few_shot.run_folder import RUN_FILES, RunFolder, check_output

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = ["--k", "8", "--batch-size", "8", "--max-valid", "24", "--max-test", "24", "--maxlen", "64"]


def user_files(folder):
    (folder / "notes.txt").write_text("mine")
    (folder / "sub").mkdir()
    (folder / "sub" / "thesis.tex").write_text("\\documentclass{article}")


def test_overwrite_removes_only_run_files(tmp_path):
    user_files(tmp_path)
    for name in ("metrics.json", "model.keras", "vocab.txt"):
        (tmp_path / name).write_text("old run")
    (tmp_path / "tensorboard" / "train").mkdir(parents=True)
    (tmp_path / "tensorboard" / "train" / "events.out.tfevents.1796.host").write_text("x")
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "training_metadata.json").write_text("{}")
    folder = RunFolder.prepare(str(tmp_path), overwrite=True)
    assert not folder.created
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "sub"]
    assert (tmp_path / "sub" / "thesis.tex").read_text() == "\\documentclass{article}"


def test_non_empty_folder_refused_without_overwrite(tmp_path):
    user_files(tmp_path)
    with pytest.raises(FewShotError, match="--overwrite"):
        RunFolder.prepare(str(tmp_path), overwrite=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_output_that_is_a_file_or_unwritable_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(FewShotError, match="is a file"):
        check_output(str(tmp_path / "f"), overwrite=True)
    with pytest.raises(FewShotError, match="is a file"):
        check_output(str(tmp_path / "f" / "run"), overwrite=True)
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "ro").mkdir(mode=0o555)
        with pytest.raises(FewShotError, match="not writable"):
            check_output(str(tmp_path / "ro" / "run"), overwrite=False)


def test_default_folders_started_in_the_same_second_differ(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda fmt: "20261204-120000")
    paths = [RunFolder.unique(str(tmp_path), "ptuning").path for _ in range(3)]
    assert len(set(paths)) == 3 and all(os.path.isdir(p) for p in paths)
    assert [os.path.basename(p) for p in paths] == ["ptuning-20261204-120000", "ptuning-20261204-120000-2",
                                                    "ptuning-20261204-120000-3"]


def test_discard_if_empty_removes_only_a_folder_this_run_made(tmp_path):
    made = RunFolder.unique(str(tmp_path), "x")
    made.discard_if_empty()
    assert not os.path.exists(made.path)
    kept = tmp_path / "user"
    kept.mkdir()
    RunFolder.prepare(str(kept), overwrite=True).discard_if_empty()
    assert kept.is_dir()


def test_run_files_cover_what_a_run_writes():
    assert {"metrics.json", "model.keras", "prompt.safetensors", "vocab.txt"} <= set(RUN_FILES)


def script(*args, **kwargs):
    return subprocess.Popen([sys.executable, os.path.join(REPO, "few_shot_ptuning.py"), *args], cwd=REPO,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.slow
def test_overwrite_with_bad_argument_keeps_everything(tmp_path):
    """A run refused for a bad argument (--maxlen too short for the pattern) deletes nothing: not the
    user's files, not the previous run's."""
    user_files(tmp_path)
    (tmp_path / "metrics.json").write_text('{"old": 1}')
    p = script(*QUICK, "--epochs", "1", "--passes-per-epoch", "1", "--maxlen", "5", "--output", str(tmp_path),
               "--overwrite")
    out, err = p.communicate(timeout=600)
    assert p.returncode == 2 and "Traceback" not in err and "maxlen" in err, err[-2000:]
    assert sorted(os.listdir(tmp_path)) == ["metrics.json", "notes.txt", "sub"]
    assert (tmp_path / "metrics.json").read_text() == '{"old": 1}'


@pytest.mark.slow
def test_failed_run_leaves_no_empty_folder(tmp_path):
    p = script(*QUICK, "--epochs", "1", "--maxlen", "5", "--output", str(tmp_path / "new"))
    _, err = p.communicate(timeout=600)
    assert p.returncode == 2, err[-2000:]
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_sigint_in_epoch_2_saves_epoch_1(tmp_path):
    out = tmp_path / "run"
    p = script(*QUICK, "--epochs", "5", "--passes-per-epoch", "30", "--output", str(out))
    lines = []
    for line in p.stdout:  # wait for epoch 1's line, then interrupt during epoch 2
        lines.append(line)
        if line.startswith("epoch: 1 -"):
            time.sleep(1.0)
            p.send_signal(signal.SIGINT)
            break
    rest, err = p.communicate(timeout=600)
    assert p.returncode == 130, "".join(lines) + rest + err[-3000:]
    assert "Traceback" not in err and "interrupted during epoch 2" in err, err[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and [e["epoch"] for e in metrics["epochs"]] == [1]
    assert metrics["best_epoch"] == 1
    assert (out / "model.keras").stat().st_size > 0 and (out / "vocab.txt").exists()
    assert (out / "prompt.safetensors").exists()

    # --resume continues from the last finished epoch (keras BackupAndRestore) and finishes the run
    refused = script(*QUICK, "--epochs", "3", "--passes-per-epoch", "30", "--output", str(out))
    _, err = refused.communicate(timeout=600)
    assert refused.returncode == 2 and "--resume" in err, err[-2000:]
    resumed = script(*QUICK, "--epochs", "3", "--passes-per-epoch", "30", "--output", str(out), "--resume")
    stdout, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stdout[-3000:] + err[-3000:]
    assert "resuming" in stdout and [int(l.split()[1]) for l in stdout.splitlines() if l.startswith("epoch: ")] \
        == [2, 3]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    log = (out / "log.csv").read_text().strip().splitlines()
    assert len(log) == 1 + 3  # header + epochs 1 (before) and 2, 3
    assert log[0] == "epoch,loss,test_acc,valid_acc"  # no all-NA val_ columns
    assert (out / "curves.png").stat().st_size > 0 and any((out / "tensorboard").rglob("events.*"))
    assert not (out / "backup").exists() and not (out / "best_weights.npz").exists()
    done = script(*QUICK, "--epochs", "3", "--output", str(out), "--resume")
    _, err = done.communicate(timeout=600)
    assert done.returncode == 2 and "has finished" in err


@pytest.mark.slow
def test_early_stopping_stops_when_valid_accuracy_stalls(tmp_path):
    out = tmp_path / "run"
    p = script(*QUICK, "--epochs", "6", "--passes-per-epoch", "1", "--lr", "1e-12", "--early-stopping", "1",
               "--output", str(out))
    stdout, err = p.communicate(timeout=600)
    assert p.returncode == 0, stdout[-3000:] + err[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]  # epoch 2 is no better: patience 1 ends the run
    assert metrics["status"] == "completed"
