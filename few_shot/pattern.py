"""Patterns: templates with soft-prompt slots, [MASK], [SEP] and {fields}, encoded into token ids
(label words and per-row candidates are few_shot/verbalizers.py)."""
import collections
import re

from few_shot.errors import FewShotError

# {field}, {nested.field}, or {field:MARK}: a field whose text holds the blank MARK (e.g. chid's #idiom#)
_PIECE = re.compile(r"(\[u\d+\]|\[unused\d+\]|\[MASK\]|\[SEP\]|\{[A-Za-z_][A-Za-z0-9_.]*(?::[^{}]+)?\})")

PTUNING_PATTERN = "[u1][u2][u3][u4][MASK][u5][u6][u7][u8]{text}"  # mask at index 5 after [CLS], as the seed
ZERO_SHOT_PATTERN = "[MASK]满意。{text}"


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

    `{a.b}` reads a nested field (cluewsc's `{target.span1_text}`). `{field:MARK}` is a field whose
    text holds a blank: MARK (once per row) becomes the [MASK]s, in place of a `[MASK]` piece, and
    the same truncation rule cuts this field around the blank, a window from both ends, so the
    blank and its [MASK]s always stay (chid: `{content:#idiom#}`, a 4-character idiom's 4 slots).
    """

    def __init__(self, template):
        if not isinstance(template, str):
            raise FewShotError(f"pattern {template!r} is not a string; write a template such as "
                               f"'[MASK]满意。{{text}}'")
        self.template = template
        pieces = [p for p in _PIECE.split(template) if p]
        stray = next((p for p in pieces if not _PIECE.fullmatch(p) and ("{" in p or "}" in p)), None)
        if stray is not None:
            at = stray[stray.find("{"):] if "{" in stray else stray[:stray.find("}") + 1]
            raise FewShotError(f"pattern {template!r}: unclosed or stray brace at {at!r}; write each field as "
                               f"{{name}} (e.g. {{text}}), with both braces")
        # {field:MARK} -> field name, and MARK in self.blanks
        self.blanks = {p[1:-1].split(":", 1)[0]: p[1:-1].split(":", 1)[1] for p in pieces
                       if p.startswith("{") and ":" in p}
        pieces = ["{" + p[1:-1].split(":", 1)[0] + "}" if p.startswith("{") else p for p in pieces]
        self.fields = [p[1:-1] for p in pieces if p.startswith("{")]
        if not self.fields:
            raise FewShotError(f"pattern {template!r} has no {{text}} (or other {{field}}); add {{text}} where the "
                               f"input goes, e.g. '[MASK]满意。{{text}}'")
        if len(set(self.fields)) < len(self.fields):
            raise FewShotError(f"pattern {template!r} names a field twice; keep each {{field}} once")
        if "[MASK]" not in pieces and not self.blanks:
            raise FewShotError(f"pattern {template!r} has no [MASK]; add [MASK] where the label word is read, "
                               f"e.g. '[MASK]满意。{{text}}'")
        if self.blanks and ("[MASK]" in pieces or len(self.blanks) > 1):
            raise FewShotError(f"pattern {template!r}: a {{field:MARK}} blank is where the label is read; write "
                               f"one blank and no [MASK]")
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
        """Every {field} of the pattern must be a field of the data (checked before anything loads).
        `available`: a row's fields (a dict: nested `{a.b}` fields are looked up) or their names."""
        missing = [f for f in self.fields if not has_field(available, f)]
        if missing:
            raise FewShotError(f"pattern {self.template!r}: {{{missing[0]}}} is not a field of {source} (its "
                               f"fields: {', '.join(sorted(field_names(available)))}); write the pattern with "
                               f"those fields")

    def compile(self, tokenizer, num_masks):
        """-> [(ids, segment) | field name]: the fixed parts as token ids ([CLS]/[SEP] included,
        masks expanded), the fields by name."""
        if self.blanks:
            pass  # the blank expands to num_masks slots inside its field (encode)
        elif self.explicit_masks not in (1, num_masks):
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
                parts.append(([], segment))  # so that a field right after [SEP] takes segment 1 too
        parts.append(([tokenizer.sep_id], segment))
        return Compiled(parts, num_masks if self.blanks else 0)

    def fixed_length(self, compiled):
        """Tokens no truncation cuts: the pattern's own pieces, [CLS]/[SEP] and every [MASK] slot."""
        return sum(len(p[0]) for p in compiled if not isinstance(p, str)) + getattr(compiled, "blank_masks", 0)

    def check_maxlen(self, compiled, maxlen):
        """`maxlen` leaves at least one token for every field -> the token budget of the fields."""
        budget = maxlen - self.fixed_length(compiled)
        if budget < len(self.fields):
            raise FewShotError(f"maxlen={maxlen} is too short for pattern {self.template!r}; "
                               f"use maxlen >= {maxlen - budget + len(self.fields)}")
        return budget

    def encode(self, tokenizer, row, maxlen, num_masks=1, compiled=None):
        """row (a string, or a dict of fields) -> EncodedRow, cut to `maxlen` by the longest-field rule."""
        compiled = compiled or self.compile(tokenizer, num_masks)
        budget = self.check_maxlen(compiled, maxlen)
        fields = row_fields(row)
        field_ids, around = {}, {}
        for name in self.fields:
            if name in self.blanks:  # the text before and after the blank, tokenized apart
                before, after = split_blank(field_text(fields, name), self.blanks[name], name)
                around[name] = [tokenizer.tokens_to_ids(tokenizer.tokenize(t)) for t in (before, after)]
                field_ids[name] = around[name][0] + around[name][1]
            else:
                field_ids[name] = tokenizer.tokens_to_ids(tokenizer.tokenize(field_text(fields, name)))
        keep = truncated_lengths({n: len(ids) for n, ids in field_ids.items()}, budget)
        token_ids, segment_ids, masks, text = [], [], [], []
        segment = 0
        for part in compiled:
            if isinstance(part, str) and part in around:
                before, after = window(*around[part], keep[part])
                start, blank = len(token_ids), [tokenizer.mask_id] * compiled.blank_masks
                ids = before + blank + after
                masks.extend(range(start + len(before), start + len(before) + len(blank)))
                text.extend(range(start, start + len(before)))
                text.extend(range(start + len(before) + len(blank), start + len(ids)))
            elif isinstance(part, str):
                ids = field_ids[part][:keep[part]]
                text.extend(range(len(token_ids), len(token_ids) + len(ids)))
            else:
                ids, segment = part
                masks.extend(len(token_ids) + i for i, t in enumerate(ids) if t == tokenizer.mask_id)
            token_ids.extend(ids)
            segment_ids.extend([segment] * len(ids))
        return EncodedRow(token_ids, segment_ids, masks, text)


class Compiled:
    """Pattern.compile's parts, a sequence of (ids, segment) and field names; `blank_masks`: the [MASK]
    slots of a {field:MARK} blank (0 without one). Not a list, so that a Keras layer holding it
    (PromptPreprocessor) does not wrap it in a tracked list and lose the attribute."""

    def __init__(self, parts, blank_masks=0):
        self.parts, self.blank_masks = list(parts), blank_masks

    def __iter__(self):
        return iter(self.parts)

    def __len__(self):
        return len(self.parts)

    def __getitem__(self, index):
        return self.parts[index]

    def __eq__(self, other):
        return list(self) == list(other) and self.blank_masks == getattr(other, "blank_masks", 0)


def lookup(fields, name):
    """fields[name], following dots into nested objects (`target.span1_text`); KeyError if absent."""
    if name in fields:
        return fields[name]
    value = fields
    for key in name.split("."):
        if not isinstance(value, dict) or key not in value:
            raise KeyError(name)
        value = value[key]
    return value


def has_field(available, name):
    if not isinstance(available, dict):
        return name in available
    try:
        lookup(available, name)
    except KeyError:
        return False
    return True


def field_names(available):
    """A row's field names, nested ones dotted: text, target.span1_text, ..."""
    if not isinstance(available, dict):
        return [str(n) for n in available]
    names = []
    for key, value in available.items():
        names += [f"{key}.{n}" for n in field_names(value)] if isinstance(value, dict) else [str(key)]
    return names


def field_text(fields, name):
    try:
        value = lookup(fields, name)
    except KeyError:
        raise FewShotError(f"row has no field {name!r} (fields: {', '.join(field_names(fields))}); check the "
                           f"pattern's {{fields}} against the data") from None
    return "，".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def split_blank(text, marker, name):
    """A blank field's text -> (before, after) the marker, which must be there exactly once."""
    count = text.count(marker)
    if count != 1:
        raise FewShotError(f"field {name!r} holds the blank {marker!r} {count} times (text {text[:40]!r}...); "
                           f"a {{{name}:{marker}}} field needs it exactly once")
    before, after = text.split(marker)
    return before, after


def window(before, after, keep):
    """Cut a blank field to `keep` tokens around its blank: the longer side loses its far end first
    (the text before keeps its tail, the text after its head), so the blank's context stays."""
    if len(before) + len(after) <= keep:
        return before, after
    left = min(len(before), max(keep // 2, keep - len(after)))
    return (before[len(before) - left:] if left else []), after[:keep - left]


def truncated_lengths(lengths, budget):
    """How many tokens each field keeps: while the total is over `budget`, the longest field loses
    one token (ties: the later field), so short fields survive whole."""
    keep = dict(lengths)
    while sum(keep.values()) > budget:
        longest = max(reversed(list(keep)), key=keep.get)
        keep[longest] -= 1
    return keep
