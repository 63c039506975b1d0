"""Prompt methods on a frozen MLM: a soft prompt replaces the [uN] slots of the pattern.

    ptuning   BiLSTM + MLP prompt encoder (P-tuning, Liu et al. 2021; the package's default)
    mlp       MLP prompt encoder
    prompt    the prompt rows themselves train (prompt tuning, Lester et al. 2021)

One `PromptMethod` class, registered three times with its `encoder` (few_shot/methods/__init__.py).
Writes prompt.safetensors: the prompt folded to a [prompt_length, hidden] matrix (few_shot/portable.py).
"""
import dataclasses
import os
from typing import Optional

from few_shot.errors import FewShotError
from few_shot.methods.registry import Method
from few_shot.portable import FORMAT as PROMPT_FORMAT

INITS = ("unused", "random", "vocab", "label")
ENCODERS = ("lstm", "mlp", "none")
PROMPT_FILE = "prompt.safetensors"


@dataclasses.dataclass
class PromptOptions:
    """Options of the methods that train a soft prompt (ptuning, mlp, prompt, deep, hybrid, changed)."""
    # the prompt rows' initial values: the [unusedN] embeddings, random, sampled vocabulary, or the
    # label words' embeddings repeated to the prompt length
    init: str = "unused"
    # a pre-trained prompt (scripts/pretrain_prompts.py, or any run's prompt.safetensors) whose rows start
    # the prompt instead (PPT); checked against the MLM and the pattern's soft tokens before anything loads
    prompt_init: Optional[str] = None

    def check(self):
        if self.init not in INITS:
            raise FewShotError(f"--init {self.init!r}: choose one of {', '.join(INITS)}")
        if self.prompt_init is not None and self.init != "unused":
            raise FewShotError(f"--prompt-init and --init {self.init}: the file's rows start the prompt; drop --init")


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
        group.add_argument("--prompt-init", metavar="FILE",
                           help="start the prompt from a pre-trained prompt file (scripts/pretrain_prompts.py: PPT) "
                                "or a run's prompt.safetensors; same MLM, as many rows as the pattern's [uN]")

    def chosen_by(self, args):
        return getattr(args, "encoder", "lstm") == self.encoder

    def check_pattern(self, pattern):
        if not pattern.prompt_tokens:
            raise FewShotError(f"{self.name}: pattern {pattern.template!r} has no soft-prompt slots [u1]..[uN] to "
                               f"train; add them (e.g. --prompt-length 8)")

    def check_model(self, config, shape):
        if config.prompt_init is not None:
            check_prompt_init(config, shape)

    def build(self, backbone, preprocessor, config, common):
        from few_shot.ptuning import PtuningModel
        model = PtuningModel(backbone, preprocessor.label_token_ids, preprocessor.prompt_token_ids,
                             encoder=self.encoder, init=config.init, **common)
        return start_from_file(model, config)

    def save(self, model, output, model_ref):
        import os

        from few_shot.portable import save_portable_prompt
        # the prompt encoder folded into a plain [prompt_length, hidden] matrix: all a frozen MLM needs
        return [(save_portable_prompt(model, os.path.join(output, PROMPT_FILE), model_ref), "portable prompt")]

    def load_file(self, path, mlm):
        from few_shot.portable import load_portable_prompt
        return load_portable_prompt(path, mlm)


def check_prompt_init(config, shape):
    """--prompt-init FILE: a few_shot prompt file, made on an MLM of this shape (the same model folder, if it
    names one that is here), with as many rows as the run's pattern has soft tokens. Reads the header only."""
    from few_shot.model_folder import model_path
    from few_shot.pattern import Pattern
    from few_shot.portable import TENSOR, read_tensors
    path = config.prompt_init
    if not os.path.isfile(path):
        raise FewShotError(f"--prompt-init {path}: no such file; pass a prompt file of scripts/pretrain_prompts.py "
                           f"(e.g. runs/ppt/pair.safetensors) or a run's prompt.safetensors")
    tensors, meta = read_tensors(path, PROMPT_FORMAT, "prompt file of scripts/pretrain_prompts.py", TENSOR)
    rows = tensors[TENSOR].shape[0]
    theirs, mine = meta.get("model"), model_path(config.model)
    same_size = (meta.get("hidden_size"), meta.get("vocab_size")) == (shape.get("hidden_size"), shape.get("vocab_size"))
    if not same_size or (theirs and os.path.exists(theirs) and os.path.realpath(theirs) != os.path.realpath(mine)):
        raise FewShotError(f"--prompt-init {path}: made on the MLM {theirs} (hidden {meta.get('hidden_size')}, vocab "
                           f"{meta.get('vocab_size')}), this run uses {mine}; pass --model {theirs} or a prompt "
                           f"pre-trained on this model")
    slots = len(Pattern(config.resolved_pattern()).prompt_tokens)
    if rows != slots:
        raise FewShotError(f"--prompt-init {path}: {rows} prompt rows, the pattern has {slots} soft tokens; use "
                           f"--prompt-length {rows} (or a pattern with {rows} [uN]) or pre-train {slots} rows")


def start_from_file(model, config):
    """The prompt rows of --prompt-init's file as the prompt's starting values (the encoder's input rows)."""
    if config.prompt_init is not None:
        from few_shot.portable import read_portable_prompt
        model.prompt_encoder.set_initial_embeddings(read_portable_prompt(config.prompt_init)[0])
    return model
