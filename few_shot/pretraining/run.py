"""One pretraining run: checks everything, builds the model, trains with `fit` (progress, checkpoints,
probe and log in `_Trainer`) and exports the HF and Google folders."""
import contextlib
import dataclasses
import json
import math
import os
import sys
import time

import keras
import numpy as np

from few_shot import checkpoints as ckpt
from few_shot.errors import FewShotError
from few_shot.masking import BlockStream, DocumentTokenizer, Masker
from few_shot.owned_files import remove_owned
from few_shot.pretraining.config import CHECKPOINT_DIR, GOOGLE_DIR, HF_DIR, LOG_FILE, prepare_output
from few_shot.pretraining.prepare import PreparedRun, prepare
from few_shot.pretraining.probe import PROBE_WORDS, ZeroShotProbe
from few_shot.pretraining.state import build_model, restore_optimizer, save_checkpoint
from few_shot.pretraining.training import MLMBatches, MaskedLMPretrainer, make_optimizer, make_strategy, mixed_precision


def _clock(seconds):
    """-> H:MM:SS"""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


class _Trainer(keras.callbacks.Callback):
    """Progress (a bar on a terminal, else a status line every --progress-every seconds), per-step
    loss, periodic checkpoints (+ probe) and the JSON log."""

    def __init__(self, run):
        super().__init__()
        self.run = run
        self.bar = None
        self.last_line = None  # when the last status line was printed

    def on_train_begin(self, logs=None):
        r = self.run
        if r.show_bar:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=r.config.steps, initial=r.start_step, unit="step", dynamic_ncols=True,
                            mininterval=0.5, file=sys.stderr, desc="pretrain")
        r.t_first_end = r.t_last_end = None
        r.pause_s = r.pause_at_last_end = 0.0
        r.t_begin = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        r = self.run
        step = r.start_step + batch + 1
        loss = float(logs["batch_loss"])
        r.losses.append(loss)
        now = time.perf_counter()
        if r.t_first_end is None:
            r.t_first_end = now
        r.t_last_end, r.pause_at_last_end = now, r.pause_s
        r.steps_done = step - r.start_step
        if self.bar is not None:
            smooth = float(np.mean(r.losses[-20:]))
            self.bar.set_postfix_str(f"loss={loss:.3f} (avg20 {smooth:.3f}) tok/s={r.tokens_per_second():,.0f}",
                                     refresh=False)
            self.bar.update(1)
        elif self.last_line is None or now - self.last_line >= r.config.progress_seconds:
            self.last_line = now  # the first step prints, then one line every progress_seconds
            print(r.status_line(step, loss), flush=True)
        if not math.isfinite(loss):
            self.model.stop_training = True
            r.diverged = step
            return
        # --max-minutes: checkpoint here and stop; run() then exports as after the last step
        out_of_time = (r.config.max_minutes is not None and step < r.config.steps
                       and time.perf_counter() - r.t_start >= 60 * r.config.max_minutes)
        if out_of_time:
            r.stopped_at_time_limit = step
            self.model.stop_training = True
            r.say(f"--max-minutes {r.config.max_minutes:g} reached at step {step} of {r.config.steps}: stopping "
                  f"(the learning rate has not decayed to 0; --resume continues the schedule)")
        if step % r.config.save_every == 0 or step == r.config.steps or out_of_time:
            t0 = time.perf_counter()
            # the JAX trainer keeps the weights outside the variables until the epoch ends: copy them back
            # before the probe reads them and the checkpoint saves them (a no-op on other backends)
            if hasattr(self.model, "jax_state_sync"):
                self.model.jax_state_sync()
            r.checkpoint(step)
            r.pause_s += time.perf_counter() - t0  # checkpoints (and probes) are not training time

    def on_train_end(self, logs=None):
        if self.bar is not None:
            self.bar.close()


class PretrainingRun:
    """One invocation: validates everything (arguments, output folder, corpus, probe file) before
    touching the output folder or building a model; `run()` trains, checkpoints and exports."""

    def __init__(self, config):
        """`config`: a PretrainConfig (checked here) or the PreparedRun of `prepare`."""
        self.t_start = time.perf_counter()
        prepared = config if isinstance(config, PreparedRun) else prepare(config)
        self.config, self.saved = prepared.config, prepared.saved
        self.documents, self.corpus_info, self.probe_rows = (prepared.documents, prepared.corpus_info,
                                                             prepared.probe_rows)
        c = self.config
        self.ckpt_folder = os.path.join(c.output, CHECKPOINT_DIR)
        self.start_step = self.saved["step"] if self.saved else 0
        self.losses = list(self.saved["losses"]) if self.saved else []
        history = self.saved.get("history", {}) if self.saved else {}
        self.checkpoints = list(history.get("checkpoints", []))
        self.previous_runs = list(history.get("runs", []))
        self.steps_done, self.diverged, self.t_first_end, self.t_begin = 0, None, None, None
        self.stopped_at_time_limit = None
        self.t_last_end, self.pause_s, self.pause_at_last_end = None, 0.0, 0.0
        self.tokens_per_step = c.batch_size * c.maxlen
        self.strategy_name = None
        self.batches = self.probe = None  # MLMBatches and ZeroShotProbe, made in run()
        # a tqdm bar only on a terminal; elsewhere (CI, nohup, a pipe) or with --no-progress: status lines
        self.show_bar = bool(c.progress and getattr(sys.stdout, "isatty", lambda: False)())

    def say(self, message):
        if self.show_bar:
            from tqdm.auto import tqdm
            tqdm.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def status_line(self, step, loss):
        """The line printed every --progress-every seconds when no bar is shown."""
        c = self.config
        tokens_per_s = self.tokens_per_second()
        steps_per_s = tokens_per_s / self.tokens_per_step
        eta = _clock((c.steps - step) / steps_per_s) if steps_per_s else "?"
        return (f"pretrain step {step}/{c.steps} - loss {loss:.4f} (avg20 {np.mean(self.losses[-20:]):.4f}) - "
                f"{tokens_per_s:,.0f} tokens/s - elapsed {_clock(time.perf_counter() - self.t_start)} - ETA {eta}")

    def elapsed(self):
        return round(time.perf_counter() - self.t_start, 3)

    def tokens_per_second(self):
        """Steady rate up to the end of the latest step, from the end of this run's first step (which
        includes tracing/compilation), not counting the time spent writing checkpoints."""
        now, pause = self.t_last_end, self.pause_at_last_end
        if self.steps_done > 1 and now - pause > self.t_first_end:
            return (self.steps_done - 1) * self.tokens_per_step / (now - pause - self.t_first_end)
        if self.steps_done and now > self.t_begin:
            return self.steps_done * self.tokens_per_step / (now - self.t_begin)
        return 0.0

    def this_run(self, end_step):
        train_s = time.perf_counter() - self.t_begin if self.t_begin else 0.0
        return {"start_step": self.start_step, "end_step": end_step, "wall_time_s": self.elapsed(),
                "train_time_s": round(train_s, 3), "tokens_per_second": round(self.tokens_per_second(), 1),
                "tokens_per_second_overall": round(self.steps_done * self.tokens_per_step / train_s, 1)
                if train_s else 0.0, "backend": keras.backend.backend(), "strategy": self.strategy_name,
                **({"batch_rewinds": self.batches.rewinds, "batch_late_requests": self.batches.late_requests}
                   if self.batches is not None else {})}

    def history(self, end_step):
        return {"checkpoints": self.checkpoints, "runs": self.previous_runs + [self.this_run(end_step)]}

    def write_log(self, step, exports=None):
        history = self.history(step)
        run = history["runs"][-1]
        log = {"steps": step, "loss": self.losses, "tokens_per_step": self.tokens_per_step,
               "tokens_per_second": run["tokens_per_second"], "wall_time_s": run["wall_time_s"],
               "train_time_s": run["train_time_s"], "backend": run["backend"], "strategy": run["strategy"],
               "config": dataclasses.asdict(self.config), "model": self.bert.bert_config(),
               "corpus": self.corpus_info, **history}
        if self.diverged:
            log["diverged_at_step"] = self.diverged
        if self.stopped_at_time_limit:
            log["stopped_at_time_limit"] = {"step": self.stopped_at_time_limit, "max_minutes": self.config.max_minutes}
        if exports is not None:
            log["exports"] = exports
        path = os.path.join(self.config.output, LOG_FILE)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(log, f, indent=1)
        os.replace(path + ".tmp", path)
        return log

    def checkpoint(self, step):
        entry = {"step": step, "loss_avg20": float(np.mean(self.losses[-20:])), "time_s": self.elapsed()}
        if self.probe:
            entry["probe"] = self.probe()
            self.say(f"step {step}: zero-shot probe accuracy {entry['probe']['accuracy']:.4f} on "
                     f"{entry['probe']['rows']} rows ({entry['probe']['predicted_1']:.0%} predicted 很)")
        self.checkpoints.append(entry)
        state = {"step": step, "optimizer_iterations": int(keras.ops.convert_to_numpy(self.optimizer.iterations)),
                 "stream": self.batches.stream_state_at(step), "losses": self.losses,
                 "documents": len(self.documents), "config": dataclasses.asdict(self.config),
                 "history": self.history(step)}
        save_checkpoint(self.ckpt_folder, self.bert, self.tokenizer, self.optimizer, state)
        self.write_log(step)

    def run(self):
        with mixed_precision(self.config.mixed_precision):
            return self._run()

    def _run(self):
        c = self.config
        keras.utils.set_random_seed(c.seed + self.start_step)
        strategy = make_strategy()
        if strategy is not None:
            n = strategy.num_replicas_in_sync
            self.strategy_name = f"MirroredStrategy ({n} replica{'s' if n > 1 else ''}: " \
                                 f"{', '.join(strategy.extended.worker_devices)})"
        with strategy.scope() if strategy else contextlib.nullcontext():
            self.bert, self.tokenizer = build_model(c, self.ckpt_folder if self.saved else None)
            missing = [w for w in PROBE_WORDS.values() if w not in self.tokenizer.token_dict]
            if self.probe_rows and missing:
                raise FewShotError(f"--probe needs the label words {'/'.join(missing)} in the vocabulary; use a "
                                   f"Chinese BERT vocab.txt or drop --probe")
            # only now, with the starting model loaded and checked: a bad --init-from leaves the folder as it was
            prepare_output(c)
            self.model = MaskedLMPretrainer(self.bert)
            self.optimizer = make_optimizer(c, c.steps)
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
            self.model.compile(optimizer=self.optimizer, loss=loss)
            self.optimizer.build(self.model.trainable_variables)
            if self.saved:
                restore_optimizer(self.optimizer, self.ckpt_folder)
        iterations = int(keras.ops.convert_to_numpy(self.optimizer.iterations))
        if iterations != self.start_step:
            raise FewShotError(f"{self.ckpt_folder}: the optimizer is at step {iterations} but the checkpoint says "
                               f"{self.start_step}; the checkpoint is inconsistent, start a new run")
        if self.probe_rows:
            self.probe = ZeroShotProbe(self.bert, self.tokenizer, self.probe_rows, c.maxlen)
        stream = BlockStream(self.documents, DocumentTokenizer(self.tokenizer, c.whole_word), c.maxlen, c.seed,
                             state=self.saved["stream"] if self.saved else None)
        masker = Masker(self.tokenizer, c.mask_rate, c.max_predictions, c.seed)
        remaining = max(0, c.steps - self.start_step)
        self.batches = MLMBatches(stream, masker, c.batch_size, self.start_step, remaining,
                                  workers=1 if keras.backend.backend() == "tensorflow" else 2)
        b = self.bert
        origin = (f"resuming at step {self.start_step}" if self.saved
                  else f"continuing {c.init_from}" if c.init_from else "from scratch")
        self.say(f"pretraining {origin}: {b.num_layers} layers, hidden {b.hidden_size}, {b.num_heads} heads, vocab "
                 f"{b.vocab_size}; {len(self.documents)} documents -> blocks of {c.maxlen}, batch {c.batch_size}, "
                 f"{'whole-word' if c.whole_word else 'token'} masking; steps {self.start_step}->{c.steps}; "
                 f"backend {keras.backend.backend()}" + (f", {self.strategy_name}" if self.strategy_name else ""))
        if remaining:
            # shuffle=False: Keras would otherwise ask for the batches in random order, and each
            # out-of-order batch means rewinding the packed stream and re-tokenising up to it
            self.model.fit(self.batches, epochs=1, verbose=0, shuffle=False, callbacks=[_Trainer(self)])
        else:
            self.say(f"the checkpoint is at step {self.start_step} >= --steps {c.steps}: nothing to train, exporting")
        end_step = self.start_step + self.steps_done
        if self.diverged:
            self.write_log(end_step)
            raise FewShotError(f"the loss became {self.losses[-1]} at step {self.diverged}; lower --lr (now {c.lr}) "
                               f"or raise --warmup-steps, and --resume from the last good checkpoint or --overwrite")
        return self.export(end_step)

    def export(self, end_step):
        out = self.config.output
        exports = {"hf": os.path.join(out, HF_DIR), "google": os.path.join(out, GOOGLE_DIR)}
        # a previous export's files only: a user's file in hf/ or google/ stays
        remove_owned(out, [f"{HF_DIR}/{name}" for name in ckpt.HF_FILES] +
                     [f"{GOOGLE_DIR}/{name}" for name in ckpt.GOOGLE_FILES])
        ckpt.export_hf(self.bert, self.tokenizer.vocab_path, exports["hf"])
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            exports["google"] = None
            exports["google_skipped"] = ("TensorFlow is not installed, so no Google/bert4keras checkpoint was "
                                         "written; install tensorflow and export DIR/hf with "
                                         "few_shot.checkpoints.export_google")
            self.say(f"skipping {os.path.join(out, GOOGLE_DIR)}: {exports['google_skipped']}")
        else:
            ckpt.export_google(self.bert, self.tokenizer.vocab_path, exports["google"])
        log = self.write_log(end_step, exports)
        self.say(f"done: step {end_step}, loss {np.mean(self.losses[-20:]) if self.losses else float('nan'):.3f} "
                 f"(mean of last 20), {log['tokens_per_second']:,.0f} tokens/s; wrote {exports['hf']}"
                 + (f", {exports['google']}" if exports["google"] else "") + f", {os.path.join(out, LOG_FILE)}")
        return log


def run_pretraining(config):
    """Pretrain as `config` says; -> the dict written to DIR/pretrain_log.json. Raises FewShotError
    for bad input (before any training where it can)."""
    return PretrainingRun(config).run()
