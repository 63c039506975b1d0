"""SIGINT / SIGTERM anywhere in a command: one line, exit status 128 + the signal (130 / 143), the best
finished epoch saved, nothing half-written left behind; and Ctrl-C is obeyed within seconds."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = ["--k", "8", "--batch-size", "8", "--maxlen", "64"]


def start(*args, cwd=REPO):
    return subprocess.Popen([sys.executable, os.path.join(REPO, "few_shot_ptuning.py"), *args], cwd=cwd,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def signal_when(process, prefix, signum, delay=0.0):
    """Send `signum` `delay` s after a stdout line starting with `prefix` -> (stdout so far, time sent)."""
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith(prefix):
            time.sleep(delay)
            sent = time.monotonic()
            process.send_signal(signum)
            return "".join(seen), sent
    raise AssertionError(f"no line starting with {prefix!r}: {''.join(seen)[-2000:]}")


def one_line(err):
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("warning: ")]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 1.5])
def test_sigterm_while_fit_first_traces_the_model(tmp_path, delay):
    """The window in which Keras traces the train step inside `fit` (it re-raises errors with their text
    only): the signal still ends the run with one line and 143, and no half-made run folder stays."""
    out = tmp_path / "run"
    p = start(*QUICK, "--epochs", "2", "--max-valid", "24", "--max-test", "24", "--output", str(out))
    signal_when(p, "trainable parameters", signal.SIGTERM, delay)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 143, err[-3000:]
    assert "interrupted" in one_line(err)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
def test_ctrl_c_during_evaluation_exits_within_5_s_with_the_best_epoch_saved(tmp_path):
    out = tmp_path / "run"
    # one training step per epoch, then 2 x 2111 rows of evaluation: epoch 2's evaluation takes seconds
    p = start(*QUICK, "--epochs", "4", "--passes-per-epoch", "1", "--output", str(out))
    _, sent = signal_when(p, "epoch: 1 -", signal.SIGINT, delay=2.0)
    _, err = p.communicate(timeout=300)
    waited = time.monotonic() - sent
    assert p.returncode == 130, err[-3000:]
    assert "interrupted during epoch 2" in one_line(err) and "best epoch so far (1)" in err
    assert waited < 5.0, waited
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["best_epoch"] == 1
    assert (out / "model.keras").stat().st_size > 0 and (out / "prompt.safetensors").exists()


@pytest.mark.slow
def test_sigterm_during_model_load_prints_the_line(tmp_path):
    p = start("--zero-shot", "--max-valid", "24", "--max-test", "24")
    signal_when(p, "model:", signal.SIGTERM)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 143 and "interrupted (SIGTERM)" in one_line(err), err[-3000:]


@pytest.mark.slow
def test_sigint_during_export_leaves_no_folder(tmp_path):
    run = tmp_path / "run"
    trained = start(*QUICK, "--epochs", "1", "--passes-per-epoch", "1", "--max-valid", "8", "--max-test", "8",
                    "--output", str(run))
    trained.communicate(timeout=300)
    assert trained.returncode == 0
    target = tmp_path / "serving" / "sentiment" / "1"
    p = start("--export", str(run), str(target))
    deadline = time.monotonic() + 120
    while not (target.parent.exists() and any(target.parent.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)  # the export writes into a temporary folder beside the target: interrupt it there
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 130 and "interrupted (SIGINT)" in one_line(err), err[-3000:]
    assert not (tmp_path / "serving").exists()  # the folders the export made are gone with it
