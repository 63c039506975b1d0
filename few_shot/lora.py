"""LoRA (Hu et al. 2021) on the frozen MLM, trained with the same pattern and verbalizer (PET-style).

Keras' own adapters: `Dense.enable_lora(rank)` on the chosen Dense layers of every encoder block
(`--lora-targets qv`: query and value, as the LoRA paper; `all`: q, k, v, attention output and both
feed-forward layers). Only the adapters A [in, r] and B [r, out] train; B starts at zero, so before
the first step the model scores exactly as the frozen MLM. Keras scales A @ B by alpha / rank with
alpha = rank (1.0).

    model = build_model("lora", mlm, preprocessor, RunConfig(method="lora", lora_rank=8))
    save_adapters(model, "runs/x/lora.safetensors", model_ref=mlm.path)   # a few hundred KB
    model = load_adapters("runs/x/lora.safetensors")                      # the frozen MLM + adapters
    merged = merge_lora(model)        # a plain PtuningModel, adapters folded into the kernels (serving)

`model.keras` keeps the frozen kernels and the adapters apart (layers/lora_dense.py), so a reloaded
or resumed model trains on; merging is explicit.
"""

import keras
import numpy as np

from few_shot.errors import FewShotError
from few_shot.lora_targets import ADAPTERS_FORMAT as FORMAT, lora_target_names
from few_shot.ptuning import PtuningModel, set_trainable

def target_layers(backbone, targets):
    """-> [(name, Dense)]: the layers `targets` (qv, all, or names) picks in every encoder block."""
    names = lora_target_names(targets)
    out = []
    for block in backbone.encoder_layers:
        dense = block.dense_layers() if hasattr(block, "dense_layers") else {}
        for name in names:
            if name not in dense:
                raise FewShotError(f"--lora-targets {targets!r}: {name} matches no layer of {block.name} (it has "
                                   f"{', '.join(dense) or 'no Dense layers'})")
            out.append((f"{block.name}/{name}", dense[name]))
    return out


@keras.saving.register_keras_serializable(package="few_shot")
class LoraModel(PtuningModel):
    """A PtuningModel without a prompt encoder whose frozen MLM has LoRA adapters on `lora_targets`;
    only the adapters are trainable. Enables LoRA on the backbone it is given (as finetune trains it)."""

    def __init__(self, backbone, label_token_ids, prompt_token_ids=(), lora_rank=8, lora_targets="qv", **kwargs):
        for name in ("encoder", "train_backbone", "trainable_layers"):
            kwargs.pop(name, None)
        super().__init__(backbone, label_token_ids, prompt_token_ids, encoder=None, **kwargs)
        if isinstance(lora_rank, bool) or not isinstance(lora_rank, int) or lora_rank < 1:
            raise FewShotError(f"--lora {lora_rank}: the rank must be a positive integer (e.g. 8)")
        self.lora_rank, self.lora_targets = lora_rank, lora_targets
        layers = target_layers(self.backbone, lora_targets)
        set_trainable(self.backbone, True)  # (every variable trainable: the loop below freezes all but A and B)
        for name, layer in layers:
            if not layer.lora_enabled:
                layer.enable_lora(lora_rank)
            elif layer.lora_rank != lora_rank:
                raise FewShotError(f"{name} already has rank-{layer.lora_rank} adapters; build on a fresh MLM")
        adapters = {id(v) for _, layer in layers for v in (layer.lora_kernel_a, layer.lora_kernel_b)}
        for variable in self.backbone.weights:
            variable.trainable = id(variable) in adapters

    def adapters(self):
        """-> {"<block>/<layer>/lora_kernel_a" | ".../lora_kernel_b": float32 numpy}."""
        out = {}
        for name, layer in target_layers(self.backbone, self.lora_targets):
            out[f"{name}/lora_kernel_a"] = keras.ops.convert_to_numpy(layer.lora_kernel_a)
            out[f"{name}/lora_kernel_b"] = keras.ops.convert_to_numpy(layer.lora_kernel_b)
        return {k: np.ascontiguousarray(v, dtype="float32") for k, v in out.items()}

    def set_adapters(self, tensors):
        for name, layer in target_layers(self.backbone, self.lora_targets):
            layer.lora_kernel_a.assign(tensors[f"{name}/lora_kernel_a"])
            layer.lora_kernel_b.assign(tensors[f"{name}/lora_kernel_b"])

    def get_config(self):
        config = super().get_config()
        for name in ("encoder", "train_backbone", "trainable_layers"):
            config.pop(name, None)
        config.update(lora_rank=self.lora_rank, lora_targets=self.lora_targets)
        return config


def save_adapters(model, path, model_ref=None):
    """The adapters alone (+ pattern, verbalizer, which MLM, rank, targets) -> a .safetensors file."""
    from few_shot.portable import model_meta, write_tensors
    meta = {**model_meta(model, model_ref), "lora_rank": model.lora_rank, "lora_targets": model.lora_targets}
    return write_tensors(path, model.adapters(), FORMAT, meta)


def load_adapters(path, mlm=None):
    """A LoraModel: the frozen MLM (`mlm`, a model folder, or the one the file names) + the saved adapters."""
    from few_shot.portable import frozen_mlm, read_tensors
    tensors, meta = read_tensors(path, FORMAT, "lora.safetensors written by a LoRA run")
    backbone, preprocessor = frozen_mlm(path, meta, mlm)
    model = LoraModel(backbone, meta["label_token_ids"], meta["prompt_token_ids"], lora_rank=meta["lora_rank"],
                      lora_targets=meta["lora_targets"], objective=meta.get("objective", "label"),
                      preprocessor=preprocessor)
    model.set_adapters(tensors)
    return model


def merge_lora(model):
    """-> a plain frozen PtuningModel on a new copy of the MLM whose kernels are W + A @ B (what a
    LoRA layer computes), with no adapter layers left: for serving."""
    from few_shot.bert import BertMaskedLM
    if not isinstance(model, LoraModel):
        raise FewShotError("merge_lora: this model has no LoRA adapters; pass the model.keras of a LoRA run")
    layers = [layer for _, layer in target_layers(model.backbone, model.lora_targets)]
    merged = {id(layer._kernel): layer.kernel for layer in layers}  # Keras' kernel property: W + scale * A @ B
    adapters = {id(v) for layer in layers for v in (layer.lora_kernel_a, layer.lora_kernel_b)}
    values = [merged.get(id(v), v) for v in model.backbone.weights if id(v) not in adapters]
    backbone = BertMaskedLM.from_config(model.backbone.get_config())
    assert [tuple(v.shape) for v in backbone.weights] == [tuple(v.shape) for v in values]
    for variable, value in zip(backbone.weights, values):  # same config: the same weights in the same order
        variable.assign(value)
    merged = PtuningModel(backbone, model.label_token_ids, model.prompt_token_ids, encoder=None,
                          objective=model.objective, seed=model.seed, preprocessor=model.preprocessor)
    merged.build()  # (every weight exists; so Keras saves it without a warning)
    return merged
