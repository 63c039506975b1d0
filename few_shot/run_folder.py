"""The run folder: where a training run writes, and what it may replace.

Nothing a user made is deleted: `--overwrite` replaces only the files a run writes (RUN_FILES), a
default folder is new for every run (two runs started in the same second get two folders), and a
run that fails before writing anything removes only the folder it created itself.
"""
import json
import os
import time

from few_shot.errors import FewShotError
from few_shot.methods import methods
from few_shot.owned_files import remove_owned

# Every file a training run writes (glob patterns under its folder); --overwrite removes these and
# nothing else: a user's file inside backup/ or tensorboard/ stays, and so does its folder.
BACKUP_FILES = ("training_metadata.json", "latest.weights.h5", "latest.weights.h5.bkp")  # keras BackupAndRestore
RUN_FILES = ("metrics.json", "metrics.json.tmp", "model.keras", *dict.fromkeys(f for m in methods() for f in m.run_files),
             "vocab.txt", "log.csv", "curves.png", "best_weights.npz", "best_weights.npz.tmp",
             "tensorboard/train/events.out.tfevents.*", "tensorboard/validation/events.out.tfevents.*",
             *(f"{folder}/{name}" for folder in ("backup", "backup-worker-*") for name in BACKUP_FILES))


def cluster_task():
    """(type, index) of this process in TF_CONFIG, read without TensorFlow; None outside a cluster."""
    try:
        task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task") or {}
    except (ValueError, AttributeError):
        raise FewShotError("TF_CONFIG is not a JSON object; set it as in docs/distributed.md") from None
    return (task.get("type", "worker"), int(task.get("index", 0))) if task else None


def backup_folder(output, multiworker):
    """Where keras BackupAndRestore keeps the last finished epoch. Keras 3's callback knows no worker
    roles, so under MultiWorkerMirroredStrategy every worker keeps its own copy of the (synchronised)
    state: the chief in OUTPUT/backup, worker i in OUTPUT/backup-worker-i (on its own host, or beside
    the chief's on a shared disk); a restarted cluster restores each worker from its own."""
    task = cluster_task() if multiworker else None
    if task is None or is_chief_task(task):
        return os.path.join(output, "backup")
    return os.path.join(output, f"backup-{task[0]}-{task[1]}")


def is_chief_task(task):
    """Worker 0 (or the task of type chief) writes the run folder."""
    return task[0] == "chief" or (task[0] == "worker" and task[1] == 0)


def check_worker_resume(output):
    """--resume on a worker of a cluster that does not write the run: its own backup must be there."""
    folder = backup_folder(output, multiworker=True)
    if not os.path.isfile(os.path.join(folder, "training_metadata.json")):
        raise FewShotError(f"--resume: {folder} holds no backup of this worker; restart every worker of the "
                           f"cluster without --resume (and with --overwrite)")


# What --resume may change: how long the run goes on (--epochs, to extend it; --early-stopping), the
# evaluation batch size and progress lines (they change no number), and where it runs (--strategy).
# Everything else must be the same (--max-valid/--max-test too: they change what "best epoch" means).
RESUME_MAY_CHANGE = ("epochs", "early_stopping", "eval_batch_size", "progress_seconds", "strategy")


def check_resume(path, config_fields):
    """--resume: `path` holds an unfinished run of the same options -> its metrics.json dict."""
    metrics_path = os.path.join(path, "metrics.json")
    if not os.path.isfile(metrics_path):
        raise FewShotError(f"--resume: {path} holds no metrics.json of a run; start it without --resume")
    try:
        with open(metrics_path, encoding="utf-8") as f:
            metrics = json.load(f)
    except ValueError:
        raise FewShotError(f"--resume: {metrics_path} is damaged; start over with --overwrite") from None
    if metrics.get("status") == "completed":
        raise FewShotError(f"--resume: the run in {path} has finished; to train longer start a new --output")
    saved = metrics.get("config", {})
    from few_shot.config import flag_of
    fixed = [k for k in saved if k not in (*RESUME_MAY_CHANGE, "output", "overwrite", "resume")]
    changed = [k for k in fixed if k in config_fields and saved[k] != config_fields[k]]
    if changed:
        k = changed[0]
        flag = flag_of(k)
        raise FewShotError(f"--resume: {path} was run with {flag} {saved[k]!r}, not {config_fields[k]!r}; a resumed "
                           f"run keeps its options (only {', '.join(map(flag_of, RESUME_MAY_CHANGE))} may change): pass "
                           f"{flag} {saved[k]!r} or start a new --output")
    return metrics


def check_output_flags(path, resume, overwrite):
    """What every command with --output, --resume and --overwrite refuses first (training, pretraining)."""
    if resume and overwrite:
        raise FewShotError("--resume and --overwrite contradict each other; pass one of them")
    if os.path.exists(path) and not os.path.isdir(path):
        raise FewShotError(f"--output {path}: is a file; pass a folder path")


def check_output(path, overwrite):
    """Refuse a folder we must not write into; touches nothing (run before anything loads)."""
    check_output_flags(path, False, overwrite)
    if os.path.isdir(path):
        if not os.access(path, os.W_OK | os.X_OK):
            raise FewShotError(f"--output {path}: the folder is not writable; choose another --output")
        if os.listdir(path) and not overwrite:
            raise FewShotError(f"--output {path}: folder exists and is not empty; pass --resume to continue an "
                               f"unfinished run there, --overwrite to replace a run's own files, or another --output")
        return
    parent = nearest_existing_parent(path)
    if not os.path.isdir(parent):
        raise FewShotError(f"--output {path}: {parent} is a file, not a folder; choose another --output")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FewShotError(f"--output {path}: cannot create it, {parent} is not writable; choose another --output")


def nearest_existing_parent(path):
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    return parent


class RunFolder:
    """An output folder made ready for a run: `.path`, and `.created` when this run made it."""

    def __init__(self, path, created):
        self.path, self.created = path, created

    @classmethod
    def prepare(cls, path, overwrite, files=RUN_FILES):
        """Create `path`, or reuse it after removing a previous run's `files` (only with overwrite)."""
        check_output(path, overwrite)
        if os.path.isdir(path):
            kept = remove_owned(path, files)
            if kept:
                print(f"--overwrite: kept {', '.join(kept)} (files there are not this package's)")
            return cls(path, created=False)
        os.makedirs(path)
        return cls(path, created=True)

    @classmethod
    def unique(cls, parent, name):
        """A new folder parent/name-YYYYmmdd-HHMMSS[-N]: os.makedirs either creates it or fails, so
        runs started in the same second (several processes too) never share one."""
        os.makedirs(parent, exist_ok=True)
        stem = os.path.join(parent, f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
        for n in range(1, 10_000):
            path = stem if n == 1 else f"{stem}-{n}"
            try:
                os.mkdir(path)
                return cls(path, created=True)
            except FileExistsError:
                continue
        raise FewShotError(f"{stem}: no free folder name; pass --output")

    def discard_if_empty(self):
        """After a failure: remove the folder if this run created it and wrote nothing into it."""
        if self.created and os.path.isdir(self.path) and not os.listdir(self.path):
            os.rmdir(self.path)
