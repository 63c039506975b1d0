"""The self-supervised tasks of PPT (Gu et al. 2022, "Pre-trained Prompt Tuning for Few-shot Learning"),
written in the formats of the downstream task shapes and built from a corpus whose lines are documents.

    pair     s1 and s2: the next sentence of the same document (是的), a later sentence of the same
             document (可能), or a sentence of another document (不是)       -> bustm, ocnli, csl
    choice   s1 and four sentences: which one follows it (一/二/三/四)       -> chid (per-row candidates)
    single   a sentence and a pseudo-label: 很 (positive) or 不 (negative), from the frozen MLM's own
             calibrated zero-shot scores (no labelled data is used)         -> sentiment, tnews
    unified  every format above as one multiple choice (PPT's unified PPT)

Every pattern starts with the soft prompt [u1..uP]; only its P rows train (the MLM is frozen). An
example is a `(fields, label)` row of the package's pipeline (PromptPreprocessor). Batch `step` is a
pure function of the corpus, the seed and the step, so a resumed run sees the data it would have seen.
Pure Python/numpy: nothing here loads TensorFlow.
"""
import re

import numpy as np

from few_shot.errors import FewShotError

FORMATS = ("pair", "choice", "single", "unified")
SENTENCE_END = re.compile(r"(?<=[。！？!?；;…])")
MIN_CHARS, MAX_CHARS = 4, 60  # sentences shorter are dropped, longer are cut (the pattern holds several)
OPTION_WORDS = ("一", "二", "三", "四")
PAIR_WORDS = {"next": "是的", "same": "可能", "other": "不是"}
SINGLE_WORDS = {"positive": "很", "negative": "不"}


def soft_prefix(length):
    return "".join(f"[u{i}]" for i in range(1, length + 1))


def pattern_of(fmt, prompt_length):
    """The pattern (with `prompt_length` soft tokens) and the verbalizer (label -> word) of a format."""
    soft = soft_prefix(prompt_length)
    if fmt == "pair":
        return soft + "{s1}？[MASK]，{s2}", PAIR_WORDS
    if fmt == "single":
        return soft + "[MASK]满意。{text}", SINGLE_WORDS
    # choice and unified: a question, numbered options, the answer's number at [MASK]
    return soft + "{question}选项：{options}答：[MASK]", {str(i): w for i, w in enumerate(OPTION_WORDS)}


def split_sentences(document):
    """A document -> its sentences (cut after 。！？!?；;…), each stripped, cut to MAX_CHARS, the short dropped."""
    pieces = (s.strip() for s in SENTENCE_END.split(document))
    return [s[:MAX_CHARS] for s in pieces if len(s) >= MIN_CHARS]


class SentenceBank:
    """The corpus as sentences: `documents[d]` lists document d's sentences; pair and choice examples
    need documents of at least two (three, for a later non-adjacent sentence) sentences."""

    def __init__(self, documents):
        self.documents = [split_sentences(d) for d in documents]
        self.multi = [d for d, s in enumerate(self.documents) if len(s) >= 2]
        self.long = [d for d, s in enumerate(self.documents) if len(s) >= 3]
        self.sentences = [s for doc in self.documents for s in doc]
        if len(self.documents) < 2:
            raise FewShotError(f"the corpus has {len(self.documents)} document; documents are separated by line "
                               f"breaks, and pair/choice examples need sentences of other documents: pass a "
                               f"corpus with one document per line")
        if not self.multi:
            raise FewShotError("no document of the corpus has two sentences (cut at 。！？!?；;…), so no next-sentence "
                               "example can be made; pass documents of several sentences")

    def other_sentence(self, rng, document):
        """A sentence of another document."""
        while True:
            d = int(rng.integers(len(self.documents)))
            if d != document and self.documents[d]:
                return self.documents[d][int(rng.integers(len(self.documents[d])))]

    def pair(self, rng):
        """-> ({s1, s2}, label): next / same (a later, non-adjacent sentence) / other, a third each."""
        kind = ("next", "same", "other")[int(rng.integers(3))]
        if kind == "same" and not self.long:
            kind = "next"
        pool = self.long if kind == "same" else self.multi
        d = pool[int(rng.integers(len(pool)))]
        sentences = self.documents[d]
        if kind == "same":
            i = int(rng.integers(len(sentences) - 2))
            second = sentences[int(rng.integers(i + 2, len(sentences)))]
        else:
            i = int(rng.integers(len(sentences) - 1))
            second = sentences[i + 1] if kind == "next" else self.other_sentence(rng, d)
        return {"s1": sentences[i], "s2": second}, kind

    def choice(self, rng):
        """-> ({question, options}, label): which of four sentences follows s1 (three from other documents)."""
        d = self.multi[int(rng.integers(len(self.multi)))]
        sentences = self.documents[d]
        i = int(rng.integers(len(sentences) - 1))
        options = [sentences[i + 1]] + [self.other_sentence(rng, d) for _ in range(len(OPTION_WORDS) - 1)]
        order = rng.permutation(len(options))
        return {"question": sentences[i] + "接下来是哪句？", "options": numbered([options[k] for k in order])}, \
            str(int(np.argmin(order)))


def numbered(options):
    return "".join(f"{OPTION_WORDS[i]}、{text}" for i, text in enumerate(options))


def as_choice(fmt, row, label):
    """A pair or single example in the unified multiple-choice format."""
    if fmt == "pair":
        options = ["是下一句", "同一篇，不相邻", "另一篇的"]
        return ({"question": f"“{row['s1']}”之后，“{row['s2']}”是？", "options": numbered(options)},
                str(("next", "same", "other").index(label)))
    return {"question": f"“{row['text']}”的评价是？", "options": numbered(["满意", "不满意"])}, \
        str(("positive", "negative").index(label))


class ExampleStream:
    """`batch(step)`: the `batch_size` examples of a format at a global step (a pure function of the
    seed and the step). `single` examples come from `pseudo` ([(text, label)], made by the caller)."""

    def __init__(self, fmt, bank, batch_size, seed, pseudo=None):
        if fmt not in FORMATS:
            raise FewShotError(f"--formats {fmt!r}: choose from {', '.join(FORMATS)}")
        if fmt in ("single", "unified") and not pseudo:
            raise FewShotError(f"{fmt}: no pseudo-labelled sentences to train on; use a larger corpus or drop {fmt}")
        self.fmt, self.bank, self.batch_size, self.seed, self.pseudo = fmt, bank, batch_size, seed, pseudo

    def example(self, rng, fmt):
        if fmt == "pair":
            return self.bank.pair(rng)
        if fmt == "choice":
            return self.bank.choice(rng)
        text, label = self.pseudo[int(rng.integers(len(self.pseudo)))]
        return {"text": text}, label

    def batch(self, step):
        rng = np.random.default_rng([self.seed, step])
        if self.fmt != "unified":
            return [self.example(rng, self.fmt) for _ in range(self.batch_size)]
        out = []
        for _ in range(self.batch_size):
            fmt = ("pair", "choice", "single")[int(rng.integers(3))]
            row, label = self.example(rng, fmt)
            out.append((row, label) if fmt == "choice" else as_choice(fmt, row, label))
        return out
