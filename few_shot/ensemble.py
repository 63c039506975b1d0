"""Prompt ensembles (Lester et al. 2021, "The Power of Scale for Parameter-Efficient Prompt Tuning"):
several prompts trained for one task on one frozen MLM, their label probabilities averaged.

The frozen MLM runs every prompt in ONE batched pass: the batch of B rows is tiled N times
([N * B, T]) and copy n gets member n's prompt rows (and deep states) through the model's own prompt
path (`inputs["prompt_rows"]` / `["deep_rows"]` of PtuningModel.hidden_states), then the [N * B, C]
scores are softmaxed, reshaped [N, B, C] and averaged. One graph, one call per batch, N times the
rows: no N separate passes, no N copies of the MLM.

Members: portable prompt files (prompt.safetensors) and run folders of prompt methods (ptuning, mlp,
prompt, deep); they must share the MLM, the pattern and the verbalizer (else a one-line error).
LoRA and finetune runs change the MLM itself and cannot share a frozen pass.

    python few_shot_ptuning.py --predict runs/p1 runs/p2 runs/p3/prompt.safetensors "这家酒店很好"
    python few_shot_ptuning.py --evaluate runs/p1 runs/p2 runs/p3 --max-test 600 --calibrate content-free
(the commands: few_shot/scoring.py)
"""
import dataclasses
import json
import os
from typing import Optional

import keras
import numpy as np
from keras import ops

from few_shot.errors import FewShotError


@dataclasses.dataclass
class Member:
    source: str
    prompt: np.ndarray                  # [P, H]
    deep: Optional[np.ndarray]          # [L-1, P, H] for deep prompts
    meta: dict                          # pattern, verbalizer, token ids, maxlen, model (the MLM), sizes
    model: object = None                # the loaded model of a run folder (its MLM is reused)


def run_mlm(run_dir):
    """The MLM a run folder was trained on, from its metrics.json (None: the bundled one)."""
    from few_shot.paths import DEFAULT_MODEL
    try:
        with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:
            config = json.load(f).get("config", {})
    except (OSError, ValueError):
        raise FewShotError(f"{run_dir}: no readable metrics.json to say which MLM it was trained on; pass its "
                           f"prompt.safetensors instead") from None
    return config.get("model") or DEFAULT_MODEL


def same_path(ref):
    return os.path.realpath(ref) if ref and os.path.exists(ref) else ref


def load_member(target):
    """A prompt file or a run folder -> Member; anything else (LoRA, finetune, zero-shot) -> FewShotError."""
    from few_shot.portable import FORMAT, TENSOR, fold_prompt, model_meta, read_tensors
    if os.path.isfile(target):
        tensors, meta = read_tensors(target, FORMAT, "prompt.safetensors written by a P-tuning run (LoRA "
                                                     "adapters change the MLM and cannot join an ensemble)", TENSOR)
        return Member(target, tensors[TENSOR], tensors.get("deep_states"),
                      {**meta, "head": meta.get("head", "mask"), "model": same_path(meta.get("model"))})
    from few_shot.classifier import PromptClassifier
    model = PromptClassifier.load(target).model
    if model.prompt_encoder is None or model.train_backbone or hasattr(model, "adapters"):
        raise FewShotError(f"{target}: a {'LoRA' if hasattr(model, 'adapters') else 'finetune or zero-shot'} run "
                           f"changes or lacks the prompt; only prompt runs (ptuning, mlp, prompt, deep) share one "
                           f"frozen MLM in an ensemble")
    deep = model.deep_states() if hasattr(model, "deep_states") else None
    meta = {**model_meta(model, same_path(run_mlm(target))), "head": getattr(model, "head", "mask")}
    return Member(target, fold_prompt(model), deep, meta, model)


def check_members(members):
    """Every member on the first one's MLM, pattern and verbalizer -> FewShotError naming the odd one."""
    first = members[0]
    for m in members:
        if m.meta["head"] != "mask":
            raise FewShotError(f"{m.source}: a --head cls model reads no label words; ensembles average label-word "
                               f"probabilities of [MASK]-head prompts")
    for m in members[1:]:
        a, b = first.meta, m.meta
        if (a["model"], a["hidden_size"], a["vocab_size"]) != (b["model"], b["hidden_size"], b["vocab_size"]):
            raise FewShotError(f"{m.source}: trained on the MLM {b['model']}, {first.source} on {a['model']}; an "
                               f"ensemble runs one frozen MLM: use prompts trained on the same model")
        if (a["verbalizer"], a["label_token_ids"]) != (b["verbalizer"], b["label_token_ids"]):
            raise FewShotError(f"{m.source}: verbalizer {b['verbalizer']} differs from {first.source}'s "
                               f"{a['verbalizer']}; ensemble members must score the same label words")
        if a.get("source_token_ids") != b.get("source_token_ids"):
            raise FewShotError(f"{m.source}: its prompt rows replace the input tokens {b.get('source_token_ids')}, "
                               f"{first.source}'s {a.get('source_token_ids')} (changed prompt tuning); ensemble "
                               f"members must replace the same tokens")
        if (a["pattern"], a["prompt_token_ids"]) != (b["pattern"], b["prompt_token_ids"]):
            raise FewShotError(f"{m.source}: pattern {b['pattern']!r} differs from {first.source}'s "
                               f"{a['pattern']!r}; ensemble members must use one pattern")
        if (m.deep is None) != (first.deep is None) or (m.deep is not None and m.deep.shape != first.deep.shape):
            raise FewShotError(f"{m.source}: {'deep' if m.deep is not None else 'input-only'} prompts, "
                               f"{first.source}: {'deep' if first.deep is not None else 'input-only'}; an ensemble "
                               f"holds one kind")


class EnsembleModel(keras.Model):
    """`base` (a frozen PtuningModel or DeepPromptModel over the shared MLM) run with N prompts in one
    batched pass -> log of the mean label probabilities [B, C] (softmax of it = the mean)."""

    def __init__(self, base, prompts, deep=None, **kwargs):
        super().__init__(**kwargs)
        self.base = base
        self.prompts = np.asarray(prompts, dtype="float32")                # [N, P, H]
        self.deep = None if deep is None else np.asarray(deep, dtype="float32")  # [N, L-1, P, H]
        self.size = len(self.prompts)
        self.num_labels = base.num_labels
        self.preprocessor = base.preprocessor

    def build(self, input_shape=None):
        self.built = True  # the base model holds every weight

    def call(self, inputs, training=False):
        n = self.size
        batch = ops.shape(inputs["token_ids"])[0]
        tiled = {k: ops.tile(ops.convert_to_tensor(inputs[k]), (n, 1))  # copy n = rows n*B .. n*B + B - 1
                 for k in ("token_ids", "segment_ids", "mask_positions")}
        tiled["prompt_rows"] = ops.repeat(ops.convert_to_tensor(self.prompts), batch, axis=0)
        if self.deep is not None:
            tiled["deep_rows"] = ops.repeat(ops.convert_to_tensor(self.deep), batch, axis=0)
        scores = self.base(tiled, training=False)                    # [N * B, C]
        probs = ops.softmax(ops.reshape(scores, (n, batch, self.num_labels)), axis=-1)
        return ops.log(ops.mean(probs, axis=0))

    def members(self):
        """The N single models (sharing the base's MLM and preprocessor): what N separate passes run."""
        base = self.base
        return [single_model(base.backbone, base.label_token_ids, base.prompt_token_ids, base.objective,
                             base.preprocessor, self.prompts[n], None if self.deep is None else self.deep[n],
                             base.source_token_ids)
                for n in range(self.size)]


def single_model(backbone, label_token_ids, prompt_token_ids, objective, preprocessor, prompt, deep=None,
                 source_token_ids=None):
    """A frozen PtuningModel (DeepPromptModel with `deep` states) whose prompt rows are `prompt`."""
    from few_shot.deep import DeepPromptModel
    from few_shot.ptuning import PtuningModel
    cls = PtuningModel if deep is None else DeepPromptModel
    model = cls(backbone, label_token_ids, prompt_token_ids, encoder="none", objective=objective,
                preprocessor=preprocessor, source_token_ids=source_token_ids)
    model.prompt_encoder.set_initial_embeddings(prompt)
    if deep is not None:
        model.deep_prompt.set_initial_states(deep)
    return model


def build_ensemble(members, mlm=None):
    """Members (checked) -> EnsembleModel over one frozen MLM: `mlm` (a PretrainedMLM or model folder),
    else the first run folder's own, else the one the files name."""
    from few_shot.loading import load_mlm
    from few_shot.preprocessor import PromptPreprocessor
    check_members(members)
    first = members[0]
    loaded = next((m.model for m in members if m.model is not None), None)
    if mlm is None and loaded is not None:
        backbone, tokenizer = loaded.backbone, loaded.preprocessor.tokenizer
    else:
        ref = mlm if mlm is not None else first.meta["model"]
        if isinstance(ref, (str, os.PathLike)) or ref is None:
            if mlm is None and ref is not None and not os.path.exists(ref):
                raise FewShotError(f"{first.source}: its MLM {ref} is not here; pass the same model with --model")
            ref = load_mlm(ref)
        backbone, tokenizer = ref.model, ref.tokenizer
    if (backbone.hidden_size, backbone.vocab_size) != (first.meta["hidden_size"], first.meta["vocab_size"]):
        raise FewShotError(f"{first.source}: trained on an MLM with hidden size {first.meta['hidden_size']}, this "
                           f"one has {backbone.hidden_size}; use the model the prompts name")
    preprocessor = PromptPreprocessor(tokenizer, first.meta["pattern"], first.meta["verbalizer"], first.meta["maxlen"])
    base = single_model(backbone, first.meta["label_token_ids"], first.meta["prompt_token_ids"],
                        first.meta.get("objective", "label"), preprocessor, first.prompt, first.deep,
                        first.meta.get("source_token_ids"))
    deep = None if first.deep is None else np.stack([m.deep for m in members])
    return EnsembleModel(base, np.stack([m.prompt for m in members]), deep)

