"""Bad input, as a new user types it: exit status 2, one line naming the problem and the fix, no
traceback, nothing the user made touched, and (for every check that needs no model) TensorFlow never
imported: the scripts run with a `tensorflow` that refuses to import, so a check that came after
the heavy start would show up as a traceback."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = ["--k", "8", "--epochs", "1", "--passes-per-epoch", "1", "--max-valid", "8", "--max-test", "8"]


@pytest.fixture(scope="module")
def no_tensorflow(tmp_path_factory):
    """A folder that shadows tensorflow and keras with packages that fail to import."""
    root = tmp_path_factory.mktemp("no_tf")
    for name in ("tensorflow", "keras"):
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(f"raise ImportError('{name} was imported before the checks')\n")
    return str(root)


def run(script, args, cwd, pythonpath=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([pythonpath, env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, os.path.join(REPO, script), *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def assert_one_line(result, needles):
    assert result.returncode == 2, (result.returncode, result.stdout[-1500:], result.stderr[-3000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert not [line for line in lines if not line.startswith(("error: ", "warning: "))], lines
    for needle in needles:
        assert needle in errors[0], errors[0]


# (script, arguments, words the error line must hold); {out} is a folder holding the user's notes.txt,
# {file} a plain file, {dir} an empty folder, {json_list}/{json_cut} verbalizer files
CASES = [
    ("few_shot_ptuning.py", ["--epochs", "0"], ["--epochs", ">= 1"]),
    ("few_shot_ptuning.py", ["--max-valid", "0"], ["--max-valid"]),
    ("few_shot_ptuning.py", ["--max-valid", "-1"], ["--max-valid"]),
    ("few_shot_ptuning.py", ["--batch-size", "0"], ["--batch-size"]),
    ("few_shot_finetune.py", ["--batch-size", "0"], ["--batch-size"]),
    ("few_shot_ptuning.py", ["--eval-batch-size", "0"], ["--eval-batch-size"]),
    ("few_shot_ptuning.py", ["--passes-per-epoch", "0"], ["--passes-per-epoch"]),
    ("few_shot_ptuning.py", ["--lr", "-1"], ["--lr", "> 0"]),
    ("few_shot_ptuning.py", ["--k", "0"], ["--k"]),
    ("few_shot_ptuning.py", ["--train-fraction", "2"], ["--train-fraction"]),
    ("few_shot_ptuning.py", ["--maxlen", "600"], ["--maxlen 600", "512 positions"]),
    ("few_shot_ptuning.py", ["--fewclue-fold", "abc"], ["--fewclue-fold", "invalid choice", "'all'"]),
    ("few_shot_ptuning.py", ["--verbalizer", "{bad"], ["not valid JSON"]),
    ("few_shot_ptuning.py", ["--verbalizer", "{json_cut}"], ["not valid UTF-8 JSON"]),
    ("few_shot_ptuning.py", ["--verbalizer", "{json_list}"], ["not an object"]),
    ("few_shot_ptuning.py", ["--verbalizer", "{dir}"], ["is a folder"]),
    ("few_shot_ptuning.py", ["--verbalizer", "1:很,1:不"], ["label 1 twice"]),
    ("few_shot_ptuning.py", ["--verbalizer", "1:很,2:不"], ["'0'", "not in the verbalizer"]),
    ("few_shot_ptuning.py", ["--pattern", "[MASK]{tekst}"], ["{tekst} is not a field"]),
    ("few_shot_ptuning.py", ["--pattern", "满意。{text}"], ["no [MASK]"]),
    ("few_shot_ptuning.py", ["--maxlen", "5"], ["maxlen=5 is too short"]),
    # label words of different lengths: the longest sets the [MASK] slots, so maxlen must fit it
    ("few_shot_ptuning.py", ["--verbalizer", '{"@per_length": {"0": "不", "1": "很好很好很好很好很好很好"}}', "--maxlen", "20"],
     ["maxlen=20 is too short"]),
    ("few_shot_ptuning.py", ["--data", "{file}"], ["is a file", "folder"]),
    ("few_shot_ptuning.py", ["--data", "no_such_data_dir"], ["no_such_data_dir", "no such folder"]),
    ("few_shot_ptuning.py", ["--semi", "--mlm-weight", "0"], ["--mlm-weight"]),
    ("few_shot_ptuning.py", ["--resume"], ["--resume", "no metrics.json"]),
    ("few_shot_ptuning.py", ["--verbalizer", "0:不,1:龘"], ["not in the vocabulary"]),
    ("few_shot_ptuning.py", ["--predict", "{out}"], ["no text given"]),
    ("few_shot_ptuning.py", ["--predict", "no/such/run", "好"], ["no/such/run", "no such run folder"]),
    ("few_shot_finetune.py", ["--trainable-layers", "-1"], ["--trainable-layers"]),
    ("few_shot_finetune.py", ["--trainable-layers", "9"], ["--trainable-layers 9", "4 encoder layers"]),
]


@pytest.mark.parametrize("script, args, needles", CASES, ids=[" ".join(c[1])[:40] for c in CASES])
def test_bad_argument_is_one_line_exit_2_before_tensorflow(script, args, needles, tmp_path, no_tensorflow):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (tmp_path / "plain.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "cut.json").write_text('{"1": "很", "0"')
    fill = {"{out}": str(out), "{file}": str(tmp_path / "plain.txt"), "{dir}": str(tmp_path / "empty"),
            "{json_list}": str(tmp_path / "list.json"), "{json_cut}": str(tmp_path / "cut.json")}
    args = [fill.get(a, a) for a in args]
    output = [] if "--predict" in args or "--output" in args else ["--output", str(out / "run")]
    result = run(script, [*QUICK, *args, *output], cwd=tmp_path, pythonpath=no_tensorflow)
    assert_one_line(result, needles)
    assert sorted(os.listdir(out)) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "runs").exists()


def test_output_that_is_a_file_is_refused(tmp_path, no_tensorflow):
    target = tmp_path / "results.txt"
    target.write_text("mine")
    assert_one_line(run("few_shot_ptuning.py", [*QUICK, "--output", str(target)], tmp_path, no_tensorflow),
                    ["is a file"])
    assert target.read_text() == "mine"


def test_non_empty_output_is_refused_without_overwrite(tmp_path, no_tensorflow):
    (tmp_path / "notes.txt").write_text("mine")
    result = run("few_shot_ptuning.py", [*QUICK, "--output", str(tmp_path)], tmp_path, no_tensorflow)
    assert_one_line(result, ["not empty", "--overwrite", "--resume"])
    assert os.listdir(tmp_path) == ["notes.txt"]


@pytest.mark.slow
def test_predict_on_a_corrupt_model_file(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.keras").write_bytes(b"PK\x03\x04 truncated zip")
    (run_dir / "vocab.txt").write_text("[PAD]\n")
    result = run("few_shot_ptuning.py", ["--predict", str(run_dir), "好"], tmp_path)
    assert_one_line(result, ["model.keras", "cannot be read", "rerun the training"])
    assert "File not found" not in result.stderr


def test_library_errors_are_few_shot_errors():
    from few_shot import FewShotError, Pattern, Verbalizer
    for make in (lambda: Pattern(None), lambda: Verbalizer("1:很,0:不"), lambda: Verbalizer.parse("{bad"),
                 lambda: Verbalizer.parse("[1, 2]"), lambda: Verbalizer({"1": ""})):
        with pytest.raises(FewShotError) as e:
            make()
        assert "\n" not in str(e.value)


def test_multiworker_needs_output_and_each_worker_its_backup(tmp_path, no_tensorflow, monkeypatch):
    result = run("few_shot_ptuning.py", [*QUICK, "--strategy", "multiworker"], cwd=tmp_path, pythonpath=no_tensorflow)
    assert_one_line(result, ["--strategy multiworker needs --output"])
    assert not (tmp_path / "runs").exists()
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, '
                                    '"task": {"type": "worker", "index": 1}}')
    result = run("few_shot_ptuning.py", [*QUICK, "--strategy", "multiworker", "--resume", "--output", str(out)],
                 cwd=tmp_path, pythonpath=no_tensorflow)
    assert_one_line(result, [str(out / "backup-worker-1"), "no backup of this worker"])
    monkeypatch.setenv("TF_CONFIG", "{not json")
    result = run("few_shot_ptuning.py", [*QUICK, "--strategy", "multiworker", "--resume", "--output", str(out)],
                 cwd=tmp_path, pythonpath=no_tensorflow)
    assert_one_line(result, ["TF_CONFIG is not a JSON object"])
    assert sorted(os.listdir(out)) == ["notes.txt"]
