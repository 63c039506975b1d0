"""Pre-train soft prompts (PPT) on the frozen MLM, one format after the other; each ends as a portable
prompt file (OUTPUT/<format>.safetensors) that `--prompt-init` reads. A format's checkpoint (prompt
rows, Adam state, step) is written every --save-every steps, so `--resume` continues where it stopped
on the same batches (a batch is a function of the seed and the step)."""
import json
import os
import sys
import time

import keras
import numpy as np

from few_shot.calibration import probabilities
from few_shot.errors import Interrupted, signals_ignored
from few_shot.owned_files import remove_owned
from few_shot.prompt_pretraining.config import CHECKPOINT_DIR, CHECKPOINT_FILES, LOG_FILE, owned_files, prompt_file
from few_shot.prompt_pretraining.formats import SINGLE_WORDS, ExampleStream, pattern_of

PSEUDO_KEEP = 0.5  # of each pseudo-label's sentences, the most confident half is kept (balanced classes)


def pseudo_labels(mlm, bank, config):
    """Sentences of the corpus labelled by the frozen MLM itself (no labelled data): zero-shot scores of
    [MASK]满意。{text} (很 / 不), calibrated by their mean over the sample (contextual calibration with
    unlabelled texts), the most confident PSEUDO_KEEP of each class, as many of each -> [(text, label)]."""
    from few_shot.builder import build_model
    from few_shot.config import RunConfig
    from few_shot.preprocessor import PromptPreprocessor
    from few_shot.training import Scorer
    rng = np.random.default_rng(config.seed)
    picked = rng.choice(len(bank.sentences), size=min(config.pseudo_labels, len(bank.sentences)), replace=False)
    texts = [bank.sentences[i] for i in picked]
    pattern, words = pattern_of("single", 0)
    pre = PromptPreprocessor(mlm.tokenizer, pattern, words, config.maxlen)
    model = build_model("zeroshot", mlm, pre, RunConfig(method="zeroshot", maxlen=config.maxlen))
    log_probs = np.log(probabilities(Scorer(model).scores(pre.encode([(t, "positive") for t in texts]))))
    calibrated = log_probs - log_probs.mean(0, keepdims=True)
    label, margin = calibrated.argmax(-1), np.abs(calibrated[:, 0] - calibrated[:, 1])
    per_class = int(min((label == c).sum() for c in range(2)) * PSEUDO_KEEP)
    keep = []
    for c in range(2):
        rows = np.flatnonzero(label == c)
        keep += [(texts[i], pre.labels[c]) for i in rows[np.argsort(-margin[rows])][:per_class]]
    return keep


class FormatRun:
    """One format: the prompt model over the frozen MLM, its batches, checkpoint and file."""

    def __init__(self, fmt, mlm, bank, config, pseudo):
        from few_shot.builder import build_model
        from few_shot.config import RunConfig
        from few_shot.preprocessor import PromptPreprocessor
        self.fmt, self.mlm, self.config = fmt, mlm, config
        pattern, words = pattern_of(fmt, config.prompt_length)
        self.preprocessor = PromptPreprocessor(mlm.tokenizer, pattern, words, config.maxlen)
        self.model = build_model("prompt", mlm, self.preprocessor,
                                 RunConfig(method="prompt", seed=config.seed, maxlen=config.maxlen))
        self.optimizer = keras.optimizers.Adam(config.lr)
        self.model.compile(optimizer=self.optimizer, loss=self.model.loss_function())
        self.optimizer.build(self.model.trainable_variables)
        self.stream = ExampleStream(fmt, bank, config.batch_size, config.seed, pseudo)
        self.folder = os.path.join(config.output, CHECKPOINT_DIR, fmt)
        self.step, self.losses, self.tokens, self.seconds = 0, [], 0, 0.0

    def restore(self):
        from few_shot.pretraining.state import restore_optimizer
        with open(os.path.join(self.folder, "state.json"), encoding="utf-8") as f:
            state = json.load(f)
        self.model.prompt_encoder.set_initial_embeddings(np.load(os.path.join(self.folder, "prompt.npy")))
        restore_optimizer(self.optimizer, self.folder)
        with np.load(os.path.join(self.folder, "seeds.npz")) as seeds:  # dropout draws on as if never stopped
            for i, variable in enumerate(self.seed_states()):
                variable.assign(seeds[f"v{i}"])
        self.step, self.losses = state["step"], state["losses"]
        self.tokens, self.seconds = state["tokens"], state["seconds"]

    def checkpoint(self):
        """prompt.npy + optimizer.npz + state.json, written into .tmp and renamed."""
        tmp = self.folder + ".tmp"
        remove_owned(tmp, CHECKPOINT_FILES, keep_folder=False)
        os.makedirs(tmp)
        np.save(os.path.join(tmp, "prompt.npy"), self.prompt_rows())
        for name, variables in (("optimizer.npz", self.optimizer.variables), ("seeds.npz", self.seed_states())):
            np.savez(os.path.join(tmp, name), **{f"v{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(variables)})
        with open(os.path.join(tmp, "state.json"), "w", encoding="utf-8") as f:
            json.dump({"format": self.fmt, "step": self.step, "losses": self.losses, "tokens": self.tokens,
                       "seconds": self.seconds}, f)
        remove_owned(self.folder, CHECKPOINT_FILES, keep_folder=False)
        os.replace(tmp, self.folder)

    def seed_states(self):
        """The dropout layers' random-number states (the frozen MLM still drops out while the prompt trains)."""
        return [v for v in self.model.non_trainable_variables if "seed_generator" in v.path]

    def prompt_rows(self):
        return np.asarray(keras.ops.convert_to_numpy(self.model.prompt_embeddings()), dtype="float32")

    def train(self, say):
        c = self.config
        bar = None
        if c.progress and sys.stderr.isatty():
            from tqdm.auto import tqdm
            bar = tqdm(total=c.steps, initial=self.step, desc=f"ppt {self.fmt}", unit="step", file=sys.stderr)
        last_line = time.perf_counter()
        while self.step < c.steps:
            t0 = time.perf_counter()
            data = self.preprocessor.encode(self.stream.batch(self.step))
            # lengths rounded up to 32: a handful of traced shapes instead of one per batch
            inputs, labels = data.batch(np.arange(len(data)), self.mlm.tokenizer.pad_id, multiple=32)
            loss = float(self.model.train_on_batch(inputs, labels))
            self.seconds += time.perf_counter() - t0
            self.tokens += int(np.asarray(inputs["token_ids"]).size)
            self.step += 1
            self.losses.append(round(loss, 5))
            if bar is not None:
                bar.set_postfix_str(f"loss={np.mean(self.losses[-20:]):.3f} tok/s={self.tokens / self.seconds:,.0f}")
                bar.update(1)
            elif time.perf_counter() - last_line >= c.progress_seconds or self.step in (1, c.steps):
                last_line = time.perf_counter()
                say(f"ppt {self.fmt} step {self.step}/{c.steps} - loss {np.mean(self.losses[-20:]):.4f} - "
                    f"{self.tokens / self.seconds:,.0f} tokens/s")
            if self.step % c.save_every == 0 or self.step == c.steps:
                self.checkpoint()
        if bar is not None:
            bar.close()

    def held_out_accuracy(self, batches=4):
        """Accuracy on batches the training never sees (steps past the last one)."""
        from few_shot.training import Scorer
        rows = [r for b in range(batches) for r in self.stream.batch(self.config.steps + 10_000 + b)]
        return Scorer(self.model).accuracy(self.preprocessor.encode(rows))

    def save(self):
        from few_shot.portable import save_portable_prompt
        return save_portable_prompt(self.model, os.path.join(self.config.output, prompt_file(self.fmt)), self.mlm.path)


def run_prompt_pretraining(config, bank, info):
    """Train every format of `config` (prepared by config.prepare) -> the log dict (also OUTPUT/ppt_log.json)."""
    from few_shot.loading import load_mlm

    def say(message):
        print(message, file=sys.stderr, flush=True)
    if config.overwrite and os.path.isdir(config.output):
        remove_owned(config.output, owned_files(config.formats))
    os.makedirs(config.output, exist_ok=True)
    log_path = os.path.join(config.output, LOG_FILE)
    log = {"config": {k: v for k, v in vars(config).items()}, **info, "formats": {}}
    if config.resume and os.path.isfile(log_path):
        with open(log_path, encoding="utf-8") as f:
            log["formats"] = json.load(f).get("formats", {})
    keras.utils.set_random_seed(config.seed)
    mlm = load_mlm(config.model)
    pseudo = None
    if {"single", "unified"} & set(config.formats):
        t0 = time.perf_counter()
        pseudo = pseudo_labels(mlm, bank, config)
        log["pseudo_labels"] = {"sentences_scored": min(config.pseudo_labels, len(bank.sentences)),
                                "kept": len(pseudo), "seconds": round(time.perf_counter() - t0, 1),
                                "words": SINGLE_WORDS}
        say(f"pseudo-labels: {len(pseudo)} sentences kept of {log['pseudo_labels']['sentences_scored']} scored "
            f"zero-shot by the frozen MLM (calibrated, most confident half of each class)")
    for fmt in config.formats:
        if config.resume and log["formats"].get(fmt, {}).get("done"):
            say(f"ppt {fmt}: done earlier, kept {prompt_file(fmt)}")
            continue
        run = FormatRun(fmt, mlm, bank, config, pseudo)
        if config.resume and os.path.isfile(os.path.join(run.folder, "state.json")):
            run.restore()
            say(f"ppt {fmt}: resuming at step {run.step}")
        try:
            run.train(say)
        except Interrupted as stop:
            with signals_ignored():
                run.checkpoint()
            raise Interrupted(stop.signum, f"interrupted at step {run.step} of {config.steps} ({fmt}); checkpoint "
                                           f"saved: continue with --resume --output {config.output}") from None
        path = run.save()
        log["formats"][fmt] = {"done": True, "file": os.path.basename(path), "steps": run.step,
                               "pattern": run.preprocessor.pattern.template, "tokens": run.tokens,
                               "train_seconds": round(run.seconds, 1),
                               "tokens_per_second": round(run.tokens / max(run.seconds, 1e-9), 1),
                               "loss_first20": float(np.mean(run.losses[:20])),
                               "loss_last20": float(np.mean(run.losses[-20:])),
                               "held_out_accuracy": run.held_out_accuracy(), "losses": run.losses}
        with open(log_path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(log, f, indent=1, ensure_ascii=False)
        os.replace(log_path + ".tmp", log_path)
        entry = log["formats"][fmt]
        say(f"ppt {fmt}: {entry['steps']} steps, {entry['tokens']:,} tokens in {entry['train_seconds']} s "
            f"({entry['tokens_per_second']:,.0f} tokens/s); loss {entry['loss_first20']:.3f} -> "
            f"{entry['loss_last20']:.3f}; held-out accuracy {entry['held_out_accuracy']:.3f}; wrote {path}")
    return log
