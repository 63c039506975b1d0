"""Prompt methods on a frozen MLM: a soft prompt replaces the [uN] slots of the pattern.

    ptuning   BiLSTM + MLP prompt encoder (P-tuning, Liu et al. 2021; the package's default)
    mlp       MLP prompt encoder
    prompt    the prompt rows themselves train (prompt tuning, Lester et al. 2021)

One `PromptMethod` class, registered three times with its `encoder` (few_shot/methods/__init__.py).
Writes prompt.safetensors: the prompt folded to a [prompt_length, hidden] matrix (few_shot/portable.py).
"""
import dataclasses

from few_shot.errors import FewShotError
from few_shot.methods.registry import Method
from few_shot.portable import FORMAT as PROMPT_FORMAT

INITS = ("unused", "random", "vocab", "label")
ENCODERS = ("lstm", "mlp", "none")
PROMPT_FILE = "prompt.safetensors"


@dataclasses.dataclass
class PromptOptions:
    """Options of the methods that train a soft prompt (ptuning, mlp, prompt, deep)."""
    # the prompt rows' initial values: the [unusedN] embeddings, random, sampled vocabulary, or the
    # label words' embeddings repeated to the prompt length
    init: str = "unused"

    def check(self):
        if self.init not in INITS:
            raise FewShotError(f"--init {self.init!r}: choose one of {', '.join(INITS)}")


class PromptMethod(Method):
    options = (PromptOptions,)
    run_files = (PROMPT_FILE,)
    file_format = PROMPT_FORMAT

    def __init__(self, name, encoder, summary):
        self.name, self.encoder, self.summary = name, encoder, summary
        self.cli = None if encoder == "lstm" else f"--encoder {encoder}"

    def add_arguments(self, group):
        group.add_argument("--encoder", choices=ENCODERS, default="lstm",
                           help="prompt encoder: BiLSTM+MLP (P-tuning), MLP, none (prompt tuning)")

    def chosen_by(self, args):
        return getattr(args, "encoder", "lstm") == self.encoder

    def check_pattern(self, pattern):
        if not pattern.prompt_tokens:
            raise FewShotError(f"{self.name}: pattern {pattern.template!r} has no soft-prompt slots [u1]..[uN] to "
                               f"train; add them (e.g. --prompt-length 8)")

    def build(self, backbone, preprocessor, config, common):
        from few_shot.ptuning import PtuningModel
        return PtuningModel(backbone, preprocessor.label_token_ids, preprocessor.prompt_token_ids,
                            encoder=self.encoder, init=config.init, **common)

    def save(self, model, output, model_ref):
        import os

        from few_shot.portable import save_portable_prompt
        # the prompt encoder folded into a plain [prompt_length, hidden] matrix: all a frozen MLM needs
        return [(save_portable_prompt(model, os.path.join(output, PROMPT_FILE), model_ref), "portable prompt")]

    def load_file(self, path, mlm):
        from few_shot.portable import load_portable_prompt
        return load_portable_prompt(path, mlm)
