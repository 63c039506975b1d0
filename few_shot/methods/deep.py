"""Deep prompts (P-tuning v2, Liu et al. 2022): trainable prompt states at every layer of the frozen
MLM; label words at [MASK], or a linear head on [CLS] (`--head cls`). Writes prompt.safetensors
(the input prompt and the deeper states)."""
import dataclasses

from few_shot.methods.prompt import PromptMethod, PromptOptions, start_from_file
from few_shot.errors import FewShotError

HEADS = ("mask", "cls")


@dataclasses.dataclass
class DeepOptions:
    """Options of the deep method."""
    deep_reparam: bool = False   # the prompt states through an MLP (P-tuning v2's reparameterisation)
    head: str = "mask"           # label words at [MASK], or a linear head on [CLS]

    def check(self):
        if self.head not in HEADS:
            raise FewShotError(f"--head {self.head!r}: choose one of {', '.join(HEADS)}")


class DeepMethod(PromptMethod):
    options = (PromptOptions, DeepOptions)

    def __init__(self):
        super().__init__("deep", "none", "deep prompts: prompt states at every layer of the frozen MLM (P-tuning v2)")
        self.cli = "--deep"

    def add_arguments(self, group):
        group.add_argument("--deep", action="store_true",
                           help="deep prompts (P-tuning v2): trainable prompt states at every layer of the frozen MLM")
        group.add_argument("--deep-reparam", action="store_true",
                           help="deep prompts through an MLP (P-tuning v2's reparameterisation)")
        group.add_argument("--head", choices=HEADS, default="mask",
                           help="deep prompts: label words at [MASK] (default) or a linear head on [CLS]")

    def chosen_by(self, args):
        return bool(getattr(args, "deep", False))

    def check(self, config):
        if config.calibrate is not None and config.head == "cls":
            raise FewShotError("--calibrate divides label-word probabilities; a --head cls model has none")

    def check_model(self, config, shape):
        super().check_model(config, shape)
        if shape.get("num_hidden_layers", 2) < 2:
            raise FewShotError("deep prompts need an MLM with at least 2 encoder layers; pass another --model")

    def build(self, backbone, preprocessor, config, common):
        from few_shot.deep import DeepPromptModel
        # --deep-reparam: the input prompt through an MLP too (the deeper states have their own)
        model = DeepPromptModel(backbone, preprocessor.label_token_ids, preprocessor.prompt_token_ids,
                                encoder="mlp" if config.deep_reparam else "none", init=config.init,
                                reparam=config.deep_reparam, head=config.head, **common)
        return start_from_file(model, config)
