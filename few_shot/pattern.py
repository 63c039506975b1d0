"""Patterns (templates with soft-prompt slots, [MASK] and {text}) and verbalizers (label -> word)."""
import json
import os
import re

from few_shot.errors import FewShotError

_PIECE = re.compile(r"(\[u\d+\]|\[unused\d+\]|\[MASK\]|\{text\})")

PTUNING_PATTERN = "[u1][u2][u3][u4][MASK][u5][u6][u7][u8]{text}"  # mask at index 5 after [CLS], as the seed
ZERO_SHOT_PATTERN = "[MASK]满意。{text}"
SENTIMENT_VERBALIZER = {"0": "不", "1": "很"}


class Pattern:
    """A template such as `[u1][u2][u3][u4][MASK][u5][u6][u7][u8]{text}` or `[MASK]满意。{text}`.

    `[uN]` (or `[unusedN]`) is a soft-prompt slot: the token `[unusedN]`, whose embedding P-tuning
    replaces. `[MASK]` is where the label word is read; it expands to as many slots as the label
    words have tokens. `{text}` is the input, truncated so the whole fits `maxlen`.
    """

    def __init__(self, template):
        self.template = template
        pieces = [p for p in _PIECE.split(template) if p]
        if "{text}" not in pieces:
            raise FewShotError(f"pattern {template!r} has no {{text}}; add {{text}} where the input goes, "
                               f"e.g. '[MASK]满意。{{text}}'")
        if pieces.count("{text}") > 1:
            raise FewShotError(f"pattern {template!r} has {{text}} twice; keep a single {{text}}")
        if "[MASK]" not in pieces:
            raise FewShotError(f"pattern {template!r} has no [MASK]; add [MASK] where the label word is read, "
                               f"e.g. '[MASK]满意。{{text}}'")
        self.pieces = [f"[unused{p[2:-1]}]" if re.fullmatch(r"\[u\d+\]", p) else p for p in pieces]
        self.explicit_masks = pieces.count("[MASK]")

    def __repr__(self):
        return f"Pattern({self.template!r})"

    @property
    def prompt_tokens(self):
        """The soft-prompt tokens in order of appearance, e.g. ['[unused1]', ..., '[unused8]']."""
        return [p for p in self.pieces if p.startswith("[unused")]

    def compile(self, tokenizer, num_masks):
        """-> (prefix ids, suffix ids) around {text}, [CLS]/[SEP] included, masks expanded."""
        if self.explicit_masks not in (1, num_masks):
            raise FewShotError(f"pattern {self.template!r} has {self.explicit_masks} [MASK] but the label words "
                               f"have {num_masks} tokens; write one [MASK] (it expands) or {num_masks}")
        expand = num_masks if self.explicit_masks == 1 else 1
        before, after, side = [tokenizer.cls_id], [], None
        for piece in self.pieces:
            if piece == "{text}":
                side = after
                continue
            target = before if side is None else after
            if piece == "[MASK]":
                target.extend([tokenizer.mask_id] * expand)
            elif piece.startswith("[unused"):
                if piece not in tokenizer.token_dict:
                    raise FewShotError(f"pattern {self.template!r}: {piece} is not in the vocabulary; use "
                                       f"[u1]..[u99] (BERT vocabularies have [unused1..99])")
                target.append(tokenizer.token_dict[piece])
            else:
                target.extend(tokenizer.tokens_to_ids(tokenizer.tokenize(piece)))
        after.append(tokenizer.sep_id)
        return before, after

    def encode(self, tokenizer, text, maxlen, num_masks=1, compiled=None):
        """-> (token_ids, mask_positions)."""
        before, after = compiled or self.compile(tokenizer, num_masks)
        budget = maxlen - len(before) - len(after)
        if budget < 1:
            raise FewShotError(f"maxlen={maxlen} is too short for pattern {self.template!r}; "
                               f"use maxlen >= {len(before) + len(after) + 1}")
        text_ids = tokenizer.tokens_to_ids(tokenizer.tokenize(text))[:budget]
        token_ids = before + text_ids + after
        masks = [i for i, t in enumerate(token_ids) if t == tokenizer.mask_id
                 and (i < len(before) or i >= len(before) + len(text_ids))]
        return token_ids, masks


class Verbalizer:
    """Label -> label word, e.g. {"1": "很", "0": "不"}. Labels are strings; order is kept."""

    def __init__(self, mapping):
        if not mapping:
            raise FewShotError("verbalizer is empty; give label:word pairs such as 1:很,0:不")
        self.mapping = {str(k): v for k, v in mapping.items()}
        self.labels = list(self.mapping)
        if len(set(self.mapping.values())) != len(self.mapping):
            raise FewShotError(f"verbalizer {self.mapping} maps two labels to the same word; use distinct words")

    def __repr__(self):
        return f"Verbalizer({self.mapping})"

    @classmethod
    def parse(cls, spec):
        """`1:很,0:不`, a JSON object string, or a path to a JSON file."""
        if os.path.exists(spec):
            with open(spec, encoding="utf-8") as f:
                return cls(json.load(f))
        if spec.strip().startswith("{"):
            return cls(json.loads(spec))
        pairs = [p.split(":", 1) for p in spec.split(",") if p.strip()]
        if any(len(p) != 2 for p in pairs):
            raise FewShotError(f"verbalizer {spec!r} is not label:word,label:word (e.g. 1:很,0:不) or a JSON file")
        return cls({k.strip(): v.strip() for k, v in pairs})

    def token_ids(self, tokenizer):
        """-> [num_labels][num_masks] token ids; every word must be in the vocab and all equally long."""
        ids = []
        for label, word in self.mapping.items():
            tokens = tokenizer.tokenize(word)
            if not tokens or "[UNK]" in tokens:
                raise FewShotError(f"verbalizer word {word!r} (label {label}) is not in the vocabulary; "
                                   f"choose a word made of vocabulary characters")
            ids.append(tokenizer.tokens_to_ids(tokens))
        lengths = {len(i) for i in ids}
        if len(lengths) > 1:
            raise FewShotError(f"verbalizer words have different token lengths {sorted(lengths)} "
                               f"({self.mapping}); use words of equal length (e.g. all two characters)")
        return ids

    def check_labels(self, labels, source):
        unknown = sorted({str(l) for l in labels} - set(self.labels))
        if unknown:
            raise FewShotError(f"{source}: labels {unknown[:10]} are not in the verbalizer {self.mapping}; "
                               f"add them with --verbalizer")
