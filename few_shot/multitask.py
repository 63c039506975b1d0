"""One frozen MLM, many tasks (Lester et al. 2021: "one frozen model serves every task"): trained prompts of
several tasks, each with its own pattern, verbalizer, labels and maxlen, scored in ONE batched pass of the
shared MLM, a batch mixing rows of any tasks.

    model = load_tasks({"sentiment": "runs/p1", "tnews": "runs/tnews/prompt.safetensors"})
    model.predict_proba([("sentiment", "这家酒店很好"), ("tnews", "国足客场击败对手")])
    # -> [array([p0, p1]), array([p0, ..., p14])]: each row over its own task's labels

How a mixed batch runs (what PtuningModel does for one task, with the task looked up per row):

- rows are encoded by their task's PromptPreprocessor (pattern, maxlen), padded to the batch's longest row;
  `inputs["task_ids"]` [B] says whose each row is;
- prompt slots: a row's soft-prompt tokens (its task's `[unusedN]`, and for changed prompt tuning the
  vocabulary tokens its rows replace) get its task's prompt rows, exactly as `PtuningModel.prompt_slots` +
  `place_prompts` do with `inputs["prompt_rows"]` per row (the ensemble's path); tasks with shorter prompts
  are padded with slots that match no token;
- deep prompts: the task's per-layer states replace its slots before every encoder layer (rows of
  input-only tasks are left as they are);
- label words: the MLM head's transform at the row's [MASK] slots, dotted with its task's label words
  (`label_word_scores` per row); tasks have different label counts (and label-word lengths), so the scores
  are [B, max labels] with -inf where a task has no label, and `predict_proba` returns each row's slice.

Tasks: portable prompt files and run folders of the prompt methods (ptuning, mlp, prompt, hybrid, changed,
deep with --head mask), all on one MLM (same model path, hidden and vocab size; else a one-line error naming
the odd task). LoRA and finetune runs change the MLM and are refused (serve them apart: --export); so are
--head cls models, label words of several lengths (iflytek's per-length verbalizer) and per-row candidates
(chid). Checks of the targets themselves run before TensorFlow: few_shot/serving_targets.py.
"""
import dataclasses
from typing import Optional

import keras
import numpy as np
from keras import ops

from few_shot.bert import gather_positions, split_inputs
from few_shot.errors import FewShotError
from few_shot.ptuning import place_prompts

APART = "serve it apart (--export it to its own SavedModel, or --predict)"


@dataclasses.dataclass
class TaskPrompt:
    name: str
    source: str                          # the prompt file or run folder
    meta: dict                           # pattern, verbalizer, token ids, maxlen, model (the MLM), sizes, head
    prompt: np.ndarray                   # [P, H]
    deep: Optional[np.ndarray] = None    # [L-1, P, H] for deep prompts
    model: object = None                 # a run folder's loaded model (its MLM and preprocessor are reused)
    preprocessor: object = None          # set by load_tasks


def load_task(name, target):
    """A portable prompt file or a prompt method's run folder -> TaskPrompt (LoRA, finetune: FewShotError)."""
    from few_shot.ensemble import run_mlm, same_path
    from few_shot.portable import FORMAT, TENSOR, fold_prompt, model_meta, read_tensors
    from few_shot.serving_targets import check_task_target
    if check_task_target(name, target) == "file":
        tensors, meta = read_tensors(target, FORMAT, "prompt.safetensors written by a prompt run", TENSOR)
        meta = {**meta, "head": meta.get("head", "mask"), "model": same_path(meta.get("model"))}
        return TaskPrompt(name, target, meta, tensors[TENSOR], tensors.get("deep_states"))
    from few_shot.classifier import PromptClassifier
    model = PromptClassifier.load(target).model
    if getattr(model, "prompt_encoder", None) is None or model.train_backbone or hasattr(model, "adapters"):
        raise FewShotError(f"task {name}: {target} changes the MLM or has no trained prompt (a LoRA, finetune or "
                           f"zero-shot run); a multi-task model runs one frozen MLM: {APART}")
    deep = model.deep_states() if hasattr(model, "deep_states") else None
    meta = {**model_meta(model, same_path(run_mlm(target))), "head": getattr(model, "head", "mask")}
    return TaskPrompt(name, target, meta, fold_prompt(model), deep, model)


def check_tasks(tasks):
    """Every task on the first task's MLM and servable in a mixed batch -> FewShotError naming the odd task."""
    first = tasks[0]
    for t in tasks:
        where = f"task {t.name} ({t.source})"
        if t.meta["head"] != "mask":
            raise FewShotError(f"{where}: a --head cls model reads no label words at [MASK]; {APART}")
        if len({len(ids) for ids in t.meta["label_token_ids"]}) > 1:
            raise FewShotError(f"{where}: label words of several lengths (a per-length verbalizer) are scored in "
                               f"several passes; {APART}")
        a, b = first.meta, t.meta
        if (a["model"], a["hidden_size"], a["vocab_size"]) != (b["model"], b["hidden_size"], b["vocab_size"]):
            raise FewShotError(f"{where}: trained on the MLM {b['model']} (hidden {b['hidden_size']}, vocab "
                               f"{b['vocab_size']}), task {first.name} on {a['model']} (hidden {a['hidden_size']}, "
                               f"vocab {a['vocab_size']}); one multi-task model runs one frozen MLM: use prompts "
                               f"trained on the same model, or {APART}")


def shared_mlm(tasks, mlm=None):
    """The one frozen MLM -> (backbone, tokenizer): `mlm` (a PretrainedMLM or model folder), else the first run
    folder's own, else the one the files name."""
    from few_shot.loading import load_mlm
    import os
    loaded = next((t.model for t in tasks if t.model is not None), None)
    if mlm is None and loaded is not None:
        return loaded.backbone, loaded.preprocessor.tokenizer
    ref = mlm if mlm is not None else tasks[0].meta["model"]
    if isinstance(ref, (str, os.PathLike)) or ref is None:
        if mlm is None and ref is not None and not os.path.exists(ref):
            raise FewShotError(f"task {tasks[0].name}: its MLM {ref} is not here; pass the same model with --model")
        ref = load_mlm(ref)
    if getattr(ref, "tokenizer", None) is None:
        raise FewShotError("the multi-task model needs the MLM's tokenizer: pass a PretrainedMLM or a model folder")
    return ref.model, ref.tokenizer


def load_tasks(targets, mlm=None):
    """{task name: prompt file or run folder} -> MultiTaskModel over one frozen MLM (`mlm`: a PretrainedMLM or
    model folder; default: the one the tasks name)."""
    from few_shot.preprocessor import PromptPreprocessor
    from few_shot.serving_targets import TASK_NAME
    if not isinstance(targets, dict) or not targets:
        raise FewShotError("load_tasks needs {task name: prompt file or run folder}, at least one task")
    for name in targets:
        if not isinstance(name, str) or not TASK_NAME.fullmatch(name):
            raise FewShotError(f"task name {name!r}: use 1-64 letters, digits, '_', '.' or '-'")
    tasks = [load_task(name, str(target)) for name, target in targets.items()]
    check_tasks(tasks)
    backbone, tokenizer = shared_mlm(tasks, mlm)
    for t in tasks:
        own = t.model.preprocessor if t.model is not None else None
        if own is not None and own.tokenizer.token_dict != tokenizer.token_dict:
            t.preprocessor = own  # a vocabulary of its own (the model checks below still hold)
        else:
            t.preprocessor = PromptPreprocessor(tokenizer, t.meta["pattern"], t.meta["verbalizer"], t.meta["maxlen"])
        if t.preprocessor.candidates is not None:
            raise FewShotError(f"task {t.name} ({t.source}): multiple choice (each row its own candidates) is not "
                               f"served in mixed batches; {APART}")
        t.model = None  # the run folder's own copy of the MLM is not kept
    return MultiTaskModel(backbone, tasks)


class MultiTaskModel(keras.Model):
    """A frozen MLM (`backbone`) + tasks (TaskPrompt with preprocessors): inputs {"token_ids", "segment_ids",
    "mask_positions" [B, M], "task_ids" [B]} -> label scores [B, max labels], -inf past a row's task's labels.
    `predict_proba([(task, text), ...])` encodes, batches and softmaxes."""

    def __init__(self, backbone, tasks, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.task_names = tuple(t.name for t in tasks)
        self.index = {name: i for i, name in enumerate(self.task_names)}
        self.preprocessors = {t.name: t.preprocessor for t in tasks}
        self.sources = {t.name: t.source for t in tasks}
        hidden, n = backbone.hidden_size, len(tasks)
        for t in tasks:
            if t.prompt.shape != (len(t.meta["prompt_token_ids"]), hidden):
                raise FewShotError(f"task {t.name} ({t.source}): the prompt is {t.prompt.shape}, not [prompt tokens, "
                                   f"hidden size {hidden}]; use prompts trained on this MLM")
            if t.deep is not None and t.deep.shape != (backbone.num_layers - 1, *t.prompt.shape):
                raise FewShotError(f"task {t.name} ({t.source}): deep prompt states {t.deep.shape} do not fit this "
                                   f"MLM's {backbone.num_layers} layers; use the model the prompt names")
        # prompt slots per task, padded to the longest prompt with keys that match no token (-1)
        self.prompt_length = max(len(t.meta["prompt_token_ids"]) for t in tasks)
        p = self.prompt_length
        self.slot_keys = np.full((n, p), -1, "int32")
        self.slot_sources = np.full((n, p), -1, "int32")
        self.slot_rows = np.zeros((n, p, hidden), "float32")
        deep = any(t.deep is not None for t in tasks)
        self.deep_rows = np.zeros((n, backbone.num_layers - 1, p, hidden), "float32") if deep else None
        self.deep_on = np.asarray([float(t.deep is not None) for t in tasks], "float32")
        for i, t in enumerate(tasks):
            ids = t.meta["prompt_token_ids"]
            self.slot_keys[i, :len(ids)] = ids
            if t.meta.get("source_token_ids") is not None:
                self.slot_sources[i, :len(ids)] = t.meta["source_token_ids"]
            self.slot_rows[i, :len(ids)] = t.prompt
            if t.deep is not None:
                self.deep_rows[i, :, :len(ids)] = t.deep
        self.has_sources = bool((self.slot_sources >= 0).any())
        # label words per task [N, C, M], padded (weight 0) to the most labels and [MASK] slots
        words = [t.preprocessor.label_token_ids for t in tasks]
        self.num_labels = max(len(w) for w in words)
        self.num_masks = max(len(w[0]) for w in words)
        self.label_ids = np.zeros((n, self.num_labels, self.num_masks), "int32")
        self.label_weights = np.zeros((n, self.num_labels, self.num_masks), "float32")
        for i, w in enumerate(words):
            self.label_ids[i, :len(w), :len(w[0])] = w
            self.label_weights[i, :len(w), :len(w[0])] = 1.0
        self.label_valid = self.label_weights[:, :, 0] > 0
        self._fn = None

    def build(self, input_shape=None):
        self.built = True  # the backbone holds every weight; the prompts are constants

    def labels(self, task):
        return list(self.preprocessors[task].labels)

    def call(self, inputs, training=False):
        token_ids, segment_ids = split_inputs(inputs)
        task = ops.cast(ops.reshape(inputs["task_ids"], (-1,)), "int32")
        embeddings = self.backbone.embed_tokens(token_ids)
        before_layer = None
        if self.prompt_length:
            match = ops.equal(token_ids[:, :, None], ops.take(self.slot_keys, task, axis=0)[:, None, :])
            if self.has_sources:
                sources = ops.take(self.slot_sources, task, axis=0)[:, None, :]
                match = ops.logical_or(match, ops.equal(token_ids[:, :, None], sources))
            match = ops.cast(match, embeddings.dtype)  # [B, T, P]
            embeddings = place_prompts(embeddings, match, ops.take(self.slot_rows, task, axis=0))
            if self.deep_rows is not None:
                deep_match = match * ops.take(self.deep_on, task, axis=0)[:, None, None]
                states = ops.take(self.deep_rows, task, axis=0)  # [B, L-1, P, H]
                before_layer = lambda i, x: place_prompts(x, deep_match, states[:, i - 1])  # noqa: E731
        hidden = self.backbone.encode(token_ids, segment_ids, token_embeddings=embeddings, training=False,
                                      before_layer=before_layer)
        return self.label_scores(gather_positions(hidden, inputs["mask_positions"]), task)

    def label_scores(self, at_masks, task):
        """Hidden states at each row's [MASK] slots [B, M, H] -> [B, C]: MaskedLMHead.label_word_scores with the
        row's own task's label words; -inf where the task has fewer labels."""
        head = self.backbone.mlm_head
        h = head.transform(at_masks)
        ids = ops.take(self.label_ids, task, axis=0)                                   # [B, C, M]
        weights = ops.cast(ops.take(self.label_weights, task, axis=0), h.dtype)
        rows = ops.cast(ops.take(self.backbone.embedding_matrix, ids, axis=0), h.dtype)  # [B, C, M, H]
        bias = ops.sum(ops.cast(ops.take(head.output_bias, ids, axis=0), h.dtype) * weights, axis=-1)
        scores = ops.einsum("bmh,bcmh->bc", h, rows * weights[..., None]) + bias
        return ops.where(ops.take(self.label_valid, task, axis=0), scores, float("-inf"))

    # -- text in, probabilities out -------------------------------------------------------------------------

    def encode(self, task, row):
        """One row (a text, or a dict of the pattern's fields) of `task` -> (task index, EncodedRow)."""
        if task not in self.index:
            raise FewShotError(f"task {task!r}: not one of this model's tasks ({', '.join(self.task_names)})")
        pre = self.preprocessors[task]
        fields = pre.pattern.fields
        if isinstance(row, str) and len(fields) == 1:
            row = {fields[0]: row}
        return self.index[task], pre.encode_row(row)

    def batch(self, encoded):
        """[(task index, EncodedRow)] -> model inputs, padded to the longest row and the most [MASK] slots."""
        from few_shot.batching import pad_batch
        masks = np.asarray([r.mask_positions + r.mask_positions[:1] * (self.num_masks - len(r.mask_positions))
                            for _, r in encoded], "int32").reshape(len(encoded), self.num_masks)
        return {"token_ids": pad_batch([r.token_ids for _, r in encoded], int(self.backbone.pad_id)),
                "segment_ids": pad_batch([r.segment_ids for _, r in encoded], 0),
                "mask_positions": masks, "task_ids": np.asarray([i for i, _ in encoded], "int32")}

    def probabilities(self, encoded):
        """[(task index, EncodedRow)] -> one batched pass -> [probabilities over the row's task's labels]."""
        if self._fn is None:
            from few_shot.backend import inference_function
            self._fn = inference_function(lambda inputs: self(inputs, training=False))
        scores = ops.convert_to_numpy(self._fn(self.batch(encoded))).astype("float64")
        e = np.exp(scores - scores.max(-1, keepdims=True))
        probs = e / e.sum(-1, keepdims=True)
        return [probs[k, :int(self.label_valid[i].sum())].astype("float32") for k, (i, _) in enumerate(encoded)]

    def predict_proba(self, rows, batch_size=128):
        """[(task, text or fields)] -> [numpy probabilities over that task's labels], rows batched by length
        (tasks mixed in every batch)."""
        from few_shot.batching import length_sorted_batches
        encoded = [self.encode(task, row) for task, row in rows]
        out = [None] * len(encoded)
        for idx in length_sorted_batches(np.asarray([len(r.token_ids) for _, r in encoded]), batch_size):
            for k, p in zip(idx, self.probabilities([encoded[k] for k in idx])):
                out[k] = p
        return out

    def predict(self, rows, batch_size=128):
        """[(task, text)] -> [(label, probability)]: each row's most probable label of its task."""
        return [(self.labels(task)[int(p.argmax())], float(p.max()))
                for (task, _), p in zip(rows, self.predict_proba(rows, batch_size))]
