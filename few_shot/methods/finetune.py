"""Full finetune, the baseline: the same pattern and label words as P-tuning, the MLM itself trains
(all of it, or the last `--trainable-layers` encoder layers plus the MLM head)."""
import dataclasses
from typing import Optional

from few_shot.argtypes import non_negative_int
from few_shot.errors import FewShotError
from few_shot.methods.registry import Method


@dataclasses.dataclass
class FinetuneOptions:
    """Options of the finetune method."""
    trainable_layers: Optional[int] = None  # the last N encoder layers + the MLM head; None: everything

    def check(self):
        n = self.trainable_layers
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise FewShotError(f"--trainable-layers {n}: must be an integer >= 0")


class FinetuneMethod(Method):
    name = "finetune"
    script = "finetune"
    summary = "full finetune: the MLM trains (all layers, or the last --trainable-layers)"
    default_lr = 1e-4  # the trainable MLM does not tolerate the prompt methods' 1e-3 (docs: Defaults)
    options = (FinetuneOptions,)

    def add_arguments(self, group):
        group.add_argument("--trainable-layers", type=non_negative_int, default=None,
                           help="train only the last N encoder layers plus the MLM head (default: everything)")

    def chosen_by(self, args):
        return True  # the finetune script's method unless another (lora) was asked for

    def check_model(self, config, shape):
        layers = shape.get("num_hidden_layers")
        if config.trainable_layers is not None and layers is not None and config.trainable_layers > layers:
            raise FewShotError(f"--trainable-layers {config.trainable_layers}: the model has {layers} encoder "
                               f"layers; pass 0..{layers}")

    def build(self, backbone, preprocessor, config, common):
        from few_shot.ptuning import PtuningModel
        # encoder=None: the [unusedN] prompt tokens keep their own embeddings, trained with the rest
        return PtuningModel(backbone, preprocessor.label_token_ids, preprocessor.prompt_token_ids, encoder=None,
                            train_backbone=True, trainable_layers=config.trainable_layers, **common)
