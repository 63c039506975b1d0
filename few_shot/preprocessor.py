"""PromptPreprocessor: tokenizer + pattern + verbalizer + maxlen, turning labelled rows into model
inputs (the keras-hub Task = backbone + preprocessor split). It is saved inside `model.keras`
(config + vocab.txt as an asset), so a reloaded model encodes raw text by itself."""
import os

import keras
import numpy as np

from few_shot.errors import FewShotError
from few_shot.batching import pad_batch
from few_shot.pattern import PTUNING_PATTERN, Pattern
from few_shot.verbalizers import Candidates, verbalizer_from
from few_shot.tokenizer import Tokenizer, load_vocab

VOCAB_ASSET = "vocab.txt"


class EncodedSet:
    """Rows run through a pattern: token and segment ids (ragged), mask positions [N, M], the
    positions holding field text, label indices [N] (-1 for rows without a known label), and for
    multiple choice (a Candidates verbalizer) each row's candidate token ids [N, K, M]."""

    def __init__(self, encoded_rows, labels, num_masks, candidate_ids=None):
        self.token_ids = [r.token_ids for r in encoded_rows]
        self.segment_ids = [r.segment_ids for r in encoded_rows]
        self.text_positions = [r.text_positions for r in encoded_rows]
        self.mask_positions = np.asarray([r.mask_positions for r in encoded_rows], dtype="int32").reshape(
            len(encoded_rows), num_masks)
        self.labels = np.asarray(labels, dtype="int32")
        self.lengths = np.asarray([len(t) for t in self.token_ids])
        self.candidate_ids = None if candidate_ids is None else np.asarray(candidate_ids, dtype="int32").reshape(
            len(encoded_rows), -1, num_masks)

    def __len__(self):
        return len(self.labels)

    def batch(self, idx, pad_id=0, multiple=1):
        """Rows `idx`, padded to their longest row rounded up to a multiple of `multiple`."""
        length = -(-int(self.lengths[idx].max()) // multiple) * multiple
        inputs = {"token_ids": pad_batch([self.token_ids[i] for i in idx], pad_id, length),
                  "segment_ids": pad_batch([self.segment_ids[i] for i in idx], 0, length),
                  "mask_positions": self.mask_positions[idx]}
        if self.candidate_ids is not None:
            inputs["candidate_ids"] = self.candidate_ids[idx]
        return inputs, self.labels[idx]


class GroupedEncodedSet(EncodedSet):
    """Rows encoded once per label-word length (a PerLengthVerbalizer): sub-row `i * G + g` is row i
    with `groups[g]` [MASK] slots; mask positions [N * G, max(groups)] (short groups repeat their
    first slot); labels and lengths per row. `batch(idx)` -> the G sub-rows of each row, in order."""

    def __init__(self, grouped_rows, labels, groups):
        flat = [r for rows in grouped_rows for r in rows]
        super().__init__(flat[:0], labels, max(groups))
        widest = max(groups)
        self.groups = list(groups)
        self.token_ids = [r.token_ids for r in flat]
        self.segment_ids = [r.segment_ids for r in flat]
        self.text_positions = [r.text_positions for r in flat]
        self.mask_positions = np.asarray([r.mask_positions + r.mask_positions[:1] * (widest - len(r.mask_positions))
                                          for r in flat], dtype="int32").reshape(len(flat), widest)
        self.lengths = np.asarray([max(len(r.token_ids) for r in rows) for rows in grouped_rows])

    def batch(self, idx, pad_id=0, multiple=1):
        sub = (np.asarray(idx)[:, None] * len(self.groups) + np.arange(len(self.groups))[None, :]).reshape(-1)
        length = -(-int(self.lengths[idx].max()) // multiple) * multiple
        inputs = {"token_ids": pad_batch([self.token_ids[i] for i in sub], pad_id, length),
                  "segment_ids": pad_batch([self.segment_ids[i] for i in sub], 0, length),
                  "mask_positions": self.mask_positions[sub]}
        return inputs, self.labels[idx]


@keras.saving.register_keras_serializable(package="few_shot")
class PromptPreprocessor(keras.layers.Layer):
    """`PromptPreprocessor(tokenizer, pattern, verbalizer, maxlen).encode([(row, label), ...])`.

    A row is a string (the field `text`) or a dict of fields the pattern names. Labels are the
    verbalizer's (strings); `label_token_ids` `[num_labels][num_masks]` and `prompt_token_ids` are
    what the model needs from the vocabulary. With a `Candidates` verbalizer (multiple choice) the
    labels are candidate indices and every encoded row carries its own candidates' token ids.
    """

    def __init__(self, tokenizer=None, pattern=PTUNING_PATTERN, verbalizer=None, maxlen=128,
                 do_lower_case=True, **kwargs):
        super().__init__(**kwargs)
        self.pattern = pattern if isinstance(pattern, Pattern) else Pattern(pattern)
        if verbalizer is None:
            raise FewShotError("PromptPreprocessor needs a verbalizer (label -> word), e.g. {'1': '很', '0': '不'}")
        self.verbalizer = verbalizer_from(verbalizer)
        self.maxlen = int(maxlen)
        self.do_lower_case = do_lower_case
        self.tokenizer = None
        if tokenizer is not None:
            self.set_tokenizer(tokenizer)

    def set_tokenizer(self, tokenizer):
        self.tokenizer = tokenizer if isinstance(tokenizer, Tokenizer) else Tokenizer(tokenizer, self.do_lower_case)
        self.do_lower_case = self.tokenizer.do_lower_case
        self.label_token_ids = self.verbalizer.token_ids(self.tokenizer)
        self.prompt_token_ids = self.tokenizer.tokens_to_ids(self.pattern.prompt_tokens)
        # one group of [MASK] slots per label-word length (a single group unless a PerLengthVerbalizer)
        self.mask_groups = sorted({len(ids) for ids in self.label_token_ids})
        self._compiled_groups = {n: self.pattern.compile(self.tokenizer, n) for n in self.mask_groups}
        self._compiled = self._compiled_groups[self.num_masks]
        self.pattern.check_maxlen(self._compiled, self.maxlen)

    @property
    def labels(self):
        return self.verbalizer.labels

    @property
    def num_labels(self):
        return len(self.verbalizer.labels)

    @property
    def num_masks(self):
        """[MASK] slots of the label words (the longest group's, for a PerLengthVerbalizer)."""
        return max(len(ids) for ids in self.label_token_ids)

    def encode_row(self, row):
        return self.pattern.encode(self.tokenizer, row, self.maxlen, compiled=self._compiled)

    @property
    def candidates(self):
        """Multiple choice: the Candidates verbalizer (None for fixed label words)."""
        return self.verbalizer if isinstance(self.verbalizer, Candidates) else None

    def encode(self, examples):
        """[(row, label)] -> EncodedSet; labels the verbalizer does not know become -1."""
        index = {label: i for i, label in enumerate(self.labels)}
        if len(self.mask_groups) > 1:  # label words of several lengths: each row once per length
            grouped = [[self.pattern.encode(self.tokenizer, row, self.maxlen, compiled=self._compiled_groups[n])
                        for n in self.mask_groups] for row, _ in examples]
            return GroupedEncodedSet(grouped, [index.get(str(label), -1) for _, label in examples], self.mask_groups)
        rows = [self.encode_row(row) for row, _ in examples]
        candidates = None
        if self.candidates is not None:
            candidates = [self.candidates.candidate_ids(self.tokenizer, row, f"row {i + 1}")
                          for i, (row, _) in enumerate(examples)]
        return EncodedSet(rows, [index.get(str(label), -1) for _, label in examples], self.num_masks, candidates)

    def encode_texts(self, texts):
        """Unlabelled rows (for prediction) -> EncodedSet with labels -1."""
        return self.encode([(t, None) for t in texts])

    def get_config(self):
        config = super().get_config()
        config.update(pattern=self.pattern.template, verbalizer=self.verbalizer.config(), maxlen=self.maxlen,
                      do_lower_case=self.do_lower_case)
        return config

    # the vocabulary travels inside model.keras as an asset (as keras-hub's tokenizers do)
    def save_assets(self, dir_path):
        with open(os.path.join(dir_path, VOCAB_ASSET), "w", encoding="utf-8") as f:
            f.writelines(token + "\n" for token in sorted(self.tokenizer.token_dict,
                                                            key=self.tokenizer.token_dict.get))

    def load_assets(self, dir_path):
        # a dict, not the path: the folder Keras extracted the asset to is temporary
        self.set_tokenizer(Tokenizer(load_vocab(os.path.join(dir_path, VOCAB_ASSET)), self.do_lower_case))
