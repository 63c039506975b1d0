"""Verbalizers: label -> label word(s) scored at [MASK] (Verbalizer, PerLengthVerbalizer for words of
different lengths), per-row answer candidates (Candidates, as chid), and the named ones
(`--verbalizer sentiment|tnews`) with the hand-written zero-shot pattern of each."""
import json
import os

from few_shot.datasets import TNEWS_VERBALIZER
from few_shot.errors import FewShotError, permission_denied
from few_shot.pattern import ZERO_SHOT_PATTERN, field_names, lookup, row_fields

SENTIMENT_VERBALIZER = {"0": "不", "1": "很"}


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
            except PermissionError:
                raise permission_denied(spec, "verbalizer file") from None
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
    (docs/fewclue.md)."""

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


def _json_object(value, source):
    if not isinstance(value, dict):
        raise FewShotError(f"{source}: the JSON is a {type(value).__name__}, not an object; write "
                           f"{{\"1\": \"很\", \"0\": \"不\"}}")
    return value


TNEWS_ZERO_SHOT_PATTERN = "这是一条[MASK]新闻。{text}"
# name -> (label words, zero-shot pattern used when --pattern is not given)
NAMED_VERBALIZERS = {"sentiment": (SENTIMENT_VERBALIZER, ZERO_SHOT_PATTERN),
                     "tnews": (TNEWS_VERBALIZER, TNEWS_ZERO_SHOT_PATTERN)}


def zero_shot_pattern(spec):
    """The hand-written pattern of a named verbalizer (the sentiment one for any other)."""
    return NAMED_VERBALIZERS.get(spec or "sentiment", (None, ZERO_SHOT_PATTERN))[1]
