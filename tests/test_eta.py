"""The fit's remaining-time estimate on the per-epoch line (EpochLogger) and the progress line
(ProgressLine), with a fake clock."""
from types import SimpleNamespace

import numpy as np
import pytest

from few_shot.callbacks import EpochLogger, ProgressLine, epoch_estimate, estimate_eta, format_eta


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize("seconds, text", [(0, "0:00:00"), (-3, "0:00:00"), (59.6, "0:01:00"), (3661, "1:01:01"),
                                           (100000, "27:46:40")])
def test_format_eta(seconds, text):
    assert format_eta(seconds) == text


def test_epoch_estimate_leaves_out_the_first_epoch_once_a_later_one_is_known():
    assert epoch_estimate([]) is None
    assert epoch_estimate([30.0]) == 30.0
    assert epoch_estimate([30.0, 10.0, 12.0]) == 11.0


def test_estimate_eta():
    assert estimate_eta(3) is None  # nothing measured yet
    # first epoch, 10 of 100 steps done at 1 s a step after the first: 90 s + 4 epochs of 100 s
    assert estimate_eta(4, steps=100, steps_left=90, step_seconds=1.0) == 490.0
    # with a known evaluation time, it is added to every epoch
    assert estimate_eta(1, steps=100, steps_left=0, step_seconds=1.0, eval_seconds=20.0) == 20.0 + 120.0
    # finished epochs set the pace; the current one's step time its own rest
    assert estimate_eta(2, [30.0, 10.0, 12.0], steps=100, steps_left=50, step_seconds=0.1, eval_seconds=1.0) == 28.0
    # no step time in this epoch yet: the epoch estimate less what has elapsed of it
    assert estimate_eta(2, [30.0, 10.0, 12.0], elapsed=4.0) == 7.0 + 22.0
    assert estimate_eta(0, [30.0], elapsed=45.0) == 0.0


def progress_lines(capsys):
    return [line for line in capsys.readouterr().out.splitlines() if line]


def test_progress_line_eta_after_the_first_steps_and_from_finished_epochs(capsys):
    clock = Clock()
    line = ProgressLine(steps=10, seconds=60, early_steps=5, clock=clock)
    line.set_params({"epochs": 3, "steps": 10})
    line.on_train_begin()
    line.on_epoch_begin(0)
    clock.now = 5.0  # the first step traces the graph
    line.on_train_batch_end(0, {"loss": 0.5})
    for batch in range(1, 10):
        clock.now = 5.0 + batch
        line.on_train_batch_end(batch, {"loss": 0.5})
    first, early = progress_lines(capsys)
    assert first == "epoch 1 step 1/10 - loss: 0.5000 - 0.20 steps/s"  # no estimate from the tracing step
    # after 5 more steps at 1 s: 4 steps left of this epoch + 2 epochs of 10 steps (evaluation unknown yet)
    assert early == "epoch 1 step 6/10 - loss: 0.5000 - 0.60 steps/s - eta: 0:00:24"
    clock.now = 20.0  # evaluation and the other callbacks: 14 -> 20
    line.on_epoch_begin(1)
    clock.now = 21.0
    line.on_train_batch_end(0, {"loss": 0.4})
    # epoch 2 of 3: one 20 s epoch known, 1 s of this one elapsed: 19 s + 20 s
    assert progress_lines(capsys) == ["epoch 2 step 1/10 - loss: 0.4000 - 1.00 steps/s - eta: 0:00:39"]
    clock.now = 81.0  # a line a minute
    line.on_train_batch_end(1, {"loss": 0.4})
    # 1 step in 60 s after the first: 8 steps left at 60 s + 6 s evaluation (epoch 1's) + one 20 s epoch
    assert progress_lines(capsys) == ["epoch 2 step 2/10 - loss: 0.4000 - 0.03 steps/s - eta: 0:08:26"]


def test_progress_line_without_epochs_known_prints_no_eta(capsys):
    clock = Clock()
    line = ProgressLine(steps=4, seconds=60, clock=clock)
    line.on_epoch_begin(0)
    for batch in range(4):
        clock.now = batch + 1.0
        line.on_train_batch_end(batch)
    assert all("eta" not in text for text in progress_lines(capsys))


class FakeScorer:
    model = SimpleNamespace(num_labels=2)

    def scores(self, data, name):
        return np.eye(2)[data.labels]


def test_epoch_line_ends_with_the_remaining_time_of_the_fit(capsys):
    clock = Clock()
    data = SimpleNamespace(labels=np.array([0, 1, 1]))
    logger = EpochLogger(FakeScorer(), data, data, clock=clock)
    logger.set_model(SimpleNamespace(trainable_weights=[]))
    logger.set_params({"epochs": 4, "steps": 10})
    logger.on_train_begin()
    clock.now = 100.0  # the first epoch also traces
    logger.on_epoch_end(0, {"loss": 0.7})
    clock.now = 130.0
    logger.on_epoch_end(1, {"loss": 0.6})
    clock.now = 170.0
    logger.on_epoch_end(2, {"loss": 0.5})
    clock.now = 200.0
    logger.on_epoch_end(3, {"loss": 0.4})
    lines = progress_lines(capsys)
    prefix = "epoch: 1 - loss: 0.7000 - valid_acc: 1.0000 - test_acc: 1.0000 - best_valid_acc: 1.0000 - " \
             "test_acc_at_best: 1.0000"
    assert lines[0] == prefix + " - eta: 0:05:00"  # 3 epochs at the first one's 100 s
    assert lines[1].endswith(" - eta: 0:01:00")  # 2 epochs at 30 s (the first left out)
    assert lines[2].endswith(" - eta: 0:00:35")  # 1 epoch at (30 + 40) / 2
    assert lines[3].endswith("test_acc_at_best: 1.0000")  # the last epoch: nothing left


def test_epoch_line_outside_a_fit_has_no_eta(capsys):
    data = SimpleNamespace(labels=np.array([0, 1]))
    logger = EpochLogger(FakeScorer(), data, data)
    logger.set_model(SimpleNamespace(trainable_weights=[]))
    logger.on_epoch_end(0, {"loss": 0.7})
    assert progress_lines(capsys)[0].endswith("test_acc_at_best: 1.0000")
