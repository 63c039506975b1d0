"""Nothing a user made is deleted: `--overwrite` and a run's own clean-up remove only the files the
package wrote, never a folder wholesale (issue 23's data-loss cases, each run as a user runs it)."""
import hashlib
import os
import subprocess
import sys

import pytest

from few_shot.owned_files import move_leftovers, remove_owned

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SENTIMENT = os.path.join(REPO, "data", "sentiment", "sentiment.train.data")


def checksums(folder):
    """{relative path: sha256} of every file under `folder`."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


def script(name, *args, cwd):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, os.path.join(REPO, *name.split("/")), *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=900)


def plant(folder, relative_paths):
    """The user's own files, inside the folders a run writes -> their checksums."""
    for i, rel in enumerate(relative_paths):
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"user file {i}: {rel}\n".encode() + os.urandom(16))
    return {rel: checksums(folder)[rel] for rel in relative_paths}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    with open(SENTIMENT, encoding="utf-8") as f:
        path.write_text("".join(line.rsplit("\t", 1)[0] + "\n" for _, line in zip(range(120), f)), encoding="utf-8")
    return str(path)


TINY_PRETRAIN = ["--layers", "1", "--hidden", "32", "--heads", "2", "--maxlen", "32", "--batch-size", "4",
                 "--steps", "2", "--save-every", "1", "--no-progress"]


def test_remove_owned_keeps_other_files_and_their_folders(tmp_path):
    mine = plant(tmp_path, ["backup/important.txt", "tensorboard/train/notes.md"])
    for rel in ("metrics.json", "backup/training_metadata.json", "tensorboard/train/events.out.tfevents.1.x",
                "tensorboard/validation/events.out.tfevents.2.x"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("run")
    kept = remove_owned(str(tmp_path), ["metrics.json", "backup/*.json", "tensorboard/*/events.out.tfevents.*"])
    assert checksums(tmp_path) == mine
    assert not (tmp_path / "tensorboard" / "validation").exists()  # emptied by the run's files: gone
    assert kept == [str(tmp_path / "backup"), str(tmp_path / "tensorboard" / "train")]
    # a folder that matches a pattern is not removed, even when the pattern is a bare name
    (tmp_path / "metrics.json").mkdir()
    remove_owned(str(tmp_path), ["metrics.json"])
    assert (tmp_path / "metrics.json").is_dir()


def test_move_leftovers_returns_a_users_file_to_the_new_folder(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "mine.txt").write_text("x")
    assert move_leftovers(str(tmp_path / "old"), str(tmp_path / "new")) == ["mine.txt"]
    assert (tmp_path / "new" / "mine.txt").read_text() == "x" and not (tmp_path / "old").exists()


def test_pretrain_overwrite_with_a_bad_init_from_keeps_the_previous_run(tmp_path, corpus):
    """Data-loss case 1: the previous run's checkpoint/, hf/, google/ and log stay byte-identical."""
    out = tmp_path / "run"
    before = plant(out, ["checkpoint/state.json", "checkpoint/model.safetensors", "hf/config.json",
                         "hf/model.safetensors", "google/bert_config.json", "pretrain_log.json"])
    result = script("scripts/pretrain_mlm.py", "--corpus", corpus, "--init-from", str(tmp_path / "no_such_model"),
                    "--output", str(out), "--overwrite", *TINY_PRETRAIN, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "no_such_model" in result.stderr and "Traceback" not in result.stderr
    assert checksums(out) == before


def test_pretrain_overwrite_keeps_user_files_in_its_folders(tmp_path, corpus):
    """Data-loss case 3: hf/, google/ and checkpoint/ lose only the files a pretraining run writes."""
    out = tmp_path / "run"
    mine = plant(out, ["hf/README.md", "google/notes.txt", "checkpoint/keep.txt", "results.csv"])
    (out / "hf" / "model.safetensors").write_text("an old export")
    result = script("scripts/pretrain_mlm.py", "--corpus", corpus, "--output", str(out), "--overwrite",
                    *TINY_PRETRAIN, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    after = checksums(out)
    assert {rel: after.get(rel) for rel in mine} == mine
    assert os.path.getsize(out / "hf" / "model.safetensors") > 1000  # the old export was replaced
    assert (out / "checkpoint" / "state.json").is_file() and not (out / "checkpoint.old").exists()
    # the run said it kept them, and TensorFlow's start-up chatter stayed out of the way
    assert "kept" in result.stdout and "cpu_feature_guard" not in result.stderr


def test_training_overwrite_keeps_user_files_in_backup_and_tensorboard(tmp_path):
    """Data-loss case 2: backup/ and tensorboard/ are not removed wholesale, by --overwrite nor by
    keras' BackupAndRestore at the end of training."""
    out = tmp_path / "U"
    mine = plant(out, ["backup/important.txt", "tensorboard/my_notes.txt", "notes.txt"])
    (out / "metrics.json").write_text("{}")
    result = script("few_shot_ptuning.py", "--k", "8", "--batch-size", "8", "--epochs", "1", "--passes-per-epoch",
                    "1", "--max-valid", "16", "--max-test", "16", "--maxlen", "64", "--output", str(out),
                    "--overwrite", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    after = checksums(out)
    assert {rel: after.get(rel) for rel in mine} == mine
    assert "model.keras" in after and not any(rel.startswith("backup/") and rel != "backup/important.txt"
                                              for rel in after)
