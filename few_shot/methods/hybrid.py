"""Hybrid prompts (PPT's "Hybrid PT", Gu et al. 2022; P-tuning's anchor words): soft tokens before the
hand-written pattern, e.g. `[u1][u2][u3][u4][MASK]满意。{text}`. Only the soft rows train (prompt
tuning, no encoder); the pattern's words keep their frozen embeddings. The pattern language allowed
this already (`--pattern`); the method makes it the default pattern of a run: `--prompt-length` soft
tokens (default 4) before the task's or the verbalizer's hand-written pattern."""
from few_shot.methods.prompt import PromptMethod

DEFAULT_SOFT_TOKENS = 4


class HybridMethod(PromptMethod):
    def __init__(self):
        super().__init__("hybrid", "none", "hybrid prompt: soft tokens + the hand-written pattern's words (PPT)")
        self.cli = "--hybrid"

    def add_arguments(self, group):
        group.add_argument("--hybrid", action="store_true",
                           help="hybrid prompt: --prompt-length soft tokens (default 4) before the hand-written "
                                "pattern, e.g. [u1][u2][u3][u4][MASK]满意。{text}; only the soft tokens train")

    def chosen_by(self, args):
        return bool(getattr(args, "hybrid", False))

    def default_pattern(self, hand_written, soft, prompt_length):
        n = prompt_length or DEFAULT_SOFT_TOKENS
        return "".join(f"[u{i}]" for i in range(1, n + 1)) + hand_written
