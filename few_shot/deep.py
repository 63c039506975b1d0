"""Deep prompts (P-tuning v2, Liu et al. 2022; prefix tuning, Li & Liang 2021): trainable prompt states
at every encoder layer of the frozen MLM, not only at its input.

Form: **per-layer replacement of the prompt slots' hidden states**. The pattern's soft-prompt slots
[u1..uN] get the trained input prompt (PtuningModel's own path: their token embeddings replaced), and
before every encoder layer i >= 1 their hidden states are replaced by trained states [N, H] of that
layer (`PtuningModel.layer_prompts`, the `before_layer` hook of `BertMaskedLM.encode`). The other
tokens attend to them as to any token, so each layer's keys and values at the slots come from the
frozen W_k / W_v of trained states: P-tuning v2's prefix key/values with the key and value of a slot
tied through one H-vector (half the parameters: L x N x H instead of 2 x L x N x H). Chosen because
it is the input-prompt path itself repeated per layer: with the deep states off the model *is*
input-only prompting (bit for bit), one portable file holds [L, N, H], the exact BERT layers (checked
against transformers) are untouched, and ensembles write per-row states as they write per-row prompts.

Initialisation: the frozen MLM's own hidden states of the initial prompt rows, read alone (so the
deep states start where the model would put them). `reparam=True` adds P-tuning v2's MLP
(layers/deep_prompt.py); `head="cls"` reads the label from a linear head on the final [CLS] state, as
P-tuning v2 does for NLU, instead of the label words at [MASK].
"""
import keras
import numpy as np
from keras import ops

from few_shot.errors import FewShotError
from few_shot.layers import DeepPromptEncoder
from few_shot.ptuning import PtuningModel, place_prompts


@keras.saving.register_keras_serializable(package="few_shot")
class DeepPromptModel(PtuningModel):
    """A PtuningModel (frozen MLM, input prompt from `encoder`) with prompt states at every layer.
    `deep=False` switches the deeper states off (then it computes exactly what PtuningModel does)."""

    def __init__(self, backbone, label_token_ids, prompt_token_ids=(), encoder="none", reparam=False, head="mask",
                 **kwargs):
        for name in ("train_backbone", "trainable_layers"):  # the MLM stays frozen
            kwargs.pop(name, None)
        super().__init__(backbone, label_token_ids, prompt_token_ids, encoder=encoder, **kwargs)
        if self.prompt_encoder is None:
            raise FewShotError("deep prompts need soft-prompt slots [u1]..[uN] in the pattern (e.g. --prompt-length 8)")
        if self.backbone.num_layers < 2:
            raise FewShotError("deep prompts need an MLM with at least 2 encoder layers")
        if head not in ("mask", "cls"):
            raise ValueError(f"head={head!r}; choose mask or cls")
        self.reparam, self.head, self.deep = bool(reparam), head, True
        self.deep_prompt = DeepPromptEncoder(self.backbone.num_layers - 1, len(self.prompt_token_ids),
                                             self.backbone.hidden_size, self.reparam, name="deep_prompt")
        self.deep_prompt.build()
        self.deep_prompt.set_initial_states(self._initial_deep_states())
        self.cls_head = None
        if head == "cls":
            self.cls_head = keras.layers.Dense(self.num_labels, name="cls_head")
            self.cls_head.build((None, self.backbone.hidden_size))

    def _initial_deep_states(self):
        """The frozen MLM's hidden states of the initial prompt rows (read alone) at layers 1..L-1."""
        ids = ops.convert_to_tensor([self.prompt_token_ids], dtype="int32")
        captured = []
        self.backbone.encode(ids, ops.zeros_like(ids), token_embeddings=self.prompt_embeddings()[None],
                             before_layer=lambda i, x: captured.append(ops.convert_to_numpy(x)[0]) or x)
        return np.stack(captured)

    def layer_prompts(self, inputs, match, training=False):
        if not self.deep:
            return None
        # inputs["deep_rows"] [B, L-1, P, H]: deep states per row (ensembles), else this model's own
        rows = inputs.get("deep_rows") if isinstance(inputs, dict) else None
        states = self.deep_prompt(training=training) if rows is None else rows
        return lambda i, x: place_prompts(x, match, states[i - 1] if rows is None else states[:, i - 1])

    def call(self, inputs, training=False):
        if self.cls_head is None:
            return super().call(inputs, training)
        return self.cls_head(self.hidden_states(inputs, training)[:, 0])

    def deep_states(self):
        """-> float32 numpy [L-1, P, H]: the states the deeper layers get (the MLP run once if reparam)."""
        return np.asarray(ops.convert_to_numpy(self.deep_prompt(training=False)), dtype="float32")

    # what a portable prompt file (few_shot/portable.py) holds beside the input prompt
    def portable_tensors(self):
        tensors = {"deep_states": self.deep_states()}
        if self.cls_head is not None:
            tensors.update(cls_kernel=ops.convert_to_numpy(self.cls_head.kernel),
                           cls_bias=ops.convert_to_numpy(self.cls_head.bias))
        return {k: np.ascontiguousarray(v, dtype="float32") for k, v in tensors.items()}

    def portable_meta(self):
        return {"deep": True, "head": self.head, "trained_reparam": self.reparam}

    def set_portable_tensors(self, tensors):
        self.deep_prompt.set_initial_states(tensors["deep_states"])
        if self.cls_head is not None:
            self.cls_head.kernel.assign(tensors["cls_kernel"])
            self.cls_head.bias.assign(tensors["cls_bias"])

    def get_config(self):
        config = super().get_config()
        for name in ("train_backbone", "trainable_layers"):
            config.pop(name, None)
        config.update(reparam=self.reparam, head=self.head)
        return config
