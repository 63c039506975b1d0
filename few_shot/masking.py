"""BERT masking and block packing, shared by MLM pretraining (few_shot/pretraining/) and the
semi-supervised MLM loss (few_shot/semi.py): documents -> token ids + word groups, packed into
`maxlen` blocks, then 15% of the groups masked (80% [MASK] / 10% random / 10% unchanged)."""
import re

import numpy as np

from few_shot.errors import FewShotError
from few_shot.tokenizer import CJK

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class DocumentTokenizer:
    """Document -> (token ids, word groups). Groups number the maskable units of the document
    (one per token, or with `whole_word` one per jieba word: all characters of a Chinese word, all
    word pieces of a non-Chinese word); special tokens and [UNK] get group -1 (never masked).
    The token ids are the same with and without `whole_word`."""

    def __init__(self, tokenizer, whole_word=False):
        self.tokenizer = tokenizer
        self.whole_word = whole_word
        self.special_ids = {tokenizer.token_dict[t] for t in SPECIAL_TOKENS}
        if whole_word:
            self._jieba = import_jieba()

    def __call__(self, text):
        tok = self.tokenizer
        if not self.whole_word:
            ids = np.asarray(tok.tokens_to_ids(tok.tokenize(text)), dtype=np.int64)
            groups = np.arange(len(ids), dtype=np.int64)
        else:
            ids, groups = self._whole_words(text)
        if len(ids):
            groups[np.isin(ids, list(self.special_ids))] = -1
        return ids, groups

    def _whole_words(self, text):
        tok = self.tokenizer
        word_of = []
        for w, word in enumerate(self._jieba.lcut(text)):
            word_of.extend([w] * len(word))
        ids, groups = [], []
        group, last_word = -1, None  # last_word: jieba word of the previous token if it was a CJK char

        def add_pieces(chunk):
            nonlocal group, last_word
            pieces = tok.tokenize(chunk)
            for i, piece in enumerate(pieces):
                if not (i > 0 and piece.startswith("##")):
                    group += 1
                ids.append(tok.token_to_id(piece))
                groups.append(group)
            if pieces:
                last_word = None

        start = 0
        for m in CJK.finditer(text):
            pos = m.start()
            if pos > start:
                add_pieces(text[start:pos])
            char = text[pos]
            if char in tok.token_dict:
                char_ids = [tok.token_dict[char]]
            else:  # compatibility ideographs normalise to another character, or [UNK]
                char_ids = tok.tokens_to_ids(tok.tokenize(char))
            for token_id in char_ids:
                if word_of[pos] != last_word:
                    group += 1
                ids.append(token_id)
                groups.append(group)
                last_word = word_of[pos]
            start = pos + 1
        if start < len(text):
            add_pieces(text[start:])
        return np.asarray(ids, dtype=np.int64), np.asarray(groups, dtype=np.int64)


def import_jieba():
    try:
        import logging

        import jieba
    except ImportError:
        raise FewShotError("--whole-word needs jieba for the word segmentation; `pip install jieba`") from None
    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


class BlockStream:
    """Endless stream of packed blocks `[CLS] d1 [SEP] d2 [SEP] ...` of exactly `maxlen` tokens.

    Documents are visited in a fresh seeded permutation each epoch; a document that does not fit
    continues after the [CLS] of the next block. `state()` / `BlockStream(..., state=...)` save and
    restore the position exactly (epoch, document, the unread rest of the current document).
    """

    def __init__(self, documents, doc_tokenizer, maxlen, seed=0, state=None):
        self.documents = documents
        self.doc_tokenizer = doc_tokenizer
        self.maxlen = maxlen
        self.seed = seed
        tok = doc_tokenizer.tokenizer
        self.cls_id, self.sep_id = tok.cls_id, tok.sep_id
        self._order_epoch, self._order = None, None
        self._empty_run = 0
        self.restore(state or {"epoch": 0, "position": 0, "carry_ids": [], "carry_groups": [], "next_group": 0})

    def restore(self, state):
        """Go back (or forward) to a position returned by `state()`."""
        self.epoch, self.position = state["epoch"], state["position"]
        self.carry_ids = np.asarray(state["carry_ids"], dtype=np.int64)
        self.carry_groups = np.asarray(state["carry_groups"], dtype=np.int64)
        self.next_group = state["next_group"]

    def state(self):
        return {"epoch": self.epoch, "position": self.position, "carry_ids": self.carry_ids.tolist(),
                "carry_groups": self.carry_groups.tolist(), "next_group": self.next_group}

    def _order_for(self, epoch):
        if self._order_epoch != epoch:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(len(self.documents))
            self._order_epoch = epoch
        return self._order

    def _load_next_document(self):
        while True:
            if self.position >= len(self.documents):
                self.epoch, self.position = self.epoch + 1, 0
            doc = self.documents[self._order_for(self.epoch)[self.position]]
            self.position += 1
            ids, groups = self.doc_tokenizer(doc)
            if len(ids):
                break
            self._empty_run += 1
            if self._empty_run > len(self.documents):
                raise FewShotError("no document of the corpus yields any token with this vocab.txt; pass a "
                                   "Chinese corpus or the matching --vocab")
        self._empty_run = 0
        groups = np.where(groups >= 0, groups + self.next_group, -1)
        if groups.max() >= 0:
            self.next_group = int(groups.max()) + 1
        self.carry_ids = np.concatenate([ids, [self.sep_id]])
        self.carry_groups = np.concatenate([groups, [-1]])

    def next_block(self):
        """-> (ids [maxlen] int32, groups [maxlen] int64)."""
        ids, groups, filled = [np.array([self.cls_id])], [np.array([-1])], 1
        while filled < self.maxlen:
            if not len(self.carry_ids):
                self._load_next_document()
            if filled == 1 and len(self.carry_ids) == 1:  # only the [SEP] of a document split at the boundary
                self.carry_ids, self.carry_groups = self.carry_ids[1:], self.carry_groups[1:]
                continue
            take = min(self.maxlen - filled, len(self.carry_ids))
            ids.append(self.carry_ids[:take])
            groups.append(self.carry_groups[:take])
            self.carry_ids, self.carry_groups = self.carry_ids[take:], self.carry_groups[take:]
            filled += take
        return np.concatenate(ids).astype(np.int32), np.concatenate(groups)


class Masker:
    """BERT masking of packed blocks: pick whole groups in random order until
    `round(rate * candidates)` tokens (at most `max_predictions`) are chosen (a group that would
    overshoot is skipped, as in Google's create_pretraining_data), then per chosen token 80% ->
    [MASK], 10% -> a random ordinary vocabulary token, 10% unchanged."""

    def __init__(self, tokenizer, rate=0.15, max_predictions=20, seed=0):
        self.rate = rate
        self.max_predictions = max_predictions
        self.seed = seed
        self.mask_id = tokenizer.mask_id
        self.random_ids = np.array(sorted(i for t, i in tokenizer.token_dict.items()
                                          if not (t in SPECIAL_TOKENS or re.fullmatch(r"\[unused\d+\]", t))))

    def mask_block(self, ids, groups, rng):
        """-> (masked ids, positions [P], labels [P], weights [P]); padded rows have weight 0."""
        candidates = np.flatnonzero(groups >= 0)
        P = self.max_predictions
        positions = np.zeros(P, dtype=np.int32)
        labels = np.zeros(P, dtype=np.int32)
        weights = np.zeros(P, dtype=np.float32)
        ids = ids.copy()
        if not len(candidates):
            return ids, positions, labels, weights
        target = min(P, max(1, int(round(len(candidates) * self.rate))))
        starts = np.flatnonzero(np.diff(groups[candidates], prepend=-2) != 0)  # groups are contiguous runs
        words = np.split(candidates, starts[1:])
        chosen, count = [], 0
        for w in rng.permutation(len(words)):
            if count >= target:
                break
            if count + len(words[w]) > target:
                continue
            chosen.append(words[w])
            count += len(words[w])
        chosen = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
        n = len(chosen)
        positions[:n], labels[:n], weights[:n] = chosen, ids[chosen], 1.0
        r = rng.random(n)
        ids[chosen[r < 0.8]] = self.mask_id
        randomised = chosen[(r >= 0.8) & (r < 0.9)]
        ids[randomised] = rng.choice(self.random_ids, size=len(randomised))
        return ids, positions, labels, weights

    def mask_batch(self, ids, groups, step):
        """[B, T] blocks -> (inputs dict, labels [B, P], weights [B, P]); the randomness is a function
        of (seed, step) only, so a resumed run sees the same batches."""
        rng = np.random.default_rng([self.seed, 1, step])
        out = [self.mask_block(i, g, rng) for i, g in zip(ids, groups)]
        token_ids, positions, labels, weights = (np.stack(x) for x in zip(*out))
        inputs = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids), "masked_positions": positions}
        return inputs, labels, weights
