"""Callbacks of a training run: per-epoch evaluation and bookkeeping (EpochLogger), a progress line
for logs that are not a terminal (ProgressLine), and the curves.png of a finished run. Both lines end
with `- eta: H:MM:SS`, the whole fit's remaining wall time (estimate_eta), once it can be estimated."""
import json
import os
import time

import keras
import numpy as np

BEST_WEIGHTS = "best_weights.npz"


def save_arrays(path, arrays):
    """Trainable weights -> .npz (written aside, then renamed)."""
    with open(path + ".tmp", "wb") as f:
        np.savez(f, *arrays)
    os.replace(path + ".tmp", path)


def format_eta(seconds):
    """Seconds -> 'H:MM:SS' (hours unbounded: '27:46:40')."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def epoch_estimate(durations):
    """The wall time of a further epoch, from the finished epochs' durations (training + evaluation +
    the callbacks): the first one also traces the graphs, so it is left out once a later one is known."""
    steady = list(durations[1:]) or list(durations)
    return sum(steady) / len(steady) if steady else None


def estimate_eta(epochs_after, durations=(), steps=0, steps_left=0, step_seconds=None, eval_seconds=None,
                 elapsed=0.0):
    """Remaining wall time of a fit: the rest of the current epoch plus `epochs_after` whole epochs.

    The current epoch: `steps_left` of its `steps` steps at `step_seconds` each (measured after its
    first step, which may trace the graph) plus its evaluation (`eval_seconds`: the last finished
    epoch's; unknown, so 0, in the first epoch); without a step time, the epoch estimate less the
    `elapsed` part. A whole epoch: `epoch_estimate(durations)`, or, before any epoch has finished,
    `steps` steps at `step_seconds`. -> seconds, or None when nothing is known yet."""
    per_epoch = epoch_estimate(durations)
    if step_seconds is not None:
        current = steps_left * step_seconds + (eval_seconds or 0.0)
        if per_epoch is None:
            per_epoch = steps * step_seconds + (eval_seconds or 0.0)
    elif per_epoch is not None:
        current = max(0.0, per_epoch - elapsed)
    else:
        return None
    return current + epochs_after * per_epoch


def load_arrays(path):
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


class EpochLogger(keras.callbacks.Callback):
    """After each epoch: valid/test accuracy (and macro-F1), best-on-valid bookkeeping with the test
    confusion matrix at the best epoch, one log line, metrics.json."""

    def __init__(self, scorer, valid, test, output=None, summary=None, labels=None, clock=time.monotonic):
        super().__init__()
        self.clock = clock
        self.marks = []  # clock() when this fit began and when each of its epochs was logged
        self.scorer, self.valid, self.test = scorer, valid, test
        self.labels = labels
        self.output = output
        self.summary = summary or {}
        self.epochs = []
        self.best = {"best_epoch": None, "best_valid_acc": -1.0, "test_acc_at_best": None}
        self.best_weights = None
        self.status = "running"  # -> completed, interrupted or failed
        self.start = time.time()
        self.resumed_seconds = 0.0

    def resume(self, metrics, best_weights):
        """Continue a run folder's bookkeeping: its finished epochs, best epoch and best weights."""
        self.epochs = list(metrics.get("epochs", []))
        self.best = {k: metrics[k] for k in self.best if k in metrics}
        self.best.update({k: metrics[k] for k in ("test_macro_f1_at_best", "test_confusion_at_best") if k in metrics})
        self.best_weights = best_weights
        self.resumed_seconds = float(metrics.get("wall_seconds", 0.0))

    def on_train_begin(self, logs=None):
        self.marks = [self.clock()]

    def eta_suffix(self, epoch):
        """' - eta: H:MM:SS' (the epochs left of this fit at the pace of its finished ones), or '' after
        its last epoch or outside a fit."""
        total = (self.params or {}).get("epochs")
        if not total or epoch + 1 >= total or len(self.marks) < 2:
            return ""
        durations = [b - a for a, b in zip(self.marks, self.marks[1:])]
        return f" - eta: {format_eta((total - epoch - 1) * epoch_estimate(durations))}"

    def on_epoch_end(self, epoch, logs=None):
        from sklearn.metrics import confusion_matrix, f1_score
        logs = logs or {}
        valid_pred = self.scorer.scores(self.valid, "valid").argmax(-1)
        test_pred = self.scorer.scores(self.test, "test").argmax(-1)
        valid_acc = float(np.mean(valid_pred == self.valid.labels))
        test_acc = float(np.mean(test_pred == self.test.labels))
        classes = np.arange(self.scorer.model.num_labels)
        record = {"epoch": epoch + 1, "loss": float(logs.get("loss", float("nan"))),
                  "valid_acc": valid_acc, "test_acc": test_acc,
                  "valid_macro_f1": float(f1_score(self.valid.labels, valid_pred, labels=classes, average="macro",
                                                   zero_division=0)),
                  "test_macro_f1": float(f1_score(self.test.labels, test_pred, labels=classes, average="macro",
                                                  zero_division=0)),
                  "seconds": time.time() - self.start}
        if "mlm_loss" in logs:  # semi-supervised runs: the unlabelled MLM part of `loss` (unweighted)
            record["mlm_loss"] = float(logs["mlm_loss"])
        # a resumed run redoes an epoch that ended after metrics.json but before Keras' backup
        self.epochs = [e for e in self.epochs if e["epoch"] < epoch + 1] + [record]
        logs.update(valid_acc=valid_acc, test_acc=test_acc)  # for TensorBoard, CSVLogger, EarlyStopping
        if valid_acc > self.best["best_valid_acc"]:
            self.best = {"best_epoch": epoch + 1, "best_valid_acc": valid_acc, "test_acc_at_best": test_acc,
                         "test_macro_f1_at_best": record["test_macro_f1"],
                         # rows: true label, columns: predicted, in the order of `labels`
                         "test_confusion_at_best": {"labels": self.labels or classes.tolist(), "matrix":
                                                    confusion_matrix(self.test.labels, test_pred,
                                                                     labels=classes).tolist()}}
            self.best_weights = [keras.ops.convert_to_numpy(w) for w in self.model.trainable_weights]
            if self.output:  # so that --resume after a crash knows the best epoch's weights
                save_arrays(os.path.join(self.output, BEST_WEIGHTS), self.best_weights)
        if self.marks:
            self.marks.append(self.clock())
        print(f"epoch: {epoch + 1} - loss: {record['loss']:.4f} - valid_acc: {valid_acc:.4f} - "
              f"test_acc: {test_acc:.4f} - best_valid_acc: {self.best['best_valid_acc']:.4f} - "
              f"test_acc_at_best: {self.best['test_acc_at_best']:.4f}{self.eta_suffix(epoch)}", flush=True)
        self.write()

    def restore_best(self):
        if self.best_weights is not None:
            for w, value in zip(self.model.trainable_weights, self.best_weights):
                w.assign(value)

    def metrics(self):
        return {**self.summary, "status": self.status, "epochs": self.epochs, **self.best,
                "wall_seconds": self.resumed_seconds + time.time() - self.start}

    def write(self):
        if self.output:
            # written aside, then renamed: an interrupt mid-write never leaves half a metrics.json
            path = os.path.join(self.output, "metrics.json")
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                json.dump(self.metrics(), f, indent=2, ensure_ascii=False)
            os.replace(path + ".tmp", path)


class CSVLog(keras.callbacks.CSVLogger):
    """keras' CSVLogger with the columns the logs have: keras adds a `val_` twin of every column (all
    NA) when `fit` has no validation_data, and our valid/test accuracies come from EpochLogger."""

    def on_epoch_end(self, epoch, logs=None):
        if self.keys is None and logs:
            self.keys = sorted(logs)
        super().on_epoch_end(epoch, logs)


class RunBackup(keras.callbacks.BackupAndRestore):
    """keras BackupAndRestore that, when training ends, removes only its own files (Keras removes the
    whole backup folder, and with it anything a user kept there)."""

    def __init__(self, backup_dir):
        super().__init__(backup_dir, delete_checkpoint=False)

    def on_train_end(self, logs=None):
        from few_shot.owned_files import remove_owned
        from few_shot.run_folder import BACKUP_FILES
        remove_owned(self.backup_dir, BACKUP_FILES, keep_folder=False)


class ProgressLine(keras.callbacks.Callback):
    """When stdout is not a terminal (CI, nohup, a scheduler's log): a line every `seconds` (and at
    the first step), so a long epoch shows it is alive. On a terminal Keras' own bar does this.
    The first epoch of a fit also prints after `early_steps` steps past the first one (which traces the
    graph), the first line with the fit's remaining time (`- eta: H:MM:SS`, see estimate_eta)."""

    def __init__(self, steps, seconds=60.0, early_steps=5, clock=time.monotonic):
        super().__init__()
        self.steps, self.seconds, self.early_steps, self.clock = steps, seconds, early_steps, clock
        self.epoch, self.last, self.start = 0, 0.0, 0.0
        self.epoch_starts = []  # clock() at each epoch's start in this fit (its duration: to the next one)
        self.train_seconds = None  # the last finished epoch's training steps (the rest: evaluation, callbacks)
        self.first_step_end, self.last_step_end = None, None

    def on_train_begin(self, logs=None):
        self.epoch_starts, self.train_seconds = [], None

    def on_epoch_begin(self, epoch, logs=None):
        now = self.clock()
        if self.epoch_starts and self.last_step_end is not None:
            self.train_seconds = self.last_step_end - self.epoch_starts[-1]
        self.epoch_starts.append(now)
        self.epoch, self.start = epoch + 1, now
        self.last = self.start - self.seconds  # the first step prints
        self.first_step_end = self.last_step_end = None

    def eta(self, batch, now):
        """Seconds left of the fit after step `batch` (0-based) of the current epoch, or None."""
        total = (self.params or {}).get("epochs")
        if not total:
            return None
        durations = [b - a for a, b in zip(self.epoch_starts, self.epoch_starts[1:])]
        step_seconds = ((now - self.first_step_end) / batch if batch >= 1 and self.first_step_end is not None
                        else None)
        eval_seconds = durations[-1] - self.train_seconds if durations and self.train_seconds is not None else None
        return estimate_eta(total - self.epoch, durations, self.steps, self.steps - batch - 1, step_seconds,
                            eval_seconds, now - self.start)

    def on_train_batch_end(self, batch, logs=None):
        now = self.clock()
        self.last_step_end = now
        if batch == 0:
            self.first_step_end = now
        early = len(self.epoch_starts) == 1 and batch == min(self.early_steps, self.steps - 1) and batch > 0
        if now - self.last < self.seconds and not early:
            return
        self.last = now
        loss = (logs or {}).get("loss")
        loss = f" - loss: {float(loss):.4f}" if loss is not None else ""
        rate = (batch + 1) / max(now - self.start, 1e-9)
        eta = self.eta(batch, now)
        eta = f" - eta: {format_eta(eta)}" if eta is not None else ""
        print(f"epoch {self.epoch} step {batch + 1}/{self.steps}{loss} - {rate:.2f} steps/s{eta}", flush=True)


def plot_curves(path, epochs, best_epoch=None):
    """Loss and valid/test accuracy per epoch -> a PNG (a dotted line at the epoch chosen on valid)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [e["epoch"] for e in epochs]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(x, [e["loss"] for e in epochs], "o-")
    left.set(xlabel="epoch", ylabel="training loss", title="loss")
    for key in ("valid_acc", "test_acc"):
        right.plot(x, [e[key] for e in epochs], "o-", label=key.replace("_", " "))
    right.set(xlabel="epoch", ylabel="accuracy", title="accuracy (epoch chosen on valid)")
    right.legend()
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if best_epoch:
            ax.axvline(best_epoch, color="gray", linestyle=":")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
