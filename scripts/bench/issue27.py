#!/usr/bin/env python
"""Issue 27 measurements (run from the repo root, one at a time, `nice -n 10` on a shared machine).

    python scripts/bench/issue27.py memory [RUNS]     VmRSS/VmHWM after each of RUNS (8) tiny P-tuning
                                                      trainings through experiments.run_one in one process
    python scripts/bench/issue27.py tfidf [TASKS]     time, accuracies and C of the TF-IDF reference on
                                                      FewCLUE fold 0 (csldcp,iflytek,tnews); wrap in
                                                      /usr/bin/time -v for the peak RSS
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
FEWCLUE = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data",
                                        "fewclue"))


def status():
    with open("/proc/self/status") as f:
        return {l.split(":")[0]: int(l.split()[1]) // 1024 for l in f if l.startswith(("VmRSS", "VmHWM"))}


def memory(runs=8):
    from few_shot.config import RunConfig
    from few_shot.experiments import run_one
    out = tempfile.mkdtemp(prefix="issue27-")
    base = RunConfig(method="ptuning", k=8, epochs=1, passes_per_epoch=1, max_valid=16, max_test=16, maxlen=64)
    start = time.time()
    for i in range(runs):
        run_one(base.replace(seed=i + 1), os.path.join(out, f"run{i + 1}"))
        mb = status()
        print(f"run {i + 1}: VmRSS {mb['VmRSS']} MB, VmHWM {mb['VmHWM']} MB, {time.time() - start:.0f} s", flush=True)


def tfidf(tasks="csldcp,iflytek,tnews"):
    from few_shot.config import RunConfig
    from few_shot.experiments import classical_reference
    for task in tasks.split(","):
        config = RunConfig(method="finetune", task=task, data=os.path.join(FEWCLUE, task), fewclue_fold="0")
        start = time.time()
        ref = classical_reference(config)
        print(f"{task}: {time.time() - start:.1f} s - valid_acc {ref['valid_acc']:.4f} - test_acc {ref['test_acc']:.4f}"
              f" - C {ref['C']}", flush=True)


if __name__ == "__main__":
    what, *rest = sys.argv[1:] or ["memory"]
    {"memory": lambda: memory(*map(int, rest)), "tfidf": lambda: tfidf(*rest)}[what]()
