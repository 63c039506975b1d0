"""Patterns (templates with soft-prompt slots, [MASK] and {text}) and verbalizers (label -> word)."""
import collections
import json
import os
import re

from few_shot.errors import FewShotError

# {field}, {nested.field}, or {field:MARK}: a field whose text holds the blank MARK (e.g. chid's #idiom#)
_PIECE = re.compile(r"(\[u\d+\]|\[unused\d+\]|\[MASK\]|\[SEP\]|\{[A-Za-z_][A-Za-z0-9_.]*(?::[^{}]+)?\})")

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

    def encode(self, tokenizer, row, maxlen, num_masks=1, compiled=None):
        """row (a string, or a dict of fields) -> EncodedRow, cut to `maxlen` by the longest-field rule."""
        compiled = compiled or self.compile(tokenizer, num_masks)
        budget = maxlen - self.fixed_length(compiled)
        if budget < len(self.fields):
            raise FewShotError(f"maxlen={maxlen} is too short for pattern {self.template!r}; "
                               f"use maxlen >= {maxlen - budget + len(self.fields)}")
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


def _json_object(value, source):
    if not isinstance(value, dict):
        raise FewShotError(f"{source}: the JSON is a {type(value).__name__}, not an object; write "
                           f"{{\"1\": \"很\", \"0\": \"不\"}}")
    return value


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
        if not isinstance(mapping, dict):
            raise FewShotError(f"verbalizer {mapping!r} is not a label -> word mapping; pass a dict such as "
                               f"{{'1': '很', '0': '不'}} (or Verbalizer.parse('1:很,0:不'))")
        if not mapping:
            raise FewShotError("verbalizer is empty; give label:word pairs such as 1:很,0:不")
        if not all(isinstance(w, str) and w.strip() for w in mapping.values()):
            raise FewShotError(f"verbalizer {mapping}: every label word must be a non-empty string")
        self.mapping = {str(k): v for k, v in mapping.items()}
        self.labels = list(self.mapping)
        seen = {}
        for label, word in self.mapping.items():
            if word in seen:
                raise FewShotError(f"verbalizer: labels {seen[word]} and {label} map to the same word {word!r}; "
                                   f"use distinct words")
            seen[word] = label

    def __repr__(self):
        return f"Verbalizer({self.mapping})"

    @classmethod
    def parse(cls, spec):
        """`1:很,0:不`, a JSON object string, or a path to a JSON file."""
        if os.path.isdir(spec):
            raise FewShotError(f"--verbalizer {spec}: is a folder; pass label:word pairs (1:很,0:不) or a JSON file")
        if os.path.exists(spec):
            try:
                with open(spec, encoding="utf-8") as f:
                    return verbalizer_from(_json_object(json.load(f), spec))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise FewShotError(f"--verbalizer {spec}: not valid UTF-8 JSON ({str(e).splitlines()[0]}); "
                                   f"write an object such as {{\"1\": \"很\", \"0\": \"不\"}}") from None
        if spec.strip().startswith(("{", "[")):
            try:
                return verbalizer_from(_json_object(json.loads(spec), "--verbalizer"))
            except json.JSONDecodeError as e:
                raise FewShotError(f"--verbalizer {spec!r}: not valid JSON ({e.msg}); write an object such as "
                                   f"{{\"1\": \"很\", \"0\": \"不\"}} or pairs 1:很,0:不") from None
        pairs = [p.split(":", 1) for p in spec.split(",") if p.strip()]
        if any(len(p) != 2 for p in pairs):
            raise FewShotError(f"verbalizer {spec!r} is not label:word,label:word (e.g. 1:很,0:不) or a JSON file")
        labels = [k.strip() for k, _ in pairs]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise FewShotError(f"verbalizer {spec!r} gives label {repeated[0]} twice; give each label one word")
        return cls({k.strip(): v.strip() for k, v in pairs})

    def word_ids(self, tokenizer):
        """-> each label word's token ids; a word with a character out of the vocabulary is an error."""
        ids = []
        for label, word in self.mapping.items():
            tokens = tokenizer.tokenize(word)
            if not tokens or "[UNK]" in tokens:
                raise FewShotError(f"verbalizer word {word!r} (label {label}) is not in the vocabulary; "
                                   f"choose a word made of vocabulary characters")
            ids.append(tokenizer.tokens_to_ids(tokens))
        return ids

    def token_ids(self, tokenizer):
        """-> [num_labels][num_masks] token ids; every word must be in the vocab and all equally long."""
        ids = self.word_ids(tokenizer)
        lengths = {len(i) for i in ids}
        if len(lengths) > 1:
            labels = list(self.mapping)
            odd = next(i for i in range(len(ids)) if len(ids[i]) != len(ids[0]))
            raise FewShotError(f"verbalizer words have different token lengths {sorted(lengths)}: label {labels[odd]} "
                               f"{self.mapping[labels[odd]]!r} has {len(ids[odd])}, label {labels[0]} "
                               f"{self.mapping[labels[0]]!r} has {len(ids[0])}; use words of equal length (e.g. all "
                               f"two characters)")
        return ids

    def check_labels(self, labels, source):
        unknown = sorted({str(l) for l in labels} - set(self.labels))
        if unknown:
            shown = self.mapping if len(self.mapping) <= 20 else f"of {len(self.mapping)} labels"
            raise FewShotError(f"{source}: labels {unknown[:10]} are not in the verbalizer {shown}; "
                               f"add them with --verbalizer")

    def config(self):
        """What a saved preprocessor stores (verbalizer_from reads it back)."""
        return dict(self.mapping)


PER_LENGTH_KEY = "@per_length"


class PerLengthVerbalizer(Verbalizer):
    """Label words of different token lengths (iflytek's 119 app categories, csldcp's 67 subjects,
    used whole): the labels are grouped by their words' token length L, a row is encoded once per
    group with L [MASK] slots, and a label's score is the MEAN of its tokens' log-probabilities
    (log-softmax over the whole vocabulary) at its group's slots, so long and short words compare.
    Chosen over fixed two-character words derived from the names by zero-shot accuracy on dev_0
    (README, FewCLUE)."""

    def token_ids(self, tokenizer):
        return self.word_ids(tokenizer)  # lengths may differ: each group gets its own [MASK] slots

    def config(self):
        return {PER_LENGTH_KEY: dict(self.mapping)}


CANDIDATES_KEY = "@candidates"


class Candidates:
    """Per-row answer candidates (multiple choice, as FewCLUE chid): the row's field `field` lists
    `count` answers of `length` tokens each, and the label is the index of the right one ("0".."6").

    The pattern's blank (a `{field:MARK}` or `[MASK]`) expands to `length` slots; a candidate's score
    is the sum of its tokens' log-probabilities (log-softmax over the whole vocabulary) at those
    slots, and training is a softmax over the row's candidates. The preprocessor hands the model each
    row's candidate token ids (`candidate_ids` [B, count, length]); `token_ids` (what a verbalizer
    gives the model as label words) are placeholders of the right shape.
    """

    def __init__(self, field="candidates", count=7, length=4):
        if not (isinstance(count, int) and count >= 2 and isinstance(length, int) and length >= 1):
            raise FewShotError(f"candidates: count {count!r} must be an integer >= 2 and length {length!r} >= 1")
        self.field, self.count, self.length = str(field), count, length
        self.labels = [str(i) for i in range(count)]
        self.mapping = {CANDIDATES_KEY: self.field, "count": count, "length": length}

    def config(self):
        return dict(self.mapping)

    def __repr__(self):
        return f"Candidates(field={self.field!r}, count={self.count}, length={self.length})"

    def token_ids(self, tokenizer):
        return [[tokenizer.mask_id] * self.length for _ in range(self.count)]

    def candidate_ids(self, tokenizer, row, where="row"):
        """-> [count][length] token ids of the row's candidates (a rare character may be [UNK]: the
        model's vocabulary, not the data, is short of it)."""
        fields = row_fields(row)
        try:
            answers = lookup(fields, self.field)
        except KeyError:
            raise FewShotError(f"{where}: no candidates field {self.field!r} (fields: "
                               f"{', '.join(field_names(fields))})") from None
        if not isinstance(answers, (list, tuple)) or len(answers) != self.count:
            raise FewShotError(f"{where}: {self.field!r} must list {self.count} candidates, got {answers!r}")
        ids = []
        for answer in answers:
            tokens = tokenizer.tokenize(str(answer))
            if len(tokens) != self.length:
                raise FewShotError(f"{where}: candidate {answer!r} has {len(tokens)} tokens, the blank has "
                                   f"{self.length} [MASK] slots; every candidate must fill the blank exactly")
            ids.append(tokenizer.tokens_to_ids(tokens))
        return ids

    def check_labels(self, labels, source):
        unknown = sorted({str(l) for l in labels} - set(self.labels))
        if unknown:
            raise FewShotError(f"{source}: answers {unknown[:10]} are not candidate indices 0..{self.count - 1}")


def verbalizer_from(value):
    """A Verbalizer or Candidates, or the mapping one of them was saved as -> that object."""
    if isinstance(value, (Verbalizer, Candidates)):
        return value
    if isinstance(value, dict) and CANDIDATES_KEY in value:
        return Candidates(value[CANDIDATES_KEY], value.get("count", 7), value.get("length", 4))
    if isinstance(value, dict) and PER_LENGTH_KEY in value:
        return PerLengthVerbalizer(value[PER_LENGTH_KEY])
    return Verbalizer(value)
