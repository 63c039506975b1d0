"""Patterns (templates with soft-prompt slots, [MASK] and {text}) and verbalizers (label -> word)."""
import collections
import json
import os
import re

from few_shot.errors import FewShotError

_PIECE = re.compile(r"(\[u\d+\]|\[unused\d+\]|\[MASK\]|\[SEP\]|\{[A-Za-z_][A-Za-z0-9_.]*\})")

PTUNING_PATTERN = "[u1][u2][u3][u4][MASK][u5][u6][u7][u8]{text}"  # mask at index 5 after [CLS], as the seed
ZERO_SHOT_PATTERN = "[MASK]满意。{text}"
SENTIMENT_VERBALIZER = {"0": "不", "1": "很"}


class EncodedRow(collections.namedtuple("EncodedRow", "token_ids segment_ids mask_positions text_positions")):
    """One row through a pattern: ids, segment ids, the [MASK] slots and which positions hold field text."""


def row_fields(row):
    """A row's named fields: a plain string is the field `text`."""
    return {"text": row} if isinstance(row, str) else row


class Pattern:
    """A template such as `[u1][u2][u3][u4][MASK][u5][u6][u7][u8]{text}` or `[MASK]满意。{text}`.

    `[uN]` (or `[unusedN]`) is a soft-prompt slot: the token `[unusedN]`, whose embedding P-tuning
    replaces. `[MASK]` is where the label word is read; it expands to as many slots as the label
    words have tokens. `{name}` is a field of the row (`{text}`, `{sentence1}`, `{abst}`: any field;
    list fields are joined). `[SEP]` ends the first segment: what follows gets segment id 1, as a
    BERT sentence pair. Truncation is one rule for every pattern: when the row does not fit
    `maxlen`, the longest field loses its last token, again and again; the pattern's own words,
    prompt slots and [MASK]s are never cut.
    """

    def __init__(self, template):
        if not isinstance(template, str):
            raise FewShotError(f"pattern {template!r} is not a string; write a template such as "
                               f"'[MASK]满意。{{text}}'")
        self.template = template
        pieces = [p for p in _PIECE.split(template) if p]
        self.fields = [p[1:-1] for p in pieces if p.startswith("{")]
        if not self.fields:
            raise FewShotError(f"pattern {template!r} has no {{text}} (or other {{field}}); add {{text}} where the "
                               f"input goes, e.g. '[MASK]满意。{{text}}'")
        if len(set(self.fields)) < len(self.fields):
            raise FewShotError(f"pattern {template!r} names a field twice; keep each {{field}} once")
        if "[MASK]" not in pieces:
            raise FewShotError(f"pattern {template!r} has no [MASK]; add [MASK] where the label word is read, "
                               f"e.g. '[MASK]满意。{{text}}'")
        if pieces.count("[SEP]") > 1:
            raise FewShotError(f"pattern {template!r} has [SEP] twice; one [SEP] splits a pair into two segments")
        self.pieces = [f"[unused{p[2:-1]}]" if re.fullmatch(r"\[u\d+\]", p) else p for p in pieces]
        self.explicit_masks = pieces.count("[MASK]")

    def __repr__(self):
        return f"Pattern({self.template!r})"

    @property
    def prompt_tokens(self):
        """The soft-prompt tokens in order of appearance, e.g. ['[unused1]', ..., '[unused8]']."""
        return [p for p in self.pieces if p.startswith("[unused")]

    def check_fields(self, available, source):
        """Every {field} of the pattern must be a field of the data (checked before anything loads)."""
        missing = [f for f in self.fields if f not in available]
        if missing:
            raise FewShotError(f"pattern {self.template!r}: {{{missing[0]}}} is not a field of {source} (its "
                               f"fields: {', '.join(sorted(available))}); write the pattern with those fields")

    def compile(self, tokenizer, num_masks):
        """-> [(ids, segment) | field name]: the fixed parts as token ids ([CLS]/[SEP] included,
        masks expanded), the fields by name."""
        if self.explicit_masks not in (1, num_masks):
            raise FewShotError(f"pattern {self.template!r} has {self.explicit_masks} [MASK] but the label words "
                               f"have {num_masks} tokens; write one [MASK] (it expands) or {num_masks}")
        expand = num_masks if self.explicit_masks == 1 else 1
        parts, segment = [([tokenizer.cls_id], 0)], 0
        for piece in self.pieces:
            if piece.startswith("{"):
                parts.append(piece[1:-1])
                continue
            if piece == "[MASK]":
                ids = [tokenizer.mask_id] * expand
            elif piece == "[SEP]":
                ids = [tokenizer.sep_id]
            elif piece.startswith("[unused"):
                if piece not in tokenizer.token_dict:
                    raise FewShotError(f"pattern {self.template!r}: {piece} is not in the vocabulary; use "
                                       f"[u1]..[u99] (BERT vocabularies have [unused1..99])")
                ids = [tokenizer.token_dict[piece]]
            else:
                ids = tokenizer.tokens_to_ids(tokenizer.tokenize(piece))
            parts.append((ids, segment))
            if piece == "[SEP]":
                segment = 1
        parts.append(([tokenizer.sep_id], segment))
        return parts

    def fixed_length(self, compiled):
        return sum(len(p[0]) for p in compiled if not isinstance(p, str))

    def encode(self, tokenizer, row, maxlen, num_masks=1, compiled=None):
        """row (a string, or a dict of fields) -> EncodedRow, cut to `maxlen` by the longest-field rule."""
        compiled = compiled or self.compile(tokenizer, num_masks)
        budget = maxlen - self.fixed_length(compiled)
        if budget < len(self.fields):
            raise FewShotError(f"maxlen={maxlen} is too short for pattern {self.template!r}; "
                               f"use maxlen >= {maxlen - budget + len(self.fields)}")
        fields = row_fields(row)
        field_ids = {name: tokenizer.tokens_to_ids(tokenizer.tokenize(field_text(fields, name)))
                     for name in self.fields}
        keep = truncated_lengths({n: len(ids) for n, ids in field_ids.items()}, budget)
        token_ids, segment_ids, masks, text = [], [], [], []
        segment = 0
        for part in compiled:
            if isinstance(part, str):
                ids = field_ids[part][:keep[part]]
                text.extend(range(len(token_ids), len(token_ids) + len(ids)))
            else:
                ids, segment = part
                masks.extend(len(token_ids) + i for i, t in enumerate(ids) if t == tokenizer.mask_id)
            token_ids.extend(ids)
            segment_ids.extend([segment] * len(ids))
        return EncodedRow(token_ids, segment_ids, masks, text)


def field_text(fields, name):
    if name not in fields:
        raise FewShotError(f"row has no field {name!r} (fields: {', '.join(map(str, fields))}); check the "
                           f"pattern's {{fields}} against the data")
    value = fields[name]
    return "，".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def truncated_lengths(lengths, budget):
    """How many tokens each field keeps: while the total is over `budget`, the longest field loses
    one token (ties: the later field), so short fields survive whole."""
    keep = dict(lengths)
    while sum(keep.values()) > budget:
        longest = max(reversed(list(keep)), key=keep.get)
        keep[longest] -= 1
    return keep


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
