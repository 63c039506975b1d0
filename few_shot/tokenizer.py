"""Chinese BERT tokenizer (vocab.txt), bert4keras-style API, token-for-token equal to
`transformers.BertTokenizerFast` with `do_lower_case=True`.

Normalisation follows the Rust `tokenizers` BertNormalizer: drop NUL, U+FFFD and control/format
characters, map whitespace to spaces, put spaces around CJK ideographs, NFD + drop non-spacing
marks, lower-case; then split on whitespace and punctuation and run greedy WordPiece.
Special tokens written in the text (`[MASK]`, `[unused3]`, ...) are kept whole.
"""
import re
import unicodedata

from few_shot.errors import FewShotError

_SPECIAL = re.compile(r"(\[(?:CLS|SEP|PAD|MASK|UNK|unused\d+)\])")


# The CJK ideograph ranges BERT isolates (the last but two as the Rust normalizer of BertTokenizerFast);
# the one definition: masking.py and export.py build their patterns from it.
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
              (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
CJK = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in CJK_RANGES) + "]")


def _is_cjk(cp):
    return 0x4E00 <= cp <= 0x9FFF or any(lo <= cp <= hi for lo, hi in CJK_RANGES[1:])


def _is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def load_vocab(path):
    """Read a BERT vocab.txt (one token per line, id = line number)."""
    try:
        with open(path, encoding="utf-8") as f:
            tokens = [line.rstrip("\n").rstrip("\r") for line in f]
    except FileNotFoundError:
        raise FewShotError(f"{path}: vocab file not found; point to a folder with vocab.txt") from None
    except UnicodeDecodeError as e:
        raise FewShotError(
            f"{path}: not UTF-8 ({e.reason} at byte {e.start}); re-save vocab.txt as UTF-8"
        ) from None
    if tokens and tokens[-1] == "":
        tokens.pop()
    if not tokens:
        raise FewShotError(f"{path}: vocab file is empty; use the vocab.txt that came with the checkpoint")
    return {tok: i for i, tok in enumerate(tokens)}


class Tokenizer:
    """BERT WordPiece tokenizer for Chinese vocabularies.

    >>> tok = Tokenizer("models/zh-bert-mini/vocab.txt")
    >>> token_ids, segment_ids = tok.encode("这家酒店很好")
    """

    def __init__(self, vocab, do_lower_case=True, max_chars_per_word=100):
        self.vocab_path = vocab if isinstance(vocab, str) else None
        self.token_dict = load_vocab(vocab) if isinstance(vocab, str) else dict(vocab)
        self.id_dict = {i: t for t, i in self.token_dict.items()}
        self.do_lower_case = do_lower_case
        self.max_chars_per_word = max_chars_per_word
        for name in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"):
            if name not in self.token_dict:
                raise FewShotError(
                    f"{self.vocab_path or 'vocab'}: has no {name} token; use a BERT vocab.txt"
                )
        self.pad_id = self.token_dict["[PAD]"]
        self.unk_id = self.token_dict["[UNK]"]
        self.cls_id = self.token_dict["[CLS]"]
        self.sep_id = self.token_dict["[SEP]"]
        self.mask_id = self.token_dict["[MASK]"]

    def __len__(self):
        return len(self.token_dict)

    @property
    def vocab_size(self):
        return len(self.token_dict)

    def token_to_id(self, token):
        return self.token_dict.get(token, self.unk_id)

    def tokens_to_ids(self, tokens):
        return [self.token_to_id(t) for t in tokens]

    def id_to_token(self, i):
        return self.id_dict[i]

    def ids_to_tokens(self, ids):
        return [self.id_dict[i] for i in ids]

    # -- normalisation ---------------------------------------------------------------------
    def _normalize(self, text):
        out = []
        for ch in text:
            cp = ord(ch)
            if ch in "\t\n\r":
                out.append(" ")
                continue
            if cp == 0 or cp == 0xFFFD or unicodedata.category(ch).startswith("C"):
                continue
            if ch.isspace():
                out.append(" ")
            elif _is_cjk(cp):
                out.append(f" {ch} ")
            else:
                out.append(ch)
        text = "".join(out)
        if self.do_lower_case:
            text = unicodedata.normalize("NFD", text)
            text = "".join(c for c in text if unicodedata.category(c) != "Mn")
            text = "".join(c.lower() for c in text)
        return text

    def _split_words(self, text):
        words = []
        for chunk in text.split():
            word = []
            for ch in chunk:
                if _is_punctuation(ch):
                    if word:
                        words.append("".join(word))
                        word = []
                    words.append(ch)
                else:
                    word.append(ch)
            if word:
                words.append("".join(word))
        return words

    def _wordpiece(self, word):
        if len(word) > self.max_chars_per_word:
            return ["[UNK]"]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            piece = None
            while start < end:
                sub = word[start:end] if start == 0 else "##" + word[start:end]
                if sub in self.token_dict:
                    piece = sub
                    break
                end -= 1
            if piece is None:
                return ["[UNK]"]
            pieces.append(piece)
            start = end
        return pieces

    def tokenize(self, text):
        """Text -> word pieces, without [CLS]/[SEP]."""
        tokens = []
        for part in _SPECIAL.split(text):
            if not part:
                continue
            if _SPECIAL.fullmatch(part) and part in self.token_dict:
                tokens.append(part)
                continue
            for word in self._split_words(self._normalize(part)):
                tokens.extend(self._wordpiece(word))
        return tokens

    def encode(self, first_text, second_text=None, maxlen=None):
        """-> (token_ids, segment_ids) with [CLS] ... [SEP] (... [SEP]).

        With `maxlen`, the longer text is truncated from its end (as bert4keras does),
        so [CLS] and [SEP] are always kept.
        """
        first = self.tokens_to_ids(self.tokenize(first_text))
        second = self.tokens_to_ids(self.tokenize(second_text)) if second_text is not None else None
        if maxlen is not None:
            budget = maxlen - 2 - (1 if second is not None else 0)
            if budget < 0:
                raise FewShotError(f"maxlen={maxlen} leaves no room for [CLS]/[SEP]; use maxlen >= 3")
            while len(first) + len(second or []) > budget:
                if second is not None and len(second) > len(first):
                    second.pop()
                else:
                    first.pop()
        token_ids = [self.cls_id] + first + [self.sep_id]
        segment_ids = [0] * len(token_ids)
        if second is not None:
            token_ids += second + [self.sep_id]
            segment_ids += [1] * (len(second) + 1)
        return token_ids, segment_ids

    def decode(self, ids):
        tokens = [t for t in self.ids_to_tokens(ids) if t not in ("[CLS]", "[SEP]", "[PAD]")]
        text = ""
        for t in tokens:
            text += t[2:] if t.startswith("##") else t
        return text
