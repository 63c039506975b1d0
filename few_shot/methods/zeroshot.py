"""Zero-shot: the hand-written pattern scored by the untrained MLM; nothing trains."""
from few_shot.errors import FewShotError
from few_shot.methods.registry import Method


class ZeroShotMethod(Method):
    name = "zeroshot"
    cli = "--zero-shot"
    summary = "the hand-written pattern scored as it is, no training"
    default_lr = 0.0
    trains = False

    def add_arguments(self, group):
        group.add_argument("--zero-shot", action="store_true", help="score the hand-written pattern, no training")

    def chosen_by(self, args):
        return bool(getattr(args, "zero_shot", False))

    def default_pattern(self, hand_written, soft, prompt_length):
        return hand_written

    def check_pattern(self, pattern):
        if pattern.prompt_tokens:
            raise FewShotError(f"zero-shot pattern {pattern.template!r} has soft-prompt slots, which are untrained; "
                               f"write the prompt in words, e.g. --pattern '[MASK]满意。{{text}}'")

    def build(self, backbone, preprocessor, config, common):
        from few_shot.ptuning import PtuningModel
        return PtuningModel(backbone, preprocessor.label_token_ids, encoder=None, **common)
