"""Bad input, as a new user types it: exit status 2, one line naming the problem and the fix, no
traceback, nothing the user made touched, and (for every check that needs no model) TensorFlow never
imported: the scripts run with a `tensorflow` that refuses to import, so a check that came after
the heavy start would show up as a traceback."""
import json
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
    ("few_shot_ptuning.py", ["--predict", "{run}"], ["no text given"]),
    ("few_shot_ptuning.py", ["--predict", "no/such/run", "好"], ["no/such/run", "no such run folder"]),
    ("few_shot_finetune.py", ["--trainable-layers", "-1"], ["--trainable-layers"]),
    ("few_shot_finetune.py", ["--trainable-layers", "9"], ["--trainable-layers 9", "4 encoder layers"]),
    # issue 23, third round
    ("few_shot_ptuning.py", ["--pattern", "[u1][MASK]{text"], ["unclosed or stray brace", "'{text'"]),
    ("few_shot_finetune.py", ["--lora", "8", "--trainable-layers", "2"], ["--trainable-layers", "not of lora runs",
                                                                         "(--lora)"]),
    ("few_shot_ptuning.py", ["--predict", "{run}", ""], ["text 1 is empty"]),
    ("few_shot_ptuning.py", ["--predict", "{run}", "好", "  "], ["text 2 is empty"]),
    ("few_shot_ptuning.py", ["--predict", "{run}", "models"], ["every argument names an existing", "--"]),
    ("few_shot_ptuning.py", ["--predict", "{out}", "好"], ["holds no model.keras"]),
    ("few_shot_ptuning.py", ["--export", "{out}", "{dir}/served"], ["holds no model.keras"]),
    ("few_shot_ptuning.py", ["--model", "no_such_model"], ["--model", "no_such_model", "folder not found"]),
    ("few_shot_ptuning.py", ["--model", "{file}"], ["--model", "is a file"]),
    ("few_shot_ptuning.py", ["--model", "{dir}"], ["no bert_config.json or config.json"]),
    ("few_shot_ptuning.py", ["--model", "{noweights}"], ["has no weights", "model.safetensors"]),
    ("few_shot_ptuning.py", ["--resume", "--output", "{resumable}", "--lr", "0.5"],
     ["--resume", "--lr 0.001", "not 0.5", "--epochs"]),
    ("few_shot_ptuning.py", ["--resume", "--output", "{resumable}", "--max-valid", "3"], ["--max-valid"]),
    ("few_shot_ptuning.py", ["--resume", "--output", "{resumable}", "--deep", "--deep-reparam"], ["--resume"]),
    ("few_shot_finetune.py", ["--resume", "--output", "{resumable_lora}", "--lora", "4"],
     ["--resume", "--lora 8", "not 4"]),
    ("few_shot_finetune.py", ["--resume", "--output", "{resumable_ft}", "--trainable-layers", "1"],
     ["--resume", "--trainable-layers 2", "not 1"]),
    ("scripts/pretrain_mlm.py", ["--corpus", "{corpus}", "--output", "{dir}/p", "--steps", "0"], ["--steps 0"]),
    ("scripts/pretrain_mlm.py", ["--corpus", "{file}", "--output", "{dir}/p"], ["no Chinese"]),
    ("scripts/pretrain_mlm.py", ["--corpus", "{corpus}", "--output", "{dir}/p", "--init-from", "no/such/model/x"],
     ["--init-from", "folder not found"]),
    ("scripts/pretrain_mlm.py", ["--corpus", "{corpus}", "--output", "{dir}/p", "--init-from", "{noweights}"],
     ["has no weights"]),
    ("scripts/pretrain_mlm.py", ["--corpus", "{corpus}", "--output", "{out}"], ["not empty", "--overwrite"]),
    # prompt pretraining (PPT) and --prompt-init
    ("scripts/pretrain_prompts.py", ["--corpus", "{file}", "--output", "{dir}/p", "--keep-test-texts"], ["no Chinese"]),
    ("scripts/pretrain_prompts.py", ["--corpus", "{emptyfile}", "--output", "{dir}/p", "--keep-test-texts"],
     ["no documents"]),
    ("scripts/pretrain_prompts.py", ["--corpus", "{oneline}", "--output", "{dir}/p", "--keep-test-texts"],
     ["one document per line"]),
    ("scripts/pretrain_prompts.py", ["--corpus", "{corpus}", "--output", "{dir}/p", "--formats", "pair,nsp"],
     ["--formats", "choose from pair, choice, single, unified"]),
    ("scripts/pretrain_prompts.py", ["--corpus", "{corpus}", "--output", "{dir}/p", "--fewclue-root", "{dir}/none"],
     ["--fewclue-root", "--keep-test-texts"]),
    ("scripts/pretrain_prompts.py", ["--corpus", "{corpus}", "--output", "{out}"], ["not empty", "--overwrite"]),
    ("few_shot_ptuning.py", ["--encoder", "none", "--prompt-init", "{prompt_hidden32}"],
     ["--prompt-init", "made on the MLM", "hidden 32"]),
    ("few_shot_ptuning.py", ["--encoder", "none", "--prompt-init", "{prompt_4rows}"],
     ["--prompt-init", "4 prompt rows", "8 soft tokens"]),
    ("few_shot_ptuning.py", ["--encoder", "none", "--prompt-init", "{file}"], ["plain.txt", "cannot be read"]),
    ("few_shot_ptuning.py", ["--prompt-init", "{prompt_4rows}", "--init", "label"], ["--prompt-init and --init"]),
    ("scripts/prompt_methods.py", ["--ppt", "{dir}", "--tasks", "sentiment,nope"], ["--tasks nope", "choose tasks"]),
    ("scripts/prompt_methods.py", ["--ppt", "{dir}"], [".safetensors: not found", "pretrain_prompts.py"]),
]


def prompt_file(path, rows, hidden, vocab=21128):
    """A portable prompt file (its header is all the checks read)."""
    import numpy as np

    from few_shot.paths import DEFAULT_MODEL
    from few_shot.portable import FORMAT, TENSOR, write_tensors
    meta = {"pattern": "[u1][MASK]{text}", "verbalizer": {"0": "不", "1": "很"}, "prompt_token_ids": [1],
            "label_token_ids": [[679], [2523]], "maxlen": 64, "model": DEFAULT_MODEL, "hidden_size": hidden,
            "vocab_size": vocab, "objective": "label"}
    return write_tensors(str(path), {TENSOR: np.zeros((rows, hidden), "float32")}, FORMAT, meta)


def resumable(folder, method, **options):
    """A run folder as an interrupted run leaves it (metrics.json only matters to the checks)."""
    import dataclasses

    from few_shot.config import RunConfig
    config = RunConfig(method=method, k=8, epochs=1, passes_per_epoch=1, max_valid=8, max_test=8, **options)
    used = {**dataclasses.asdict(config), "lr": config.learning_rate,
            "pattern": "[u1][u2][u3][u4][MASK][u5][u6][u7][u8]{text}"}
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({"status": "interrupted", "config": used, "epochs": []}))
    return str(folder)


@pytest.mark.parametrize("script, args, needles", CASES, ids=[" ".join(c[1])[:40] for c in CASES])
def test_bad_argument_is_one_line_exit_2_before_tensorflow(script, args, needles, tmp_path, no_tensorflow):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (tmp_path / "plain.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "cut.json").write_text('{"1": "很", "0"')
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.keras").write_bytes(b"PK")  # a run folder, as far as the checks look
    (tmp_path / "models").mkdir()  # a folder whose name is also a text
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text("{}")
    (tmp_path / "noweights" / "vocab.txt").write_text("[PAD]\n")
    (tmp_path / "corpus.txt").write_text("今天天气很好。\n这家酒店不错。\n", encoding="utf-8")
    (tmp_path / "oneline.txt").write_text("今天天气很好。我们去公园。这家酒店不错。", encoding="utf-8")
    (tmp_path / "emptyfile.txt").write_text("\n\n", encoding="utf-8")
    fill = {"{out}": str(out), "{file}": str(tmp_path / "plain.txt"), "{dir}": str(tmp_path / "empty"),
            "{json_list}": str(tmp_path / "list.json"), "{json_cut}": str(tmp_path / "cut.json"),
            "{run}": str(tmp_path / "run"), "{noweights}": str(tmp_path / "noweights"),
            "{corpus}": str(tmp_path / "corpus.txt"), "{oneline}": str(tmp_path / "oneline.txt"),
            "{emptyfile}": str(tmp_path / "emptyfile.txt")}
    if "{prompt_hidden32}" in args:
        fill["{prompt_hidden32}"] = prompt_file(tmp_path / "p32.safetensors", 8, 32)
    if "{prompt_4rows}" in args:
        fill["{prompt_4rows}"] = prompt_file(tmp_path / "p4.safetensors", 4, 256)
    if "{resumable}" in args:
        fill["{resumable}"] = resumable(tmp_path / "resumable", "ptuning")
    if "{resumable_lora}" in args:
        fill["{resumable_lora}"] = resumable(tmp_path / "resumable", "lora", lora_rank=8)
    if "{resumable_ft}" in args:
        fill["{resumable_ft}"] = resumable(tmp_path / "resumable", "finetune", trainable_layers=2)
    args = [fill.get(a, a.replace("{dir}", str(tmp_path / "empty"))) for a in args]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    quick = QUICK if script.startswith("few_shot") else []
    output = ([] if script.startswith("scripts/") or "--predict" in args or "--export" in args
              or "--output" in args else ["--output", str(out / "run")])
    result = run(script, [*quick, *args, *output], cwd=tmp_path, pythonpath=no_tensorflow)
    assert_one_line(result, needles)
    assert sorted(os.listdir(out)) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "runs").exists()
    # every file byte-identical, and no folder made (an empty one included)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "empty" / "p").exists() and not (tmp_path / "empty" / "served").exists()


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


# -- cases a root user (CI) cannot make for real: the same code paths with the failure injected --------

def test_permission_denied_files_are_one_line_errors(tmp_path, monkeypatch):
    import builtins

    from few_shot import FewShotError
    from few_shot.datasets import decoded_lines
    from few_shot.model_folder import check_model_folder
    from few_shot.verbalizers import Verbalizer
    data, verbalizer = tmp_path / "train.tsv", tmp_path / "v.json"
    data.write_text("好\t1\n")
    verbalizer.write_text('{"1": "很", "0": "不"}')
    real_open = builtins.open

    def denied(path, *args, **kwargs):
        if str(path) in (str(data), str(verbalizer)):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", denied)
    for call, path in ((lambda: decoded_lines(str(data)), data), (lambda: Verbalizer.parse(str(verbalizer)), verbalizer)):
        with pytest.raises(FewShotError, match="permission denied") as e:
            call()
        assert str(path) in str(e.value) and "\n" not in str(e.value)
    monkeypatch.setattr(builtins, "open", real_open)
    model = os.path.join(REPO, "models", "zh-bert-mini")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: not str(p).endswith("model.safetensors") and real_access(p, mode))
    with pytest.raises(FewShotError, match="model.safetensors: permission denied; make the weights file readable"):
        check_model_folder(model)


def test_no_output_and_no_writable_runs_folder(tmp_path, monkeypatch):
    from few_shot import FewShotError, RunConfig
    from few_shot.run import prepare
    monkeypatch.chdir(tmp_path)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: os.path.abspath(p) != str(tmp_path) and real_access(p, mode))
    with pytest.raises(FewShotError, match="no --output given .* pass --output DIR"):
        prepare(RunConfig(k=8, max_valid=8, max_test=8))
    assert not (tmp_path / "runs").exists()


def test_resume_accepts_only_the_listed_changes(tmp_path):
    from few_shot import FewShotError
    from few_shot.run_folder import RESUME_MAY_CHANGE, check_resume
    saved = {"method": "ptuning", "epochs": 3, "lr": 0.001, "early_stopping": None, "max_valid": 8, "seed": 1}
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "interrupted", "config": saved}))
    assert set(RESUME_MAY_CHANGE) >= {"epochs", "early_stopping"}
    check_resume(str(tmp_path), {**saved, "epochs": 10, "early_stopping": 2})  # extend the run: accepted
    for key, value in (("lr", 0.01), ("max_valid", 9), ("seed", 2), ("method", "mlp")):
        with pytest.raises(FewShotError, match=f"--{key.replace('_', '-')}") as e:
            check_resume(str(tmp_path), {**saved, key: value})
        assert "--epochs" in str(e.value)  # the message lists what may change


def test_interrupted_survives_being_re_raised_with_its_text_only():
    import signal

    from few_shot.errors import Interrupted
    original = Interrupted(signal.SIGTERM)
    rewrapped = type(original)(f"in user code:\n  File ..., line 3\n    {original}")  # as TF's tracing does
    assert rewrapped.signum == signal.SIGTERM and Interrupted("... SIGINT ...").signum == signal.SIGINT
