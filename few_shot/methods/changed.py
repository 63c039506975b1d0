""""Changed" prompt tuning (the prompt-tuning ablations of Lester et al. 2021 follow-ups): the prompt rows
start from vocabulary tokens (`--init label`: the label words repeated, their "Class Label"; `--init
vocab`: sampled tokens, their "Random Vocab"), and every occurrence of those tokens in the input uses
the trained row instead of the frozen embedding, so that input and prompt stay consistent. No prompt
encoder; the MLM stays frozen. Writes prompt.safetensors (with the replaced token ids)."""
from few_shot.errors import FewShotError
from few_shot.methods.prompt import PromptMethod, start_from_file


class ChangedMethod(PromptMethod):
    def __init__(self):
        super().__init__("changed", "none", "changed prompt tuning: the prompt's source tokens in the input use "
                                            "the trained rows")
        self.cli = "--changed"

    def add_arguments(self, group):
        group.add_argument("--changed", action="store_true",
                           help="changed prompt tuning: prompt rows start from vocabulary tokens (--init label or "
                                "vocab) and replace those tokens wherever the input has them")

    def chosen_by(self, args):
        return bool(getattr(args, "changed", False))

    def check(self, config):
        if config.init not in ("label", "vocab"):
            raise FewShotError(f"--changed replaces the input tokens the prompt rows start from; --init {config.init} "
                               f"starts them from no vocabulary token: add --init label (or vocab)")

    def build(self, backbone, preprocessor, config, common):
        from few_shot.ptuning import PtuningModel
        return start_from_file(PtuningModel(backbone, preprocessor.label_token_ids, preprocessor.prompt_token_ids,
                                            encoder="none", init=config.init, changed=True, **common), config)
