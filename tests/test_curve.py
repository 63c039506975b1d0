"""scripts/fewshot_curve.py, tnews.py and ablations.py end to end on a tiny random model and a
few dozen rows: outputs written, finished runs reused, bad input a one-line exit 2."""
import csv
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))

CHARS = list("很不好差酒店服务满意这家的是了我们一个房间还可以太吵。新闻条体育财经")
VOCAB = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"] + CHARS
FAST = ["--epochs", "2", "--passes-per-epoch", "1", "--batch-size", "4", "--maxlen", "32", "--strategy", "none"]


def tiny_rows(n, seed):
    import numpy as np
    rng = np.random.default_rng(seed)
    body = list("酒店服务房间这家我们一个还可以")
    rows, seen = [], set()
    while len(rows) < n:
        label = str(len(rows) % 2)
        text = "".join(rng.choice(body, size=5)) + ("很好" if label == "1" else "太差")
        if text not in seen:
            seen.add(text)
            rows.append((text, label))
    return rows


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """-> (model folder: a tiny random BertMaskedLM exported as HF, data folder: train/valid/test tsv)."""
    import keras

    from few_shot import BertMaskedLM
    from few_shot.checkpoints import export_hf
    root = tmp_path_factory.mktemp("tiny")
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    keras.utils.set_random_seed(0)
    bert = BertMaskedLM(vocab_size=len(VOCAB), hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                        max_position=64, dropout=0.0)
    export_hf(bert, str(vocab), str(root / "model"))
    data = root / "data"
    data.mkdir()
    for split, n, seed in (("train", 24, 0), ("valid", 8, 1), ("test", 8, 2)):
        (data / f"{split}.tsv").write_text("".join(f"{t}\t{l}\n" for t, l in tiny_rows(n, seed)), encoding="utf-8")
    return str(root / "model"), str(data)


def run_script(script, *args):
    return subprocess.run([sys.executable, os.path.join(REPO, "scripts", script), *args], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)


def test_curve_writes_results_and_resumes(tiny_setup, tmp_path, capsys):
    model, data = tiny_setup
    out = tmp_path / "curve"
    cmd = ["--model", model, "--data", data, "--ks", "0,4", "--methods", "zeroshot,ptuning,prompt", "--seeds", "1",
           *FAST, "--output", str(out)]
    first = run_script("fewshot_curve.py", *cmd)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for name in ("results.json", "results.csv", "curve.png", "epochs_ptuning_k4.png", "epochs_prompt_k4.png"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert {(r["method"], r["k"], r["seed"]) for r in results["runs"]} == {
        ("zeroshot", 0, 0), ("ptuning", 4, 1), ("prompt", 4, 1), ("tfidf-lr", 4, 1)}  # + the classical reference
    assert all(0.0 <= r["test_acc"] <= 1.0 for r in results["runs"])
    by = {r["method"]: r for r in results["runs"]}
    assert by["ptuning"]["train_rows"] == 4 and by["prompt"]["trainable_params"] < by["ptuning"]["trainable_params"]
    with open(out / "results.csv", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == 4
    run_dir = out / "runs" / "ptuning_k4_s1"
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["config"]["k"] == 4 and metrics["config"]["seed"] == 1 and metrics["config"]["epochs"] == 2
    assert metrics["config"]["lr"] == 1e-3  # the main script's default
    assert (run_dir / "prompt.safetensors").exists()  # portable prompt beside model.keras
    assert "portable prompt:" in (out / "runs" / "ptuning_k4_s1.log").read_text(encoding="utf-8")
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/metrics.json")}

    # --predict on the portable prompt (its MLM found from the path it stores) = --predict on the run folder
    from few_shot.scoring import predict_command
    texts = [t for t, _ in tiny_rows(6, 9)]
    predict_command([str(run_dir)], texts)
    from_run = capsys.readouterr().out
    predict_command([str(run_dir / "prompt.safetensors")], texts)
    from_prompt = capsys.readouterr().out
    assert len(from_run.splitlines()) == 6
    for a, b in zip(from_run.splitlines(), from_prompt.splitlines()):
        (la, pa, ta), (lb, pb, tb) = a.split("\t"), b.split("\t")
        assert la == lb and ta == tb and abs(float(pa) - float(pb)) < 1e-4

    second = run_script("fewshot_curve.py", *cmd)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert second.stdout.count("reused") == 3, second.stdout
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/metrics.json")} == stamps
    assert json.loads((out / "results.json").read_text(encoding="utf-8"))["summary"] == results["summary"]

    changed = run_script("fewshot_curve.py", *[c if c != "2" else "3" for c in cmd])  # --epochs 3
    assert changed.returncode == 2 and "other options" in changed.stderr and "Traceback" not in changed.stderr


@pytest.mark.parametrize("extra,needle", [
    (["--methods", "zeroshot,magic"], "unknown magic"),
    (["--ks", "0,25"], "more than the 24 training rows"),
    (["--ks", "8,x"], "comma-separated list"),
])
def test_curve_bad_input_is_one_line_exit_2(tiny_setup, tmp_path, capsys, extra, needle):
    import fewshot_curve
    model, data = tiny_setup
    with pytest.raises(SystemExit) as e:
        fewshot_curve.main(["--model", model, "--data", data, *FAST, "--output", str(tmp_path / "o"), *extra])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert not (tmp_path / "o").exists()


def test_curve_refuses_an_unrelated_non_empty_output(tiny_setup, tmp_path, capsys):
    import fewshot_curve
    model, data = tiny_setup
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as e:
        fewshot_curve.main(["--model", model, "--data", data, "--ks", "4", *FAST, "--output", str(tmp_path / "o")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not empty" in err[0] and "experiment.json" in err[0], err
    assert (tmp_path / "o" / "notes.txt").read_text() == "mine"


def test_ablations_table_and_resume(tiny_setup, tmp_path):
    model, data = tiny_setup
    out = tmp_path / "abl"
    cmd = ["--model", model, "--data", data, "--k", "4", "--seeds", "1", "--inits", "unused,random",
           "--lengths", "2", "--encoders", "none,lstm", *FAST, "--output", str(out)]
    first = run_script("ablations.py", *cmd)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    table = (out / "ablations.md").read_text(encoding="utf-8")
    results = json.loads((out / "ablations.json").read_text(encoding="utf-8"))
    settings = {(r["group"], r["setting"]) for r in results["summary"]}
    assert settings == {("init", "unused"), ("init", "random"), ("length", "2"), ("encoder", "none"),
                        ("encoder", "lstm"), ("reference", "char TF-IDF + LR")}
    params = {(r["group"], r["setting"]): r["trainable_params"] for r in results["summary"]}
    assert params[("encoder", "none")] == 8 * 16 and params[("length", "2")] < params[("encoder", "lstm")]
    assert "| encoder | none | 128 |" in table
    assert "±" not in table.splitlines()[-1]  # one seed: no std column noise
    second = run_script("ablations.py", *cmd)
    assert second.returncode == 0 and "trained 0 new run(s)" in second.stdout, second.stdout[-2000:]


def test_format_mean_std_leaves_out_the_std_of_one_run():
    from few_shot.experiments import format_mean_std
    assert format_mean_std(0.57166, 0.0, 1) == "0.5717"
    assert format_mean_std(0.5, 0.01234, 3) == "0.5000 ± 0.0123"
