"""Memory of the experiment scripts (issue 27): many trainings in one process through
experiments.run_one must not grow with the number of runs.

Before the fix every trained run left ~90 MB behind on the bundled model (the frozen MLM and the
traced train step, held by TensorFlow's global gradient registry; few_shot/compat.py,
released_gradients): the peak RSS of this test's child process grew 1307 -> 1577 MB from run 3 to
run 6 (run 1: 1104 MB). With the fix it grew 1133 -> 1139 MB. The bound, 150 MB for three runs,
fails as soon as two runs in three leak as before, and leaves room for allocator noise (< 40 MB seen)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

RUNS = 6
BOUND_MB = 150

CHILD = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from few_shot.config import RunConfig
from few_shot.experiments import run_one

def status():
    with open("/proc/self/status") as f:
        return {l.split(":")[0]: int(l.split()[1]) // 1024 for l in f if l.startswith(("VmRSS", "VmHWM"))}

base = RunConfig(method="ptuning", k=8, epochs=1, passes_per_epoch=1, max_valid=16, max_test=16, maxlen=64)
for i in range(int(sys.argv[3])):
    metrics, reused = run_one(base.replace(seed=i + 1), os.path.join(sys.argv[2], f"run{i + 1}"))
    assert not reused and metrics["status"] == "completed"
    print(json.dumps({"run": i + 1, **status()}), flush=True)
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isfile("/proc/self/status"), reason="reads VmHWM from /proc (Linux)")
def test_peak_rss_flat_over_runs_in_one_process(tmp_path):
    # a child process: the peak of this one (pytest, earlier tests) says nothing about the runs
    result = subprocess.run([sys.executable, "-c", CHILD, REPO_ROOT, str(tmp_path), str(RUNS)], capture_output=True,
                            text=True, timeout=900, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    peaks = {r["run"]: r["VmHWM"] for r in map(json.loads, (l for l in result.stdout.splitlines() if l.startswith("{")))}
    assert sorted(peaks) == list(range(1, RUNS + 1))
    growth = peaks[RUNS] - peaks[3]
    assert growth < BOUND_MB, f"peak RSS grew {growth} MB from run 3 to run {RUNS}: {peaks}"
    # each run kept its layout: a folder with metrics.json and model.keras, its stdout in <run_dir>.log
    for i in range(1, RUNS + 1):
        assert (tmp_path / f"run{i}" / "model.keras").is_file() and (tmp_path / f"run{i}" / "metrics.json").is_file()
        assert "best epoch 1" in (tmp_path / f"run{i}.log").read_text(encoding="utf-8")
