"""Training methods: one module each, registered here with one line (few_shot/methods/registry.py).

    ptuning    BiLSTM + MLP prompt encoder over [unused] rows, frozen MLM (P-tuning)
    mlp        MLP prompt encoder, frozen MLM
    prompt     the prompt rows themselves train, frozen MLM (prompt tuning, Lester et al.)
    deep       prompt states at every layer of the frozen MLM (P-tuning v2)
    lora       LoRA adapters on the frozen MLM's Dense layers
    finetune   the MLM trains (all of it, or the last `trainable_layers`)
    zeroshot   the hand-written pattern scored as it is
    hybrid     soft tokens + the hand-written pattern's words, only the soft rows train (PPT's Hybrid PT)
    changed    prompt rows from vocabulary tokens that also replace those tokens in the input

`few_shot.builder.build_model(method, mlm, preprocessor, config)` builds any of them.
"""
from few_shot.errors import FewShotError
from few_shot.methods.changed import ChangedMethod
from few_shot.methods.deep import DeepMethod
from few_shot.methods.finetune import FinetuneMethod
from few_shot.methods.hybrid import HybridMethod
from few_shot.methods.lora import LoraMethod
from few_shot.methods.prompt import PromptMethod
from few_shot.methods.registry import get_method, method_for_format, methods, option_classes, register
from few_shot.methods.zeroshot import ZeroShotMethod

# the order is the command line's: a script runs its first method whose flags were given
register(ZeroShotMethod())
register(DeepMethod())
register(HybridMethod())
register(ChangedMethod())
register(PromptMethod("ptuning", "lstm", "P-tuning: a BiLSTM + MLP prompt encoder, frozen MLM"))
register(PromptMethod("mlp", "mlp", "an MLP prompt encoder, frozen MLM"))
register(PromptMethod("prompt", "none", "prompt tuning: the prompt rows themselves train, frozen MLM"))
register(LoraMethod())
register(FinetuneMethod())

__all__ = ["add_method_args", "prompt_method", "method_from_args", "get_method", "methods", "method_for_format",
           "option_classes", "register"]


def add_method_args(parser, script):
    """The flags of every method the script offers (few_shot_ptuning.py: ptuning script; few_shot_finetune.py:
    finetune), each Method class once."""
    group = parser.add_argument_group("methods (docs/methods/)")
    for cls in dict.fromkeys(type(m) for m in methods(script)):
        next(m for m in methods(script) if type(m) is cls).add_arguments(group)


def prompt_method(encoder):
    """The prompt method (ptuning, mlp, prompt) whose prompt encoder is `encoder` (lstm, mlp, none)."""
    return next(m.name for m in methods() if type(m) is PromptMethod and m.encoder == encoder)


def method_from_args(args, script):
    """The method the command line asked for: the script's first registered method whose flags were given;
    two methods asked for by their own flags (--deep --hybrid) -> FewShotError."""
    chosen = [m for m in methods(script) if m.chosen_by(args)]
    explicit = [m for m in chosen if m.cli]
    if len(explicit) > 1:
        raise FewShotError(f"{explicit[0].cli} and {explicit[1].cli} ask for two methods ({explicit[0].name}, "
                           f"{explicit[1].name}); pass one of them")
    return chosen[0].name
