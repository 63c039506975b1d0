"""Masked-LM pretraining (from scratch or continued) of a `BertMaskedLM` on a plain-text corpus.

Backend-agnostic: the data pipeline is numpy (a `keras.utils.PyDataset` whose batch `i` is a pure
function of the corpus, the seed and the global step), the model is trained with `compile`/`fit`
on a small wrapper that gathers the masked positions before the vocabulary projection, and the
only TensorFlow-specific piece is the optional `tf.distribute.MirroredStrategy` scope.

Pipeline: read + validate the corpus (one document per line, UTF-8) -> tokenise each document
with the project `Tokenizer` (whole-word groups from jieba with `whole_word=True`) -> pack into
`maxlen` blocks `[CLS] d1 [SEP] d2 [SEP] ...` (long documents continue in the next block) ->
mask 15% of the non-special tokens (80% [MASK] / 10% random / 10% unchanged), at most
`max_predictions` per block -> sample-weighted sparse cross-entropy at the masked positions.

Checkpoints (`DIR/checkpoint/`) are an HF folder (so `load_mlm` and `--init-from` read them)
plus `optimizer.npz` and `state.json` (step, data-stream position, loss history, config), which
is what `--resume` continues from exactly.
"""
import contextlib
import dataclasses
import json
import math
import os
import shutil
import sys
import threading
import time
import warnings

import keras
import numpy as np
from keras import ops

from few_shot import checkpoints as ckpt
from few_shot.bert import BertMaskedLM, split_inputs
from few_shot.errors import FewShotError
from few_shot.masking import CJK, BlockStream, DocumentTokenizer, Masker, import_jieba
from few_shot.loading import DEFAULT_MODEL, load_mlm
from few_shot.tokenizer import Tokenizer, load_vocab

CHECKPOINT_DIR, HF_DIR, GOOGLE_DIR, LOG_FILE = "checkpoint", "hf", "google", "pretrain_log.json"
STATE_FILE, OPTIMIZER_FILE = "state.json", "optimizer.npz"
OUTPUTS = (CHECKPOINT_DIR, CHECKPOINT_DIR + ".tmp", CHECKPOINT_DIR + ".old", HF_DIR, GOOGLE_DIR, LOG_FILE)
PROBE_PATTERN = "[MASK]满意。{text}"
PROBE_WORDS = {"0": "不", "1": "很"}
MAX_LISTED_LINES = 5


class BadLineWarning(UserWarning):
    """Corpus lines were skipped (`on_bad_line="skip"`)."""


# -- configuration ------------------------------------------------------------------------------

@dataclasses.dataclass
class PretrainConfig:
    """Everything `run_pretraining` needs. `None` means "the default" (or, with `resume`, "what the
    checkpoint was trained with"); see `resolve`."""
    corpus: list
    output: str
    init_from: str = None
    vocab: str = None
    layers: int = None
    hidden: int = None
    heads: int = None
    intermediate: int = None
    max_position: int = None
    maxlen: int = None
    whole_word: bool = None
    mask_rate: float = None
    max_predictions: int = None
    steps: int = 1000
    batch_size: int = None
    lr: float = None
    warmup_steps: int = None
    weight_decay: float = None
    clip_norm: float = None
    seed: int = None
    save_every: int = 500
    resume: bool = False
    overwrite: bool = False
    probe: str = None
    probe_limit: int = None
    on_bad_line: str = "stop"
    progress: bool = True
    mixed_precision: bool = False  # Keras "mixed_bfloat16": bf16 compute, float32 weights (GPUs/TPUs)
    max_minutes: float = None  # stop cleanly (checkpoint + export) once the run is this old


# Settings a checkpoint fixes: on --resume they come from the checkpoint, and passing a different
# value is an error (the run would not be a continuation any more).
RESUME_FIXED = ("init_from", "vocab", "layers", "hidden", "heads", "intermediate", "max_position", "maxlen",
                "whole_word", "mask_rate", "max_predictions", "batch_size", "lr", "warmup_steps",
                "weight_decay", "clip_norm", "seed")
ARCH_FLAGS = {"layers": "num_layers", "hidden": "hidden_size", "heads": "num_heads",
              "intermediate": "intermediate_size", "max_position": "max_position"}


def _flag(name):
    return "--" + name.replace("_", "-")


def resolve(config, saved=None):
    """-> a copy of `config` with every default filled in (from `saved`, the checkpoint's resolved
    config, when resuming)."""
    c = dataclasses.replace(config, corpus=list(config.corpus))
    if saved is not None:
        for key in RESUME_FIXED:
            mine, theirs = getattr(c, key), saved.get(key)
            if key in ("vocab", "init_from") and mine is not None and theirs is not None:
                same = os.path.abspath(mine) == os.path.abspath(theirs)
            else:
                same = mine == theirs
            if mine is not None and not same:
                raise FewShotError(f"{_flag(key)} {mine} differs from the checkpoint's {theirs!r}; a resumed run keeps "
                                   f"the checkpoint's settings: drop {_flag(key)} or start a new run")
            setattr(c, key, theirs)
        return c
    c.whole_word = bool(c.whole_word)
    c.maxlen = 128 if c.maxlen is None else c.maxlen
    c.mask_rate = 0.15 if c.mask_rate is None else c.mask_rate
    if c.max_predictions is None:
        c.max_predictions = max(1, math.ceil(c.maxlen * c.mask_rate))
    c.batch_size = 32 if c.batch_size is None else c.batch_size
    c.lr = (1e-4 if c.init_from else 1e-3) if c.lr is None else c.lr
    c.warmup_steps = max(0, c.steps // 10) if c.warmup_steps is None else c.warmup_steps
    c.weight_decay = 0.01 if c.weight_decay is None else c.weight_decay
    c.clip_norm = 1.0 if c.clip_norm is None else c.clip_norm
    c.seed = 0 if c.seed is None else c.seed
    if c.init_from is None:
        c.layers = 4 if c.layers is None else c.layers
        c.hidden = 256 if c.hidden is None else c.hidden
        c.heads = 4 if c.heads is None else c.heads
        c.intermediate = 4 * c.hidden if c.intermediate is None else c.intermediate
        c.max_position = max(512, c.maxlen) if c.max_position is None else c.max_position
    return c


def check_config(c):
    """Argument-level checks (the ones that need no file)."""
    positive = {"steps": c.steps, "batch_size": c.batch_size, "save_every": c.save_every}
    if c.init_from is None:
        positive.update(layers=c.layers, hidden=c.hidden, heads=c.heads, intermediate=c.intermediate)
    for key, value in positive.items():
        if value is None or value < 1:
            raise FewShotError(f"{_flag(key)} {value}: must be a positive integer")
    if c.maxlen < 8:
        raise FewShotError(f"--maxlen {c.maxlen}: too short to pack documents; use --maxlen 64 or more")
    if not 0 < c.mask_rate < 1:
        raise FewShotError(f"--mask-rate {c.mask_rate}: must be between 0 and 1 (BERT uses 0.15)")
    if c.max_predictions < 1 or c.max_predictions > c.maxlen:
        raise FewShotError(f"--max-predictions {c.max_predictions}: must be between 1 and --maxlen {c.maxlen}")
    if c.lr <= 0 or c.weight_decay < 0 or c.warmup_steps < 0 or c.clip_norm < 0:
        raise FewShotError("--lr must be > 0 and --weight-decay, --warmup-steps, --clip-norm >= 0")
    if c.init_from is None:
        if c.hidden % c.heads:
            raise FewShotError(f"--hidden {c.hidden} is not divisible by --heads {c.heads}; pick heads that divide "
                               f"it (e.g. --heads {max(h for h in range(1, 17) if c.hidden % h == 0)})")
        if c.maxlen > c.max_position:
            raise FewShotError(f"--maxlen {c.maxlen} exceeds --max-position {c.max_position}; raise --max-position")
    if c.on_bad_line not in ("stop", "skip"):
        raise FewShotError(f"--on-bad-line {c.on_bad_line!r}: use 'stop' or 'skip'")
    if c.probe_limit is not None and c.probe_limit < 1:
        raise FewShotError(f"--probe-limit {c.probe_limit}: must be a positive integer")
    if c.max_minutes is not None and not c.max_minutes > 0:
        raise FewShotError(f"--max-minutes {c.max_minutes}: must be a positive number of minutes")


def check_output(config):
    """Refuse a non-empty output folder unless --overwrite or --resume (nothing is deleted here)."""
    out = config.output
    if config.resume and config.overwrite:
        raise FewShotError("--resume and --overwrite contradict each other; pass one of them")
    if os.path.exists(out) and not os.path.isdir(out):
        raise FewShotError(f"--output {out}: is a file; pass a folder")
    if config.resume:
        if not os.path.exists(os.path.join(out, CHECKPOINT_DIR, STATE_FILE)):
            raise FewShotError(f"{os.path.join(out, CHECKPOINT_DIR)}: no checkpoint to resume from; run without "
                               f"--resume (add --overwrite to start over in {out})")
    elif os.path.isdir(out) and os.listdir(out) and not config.overwrite:
        raise FewShotError(f"--output {out}: exists and is not empty; pass --resume to continue its checkpoint, "
                           f"--overwrite to start over, or choose a new folder")


def prepare_output(config):
    """Create the output folder; with --overwrite remove the outputs of a previous run (only those)."""
    if config.overwrite and os.path.isdir(config.output):
        for name in OUTPUTS:
            path = os.path.join(config.output, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    os.makedirs(config.output, exist_ok=True)


# -- corpus -------------------------------------------------------------------------------------

def _lines(numbers):
    shown = ", ".join(str(n) for n in numbers[:MAX_LISTED_LINES])
    more = f" and {len(numbers) - MAX_LISTED_LINES} more" if len(numbers) > MAX_LISTED_LINES else ""
    return f"line{'s' if len(numbers) > 1 else ''} {shown}{more}"


def read_corpus(paths, on_bad_line="stop"):
    """-> (documents, per-file info). One document per non-blank line; every file must be UTF-8
    and contain Chinese text. Non-UTF-8 lines stop the run (`on_bad_line="stop"`, listing their
    line numbers) or are dropped with a `BadLineWarning` (`"skip"`)."""
    if isinstance(paths, str):
        paths = [paths]
    if not paths:
        raise FewShotError("no corpus given; pass --corpus FILE (one document per line)")
    documents, info = [], []
    for path in paths:
        if os.path.isdir(path):
            raise FewShotError(f"--corpus {path}: is a folder; pass the text file(s) in it")
        bad, first_error, docs, has_cjk = [], None, [], False
        try:
            with open(path, "rb") as f:
                for lineno, raw in enumerate(f, 1):
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError as e:
                        bad.append(lineno)
                        first_error = first_error or f"{e.reason} at byte {e.start}"
                        continue
                    if lineno == 1:
                        line = line.lstrip("\ufeff")
                    line = line.strip()
                    if line:
                        docs.append(line)
                        has_cjk = has_cjk or CJK.search(line) is not None
        except FileNotFoundError:
            raise FewShotError(f"--corpus {path}: file not found; pass a UTF-8 text file, one document per line") \
                from None
        except OSError as e:
            raise FewShotError(f"--corpus {path}: cannot be read ({e.strerror}); check the path and permissions") \
                from None
        if bad and on_bad_line == "stop":
            raise FewShotError(f"{path}: {_lines(bad)} not valid UTF-8 ({first_error}); convert the file "
                               f"(e.g. iconv -f GBK -t UTF-8) or pass --on-bad-line skip to drop such lines")
        if bad:
            warnings.warn(f"{path}: skipped {len(bad)} line{'s' if len(bad) > 1 else ''} that {'are' if len(bad) > 1 else 'is'} "
                          f"not valid UTF-8 ({_lines(bad)})", BadLineWarning, stacklevel=2)
        if not docs:
            why = f" after skipping {len(bad)} non-UTF-8 lines" if bad else ""
            raise FewShotError(f"--corpus {path}: no documents{why} (the file is empty or blank); pass a UTF-8 text "
                               f"file with one document per line")
        if not has_cjk:
            raise FewShotError(f"--corpus {path}: no Chinese (CJK) characters in its {len(docs)} documents; this "
                               f"pretrains a Chinese BERT, pass Chinese text")
        documents.extend(docs)
        info.append({"path": os.path.abspath(path), "documents": len(docs), "skipped_lines": len(bad)})
    return documents, info


def read_probe(path, limit=None):
    """`text<TAB>label` rows (label 0/1; a first row labelled `label` is a header) -> [(text, int)]."""
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                text, tab, label = line.rpartition("\t")
                if lineno == 1 and label.strip().lower() == "label":
                    continue
                if not tab or label.strip() not in ("0", "1"):
                    raise FewShotError(f"--probe {path}: line {lineno} is not 'text<TAB>0|1'; fix the row (labels: "
                                       f"1 = positive/很, 0 = negative/不)")
                rows.append((text, int(label)))
    except FileNotFoundError:
        raise FewShotError(f"--probe {path}: file not found; pass a tsv file of text<TAB>label rows") from None
    except UnicodeDecodeError as e:
        raise FewShotError(f"--probe {path}: not UTF-8 ({e.reason} at byte {e.start}); re-save it as UTF-8") \
            from None
    if not rows:
        raise FewShotError(f"--probe {path}: no rows; pass a tsv file of text<TAB>label rows")
    return rows[:limit] if limit else rows


class MLMBatches(keras.utils.PyDataset):
    """Batch `i` = the masked blocks of global step `start_step + i`. Blocks are produced in order
    (any thread may ask for any index; a lock serialises the stream) and the stream state before
    each batch is remembered, so a checkpoint can save exactly where the next step's data starts."""

    # Keras may build more than one iterator over the batches (each starts at batch 0) and
    # prefetches ahead of training, so a batch can be asked for after the stream has moved on:
    # then the stream is rewound to the state remembered for that step and replayed (same blocks).
    KEEP, KEEP_STATES = 64, 4096

    def __init__(self, stream, masker, batch_size, start_step, num_steps, workers=1):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
        self.stream, self.masker, self.batch_size = stream, masker, batch_size
        self.start_step, self.num_steps = start_step, num_steps
        self._next = start_step
        self._blocks, self._states = {}, {}
        self._lock = threading.Lock()
        self.rewinds = 0  # replays (each re-reads the stream from a remembered state): should stay ~0
        self.late_requests, self._latest = 0, -1  # requests for a step before one already asked for

    def __len__(self):
        return self.num_steps

    def blocks(self, step):
        with self._lock:
            self.late_requests += step < self._latest
            self._latest = max(self._latest, step)
            if step not in self._blocks and step < self._next:
                if step not in self._states:
                    raise RuntimeError(f"batch for step {step} is too far behind to replay")
                self.stream.restore(self._states[step])
                self.rewinds += 1
                self._next = step
            while self._next <= step:
                self._states[self._next] = self.stream.state()
                made = [self.stream.next_block() for _ in range(self.batch_size)]
                self._blocks[self._next] = (np.stack([m[0] for m in made]), np.stack([m[1] for m in made]))
                self._blocks.pop(self._next - self.KEEP, None)
                self._states.pop(self._next - self.KEEP_STATES, None)
                self._next += 1
            return self._blocks[step]

    def __getitem__(self, index):
        step = self.start_step + index
        ids, groups = self.blocks(step)
        inputs, labels, weights = self.masker.mask_batch(ids, groups, step)
        return inputs, labels, weights

    def stream_state_at(self, step):
        """The stream position from which the batch of `step` is made."""
        with self._lock:
            if step in self._states:
                return self._states[step]
        self.blocks(step)  # not made yet (or the stream was rewound since): make it, which records it
        with self._lock:
            return self._states[step]


# -- model, loss, schedule ---------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="few_shot")
class MaskedLMPretrainer(keras.Model):
    """{token_ids, segment_ids, masked_positions [B, P]} -> logits [B, P, vocab] at the masked
    positions only (gathered before the vocabulary projection, as BERT's pretraining does)."""

    def __init__(self, bert, **kwargs):
        super().__init__(**kwargs)
        self.bert = bert
        self.batch_loss = LastValue(name="batch_loss")

    def compute_loss(self, *args, **kwargs):
        """The compiled loss, also kept as this step's `batch_loss` log (no second cross-entropy)."""
        loss = super().compute_loss(*args, **kwargs)
        self.batch_loss.update_state(loss)
        return loss

    def call(self, inputs, training=False):
        token_ids, segment_ids = split_inputs(inputs)
        positions = ops.cast(inputs["masked_positions"], "int32")
        hidden = self.bert.encode(token_ids, segment_ids, training=training)
        batch, length = ops.shape(hidden)[0], ops.shape(hidden)[1]
        flat = ops.reshape(hidden, (-1, self.bert.hidden_size))
        index = positions + ops.arange(batch, dtype="int32")[:, None] * length
        gathered = ops.reshape(ops.take(flat, ops.reshape(index, (-1,)), axis=0),
                               (batch, ops.shape(positions)[1], self.bert.hidden_size))
        return self.bert.mlm_logits(gathered)


@keras.saving.register_keras_serializable(package="few_shot")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak` over `warmup_steps` (the first update already uses peak/warmup),
    then linear decay to 0 at `total_steps`."""

    def __init__(self, peak, warmup_steps, total_steps):
        self.peak, self.warmup_steps, self.total_steps = float(peak), int(warmup_steps), int(total_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = (step + 1.0) / float(max(1, self.warmup_steps))
        decay = (float(self.total_steps) - step) / float(max(1, self.total_steps - self.warmup_steps))
        return self.peak * ops.maximum(0.0, ops.minimum(warm, decay))

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


class LastValue(keras.metrics.Metric):
    """Holds the last value given to `update_state` (Keras' own `loss` log is a running mean).
    Summed over replicas on read, which suits a loss already divided by the replica count."""

    def __init__(self, name="batch_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.value = self.add_variable((), "zeros", name="value")

    def update_state(self, value):
        self.value.assign(ops.cast(value, self.value.dtype))

    def result(self):
        return ops.convert_to_tensor(self.value)


def make_optimizer(c, total_steps):
    optimizer = keras.optimizers.AdamW(
        learning_rate=WarmupLinearDecay(c.lr, c.warmup_steps, total_steps), weight_decay=c.weight_decay,
        beta_1=0.9, beta_2=0.999, epsilon=1e-6, global_clipnorm=c.clip_norm or None)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])  # as BERT: no decay on LN / biases
    return optimizer


@contextlib.contextmanager
def mixed_precision(enabled):
    """Keras' global dtype policy "mixed_bfloat16" (bf16 compute, float32 variables and loss) for the
    duration of the run, then the previous policy again."""
    if not enabled:
        yield
        return
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def make_strategy():
    """MirroredStrategy over all local GPUs (else the CPU) under TensorFlow; None otherwise."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf
    return tf.distribute.MirroredStrategy()


# -- checkpoints --------------------------------------------------------------------------------

def save_checkpoint(folder, bert, tokenizer, optimizer, state):
    """Atomically (write .tmp, then rename) write an HF folder + optimizer.npz + state.json."""
    tmp, old = folder + ".tmp", folder + ".old"
    for path in (tmp, old):
        if os.path.exists(path):
            shutil.rmtree(path)
    ckpt.export_hf(bert, tokenizer.vocab_path, tmp)
    arrays = {f"v{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(optimizer.variables)}
    np.savez(os.path.join(tmp, OPTIMIZER_FILE), **arrays)
    state = dict(state, optimizer_variables=[v.path for v in optimizer.variables])
    with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as f:
        json.dump(state, f)
    if os.path.exists(folder):
        os.rename(folder, old)
    os.rename(tmp, folder)
    if os.path.exists(old):
        shutil.rmtree(old)


def read_state(folder):
    return ckpt.read_json(os.path.join(folder, CHECKPOINT_DIR, STATE_FILE))


def restore_optimizer(optimizer, folder):
    path = os.path.join(folder, OPTIMIZER_FILE)
    try:
        with np.load(path) as data:
            arrays = [data[f"v{i}"] for i in range(len(data.files))]
    except (OSError, ValueError, KeyError) as e:
        raise FewShotError(f"{path}: cannot be read ({e}); the checkpoint is incomplete, start a new run") from None
    variables = optimizer.variables
    if len(arrays) != len(variables) or any(tuple(a.shape) != tuple(v.shape) for a, v in zip(arrays, variables)):
        raise FewShotError(f"{path}: optimizer state does not match the model ({len(arrays)} arrays for "
                           f"{len(variables)} variables); the checkpoint is from another run, start a new one")
    for a, v in zip(arrays, variables):
        v.assign(a.astype(v.dtype))


def export_google(bert, vocab_path, folder):
    """`checkpoints.export_google`, tolerating its reading of Keras variables inside `tf.Graph()`
    (eager-only `numpy()` fails there with TF 2.21): on that error the values are read first and
    handed over through `checkpoints.keras_to_numpy`."""
    try:
        return ckpt.export_google(bert, vocab_path, folder)
    except NotImplementedError:
        from unittest import mock
        values = {id(v): np.asarray(keras.ops.convert_to_numpy(v)) for _, _, v, _ in ckpt.weight_table(bert)}
        with mock.patch.object(ckpt, "keras_to_numpy", lambda v: values[id(v)]):
            return ckpt.export_google(bert, vocab_path, folder)


# -- probe --------------------------------------------------------------------------------------

class ZeroShotProbe:
    """Accuracy of `[MASK]满意。{text}` with 很 (1) vs 不 (0) at the mask: the zero-shot model of
    few_shot.methods scored by training.Scorer, as `few_shot_ptuning.py --zero-shot` does. Built once
    per run (rows encoded, the scoring function traced once); every call reads the current weights."""

    def __init__(self, bert, tokenizer, rows, maxlen, batch_size=64):
        from few_shot.methods import build_model
        from few_shot.preprocessor import PromptPreprocessor
        from few_shot.training import Scorer
        preprocessor = PromptPreprocessor(tokenizer, PROBE_PATTERN, PROBE_WORDS, maxlen)
        self.data = preprocessor.encode([(text, str(label)) for text, label in rows])
        trainable = bert.trainable  # a prompt model freezes its backbone; pretraining trains this one
        self.scorer = Scorer(build_model("zeroshot", bert, preprocessor), batch_size)
        bert.trainable = trainable
        self.positive = preprocessor.labels.index("1")

    def __call__(self):
        predictions = self.scorer.scores(self.data).argmax(-1)
        return {"accuracy": float(np.mean(predictions == self.data.labels)), "rows": len(self.data),
                "predicted_1": float(np.mean(predictions == self.positive))}


# -- the run ------------------------------------------------------------------------------------

def _check_vocab_file(vocab_path, tokenizer, source):
    theirs = load_vocab(vocab_path)
    if theirs == tokenizer.token_dict:
        return
    if len(theirs) != len(tokenizer.token_dict):
        raise FewShotError(f"--vocab {vocab_path} has {len(theirs)} tokens but {source} uses {tokenizer.vocab_size}; "
                           f"the checkpoint fixes the vocabulary: drop --vocab")
    mine = sorted(tokenizer.token_dict.items(), key=lambda kv: kv[1])
    for (token, i), other in zip(mine, sorted(theirs.items(), key=lambda kv: kv[1])):
        if token != other[0]:
            raise FewShotError(f"--vocab {vocab_path} differs from {source}'s vocabulary at line {i + 1} "
                               f"({other[0]!r} vs {token!r}); the checkpoint fixes the vocabulary: drop --vocab")


def _check_init_architecture(c, bert, source):
    for key, attr in ARCH_FLAGS.items():
        value = getattr(c, key)
        if value is not None and value != getattr(bert, attr):
            raise FewShotError(f"{_flag(key)} {value} conflicts with --init-from {source} ({attr}="
                               f"{getattr(bert, attr)}); the checkpoint fixes the architecture: drop {_flag(key)}")


def build_model(c, resume_folder=None):
    """-> (bert, tokenizer). Must run inside the strategy scope (variables are created here)."""
    if resume_folder is not None:
        pretrained = load_mlm(resume_folder)
        return pretrained.model, pretrained.tokenizer
    if c.init_from is not None:
        pretrained = load_mlm(c.init_from)
        bert, tokenizer = pretrained.model, pretrained.tokenizer
        _check_init_architecture(c, bert, c.init_from)
        if c.vocab is not None:
            _check_vocab_file(c.vocab, tokenizer, c.init_from)
        if c.maxlen > bert.max_position:
            raise FewShotError(f"--maxlen {c.maxlen} exceeds the {bert.max_position} positions of --init-from "
                               f"{c.init_from}; use --maxlen {bert.max_position} or less")
        return bert, tokenizer
    tokenizer = Tokenizer(c.vocab or os.path.join(DEFAULT_MODEL, ckpt.VOCAB))
    bert = BertMaskedLM(vocab_size=tokenizer.vocab_size, hidden_size=c.hidden, num_layers=c.layers,
                        num_heads=c.heads, intermediate_size=c.intermediate, max_position=c.max_position,
                        pad_id=tokenizer.pad_id)
    return bert, tokenizer


class _Trainer(keras.callbacks.Callback):
    """Progress bar, per-step loss, periodic checkpoints (+ probe) and the JSON log."""

    def __init__(self, run):
        super().__init__()
        self.run = run
        self.bar = None

    def on_train_begin(self, logs=None):
        r = self.run
        if r.config.progress:
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
        tokens_per_s = r.tokens_per_second()
        if self.bar is not None:
            smooth = float(np.mean(r.losses[-20:]))
            self.bar.set_postfix_str(f"loss={loss:.3f} (avg20 {smooth:.3f}) tok/s={tokens_per_s:,.0f}", refresh=False)
            self.bar.update(1)
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
        self.t_start = time.perf_counter()
        check_output(config)
        self.saved = read_state(config.output) if config.resume else None
        self.config = resolve(config, self.saved["config"] if self.saved else None)
        check_config(self.config)
        c = self.config
        self.ckpt_folder = os.path.join(c.output, CHECKPOINT_DIR)
        self.documents, self.corpus_info = read_corpus(c.corpus, c.on_bad_line)
        if self.saved and self.saved["documents"] != len(self.documents):
            raise FewShotError(f"the corpus has {len(self.documents)} documents but the checkpoint was trained on "
                               f"{self.saved['documents']}; pass the same --corpus files to --resume")
        self.probe_rows = read_probe(c.probe, c.probe_limit) if c.probe else None
        if c.whole_word:
            import_jieba()
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

    def say(self, message):
        if self.config.progress:
            from tqdm.auto import tqdm
            tqdm.write(message, file=sys.stderr)

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
        prepare_output(c)
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
        for path in exports.values():
            if os.path.exists(path):
                shutil.rmtree(path)
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
            export_google(self.bert, self.tokenizer.vocab_path, exports["google"])
        log = self.write_log(end_step, exports)
        self.say(f"done: step {end_step}, loss {np.mean(self.losses[-20:]) if self.losses else float('nan'):.3f} "
                 f"(mean of last 20), {log['tokens_per_second']:,.0f} tokens/s; wrote {exports['hf']}"
                 + (f", {exports['google']}" if exports["google"] else "") + f", {os.path.join(out, LOG_FILE)}")
        return log


def run_pretraining(config):
    """Pretrain as `config` says; -> the dict written to DIR/pretrain_log.json. Raises FewShotError
    for bad input (before any training where it can)."""
    return PretrainingRun(config).run()
