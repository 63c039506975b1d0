"""Export a trained classifier as a TensorFlow SavedModel that reads raw text (for TF Serving).

    export_saved_model("runs/ptuning-...", "serving/sentiment/1")      # a run folder, model or classifier
    python few_shot_ptuning.py --export runs/ptuning-... serving/sentiment/1

The SavedModel's `serving_default` signature takes `text`, a batch of raw strings ([None] tf.string),
and returns `probabilities` [None, num_labels] float32 (the same numbers as
`PromptClassifier.predict_proba`), `label` [None] string (the most probable label) and `labels`
[None, num_labels] string (the label of each probability column). Everything runs in the graph:

- tokenisation: `GraphTokenizer`, the rules of `few_shot.tokenizer.Tokenizer` written as core
  `tf.strings` regex ops plus three long-standing tensorflow-text ops (RegexSplitWithOffsets,
  NormalizeUTF8, WordpieceTokenizeWithOffsets) over the run's vocab.txt, token-for-token equal on
  the sentiment test set;
- the pattern: the fixed ids before and after the `{text}` field, the text cut to the pattern's
  budget (maxlen minus the fixed tokens), [MASK] positions computed per row;
- the prompt: a P-tuning prompt encoder is folded into its [prompt_length, hidden] matrix (as
  `prompt.safetensors` is), so no LSTM runs at serving time;
- the verbalizer: the label words' MLM scores at [MASK], softmaxed over the labels.

One text field only: a pair pattern ({sentence1} ... {sentence2}) is refused with a FewShotError.
Metadata (labels, pattern, verbalizer, maxlen) is also written to `assets.extra/few_shot.json`.
TensorFlow is imported inside the functions, so the CLI can check its arguments without it.
"""
import contextlib
import json
import os
import re
import shutil
import tempfile

from few_shot.errors import FewShotError, signals_deferred
from few_shot.tokenizer import CJK_RANGES

SIGNATURE = "serving_default"
METADATA = os.path.join("assets.extra", "few_shot.json")
# Tokenizer._normalize and _split_words as RE2 patterns (unicode categories: \p{..})
SPECIAL = r"\[(?:CLS|SEP|PAD|MASK|UNK|unused\d+)\]"  # tokenizer._SPECIAL
CJK = "[" + "".join(f"\\x{{{lo:X}}}-\\x{{{hi:X}}}" for lo, hi in CJK_RANGES) + "]"
PUNCT = r"[!-/:-@\[-\x{60}{-~\p{P}]"  # ASCII punctuation ranges + unicode P* (tokenizer._is_punctuation)


def check_out_dir(out_dir, flag="--export"):
    """The export folder must be new or empty: nothing a user made is overwritten."""
    if any(c in os.path.abspath(out_dir) for c in "*?["):
        raise FewShotError(f"{flag} {out_dir}: TensorFlow reads a SavedModel's variables path as a glob pattern, "
                           f"so it could not load it back from there; choose a path without * ? or [")
    if os.path.isfile(out_dir):
        raise FewShotError(f"{flag} {out_dir}: is a file; pass a new folder for the SavedModel (e.g. serving/model/1)")
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise FewShotError(f"{flag} {out_dir}: the folder is not empty; pass a new or empty folder (nothing in it is "
                           f"overwritten), e.g. a new version number serving/model/2")


def check_run_pattern(run_dir):
    """Refuse a run whose pattern has several fields by reading model.keras's config.json (no
    TensorFlow); a file that cannot be read that way is left to the full load to judge."""
    import zipfile
    from few_shot.pattern import Pattern
    try:
        with zipfile.ZipFile(os.path.join(run_dir, "model.keras")) as z:
            config = json.loads(z.read("config.json"))["config"]
        template = (config.get("preprocessor") or {}).get("config", {}).get("pattern") or config.get("pattern")
    except Exception:  # damaged, or a layout this check does not know
        return
    if isinstance(template, str):
        one_field(Pattern(template))


def one_field(pattern):
    if len(pattern.fields) != 1:
        raise FewShotError(f"pattern {pattern.template!r} has {len(pattern.fields)} fields "
                           f"({', '.join('{' + f + '}' for f in pattern.fields)}); export supports one text "
                           f"field: train with a single-field pattern such as '[MASK]满意。{{text}}'")


class GraphTokenizer:
    """`few_shot.tokenizer.Tokenizer` in TensorFlow ops: texts [B] string -> ragged ids [B, (T)] int32.

    Per text: special tokens written in it (`[MASK]`, `[unused3]`, when in the vocab) are cut out and
    kept whole; the rest is normalised as `Tokenizer._normalize` does (\\t\\n\\r -> space; drop NUL,
    U+FFFD, \\p{C} and unassigned code points; \\p{Z} -> space; spaces around CJK; with lower-casing:
    NFD, drop \\p{Mn}, lower-case), split on spaces and punctuation, words over `max_chars_per_word`
    become [UNK], and greedy WordPiece (a word it cannot cover is one [UNK]) runs on a hash table of
    the vocab (so ids are the Python Tokenizer's, duplicates in vocab.txt included).
    """

    def __init__(self, tokenizer):
        import tensorflow as tf
        import tensorflow_text as tf_text

        self.do_lower_case = tokenizer.do_lower_case
        self.max_chars_per_word = tokenizer.max_chars_per_word
        keys, values = zip(*tokenizer.token_dict.items())
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values, tf.int64)), default_value=-1)
        # words are at most max_chars_per_word characters of at most 4 UTF-8 bytes when they get here
        self.wordpiece = tf_text.WordpieceTokenizer(self.table, suffix_indicator="##", token_out_type=tf.int64,
                                                    max_bytes_per_word=4 * self.max_chars_per_word,
                                                    unknown_token="[UNK]")

    def normalize(self, text):
        import tensorflow as tf
        import tensorflow_text as tf_text
        sub = tf.strings.regex_replace
        text = sub(text, r"[\t\n\r]", " ")
        # \p{C} and unassigned code points (RE2 has no \p{Cn}: "in no assigned category"), U+FFFD
        text = sub(text, r"[^\p{L}\p{M}\p{N}\p{P}\p{S}\p{Z}]|\x{FFFD}", "")
        text = sub(text, r"\p{Z}", " ")  # what str.isspace() leaves after \p{C} is gone
        text = sub(text, CJK, r" \0 ")
        if self.do_lower_case:
            text = sub(tf_text.normalize_utf8(text, "NFD"), r"\p{Mn}", "")
            # the Python side lowers one character at a time: no final-sigma rule
            text = tf.strings.lower(sub(text, "\u03a3", "\u03c3"), encoding="utf-8")
        return text

    def words(self, texts):
        """[B] strings -> ragged words [B, (W)], special tokens whole."""
        import tensorflow as tf
        import tensorflow_text as tf_text
        # RegexSplit stops at a NUL byte; U+FFFD is dropped by normalize as NUL is, and splits no special token
        texts = tf.strings.regex_replace(texts, r"\x{0}", "\ufffd")
        parts = tf_text.regex_split(texts, SPECIAL, SPECIAL)  # [B, (P)]
        flat = parts.flat_values
        special = tf.strings.regex_full_match(flat, SPECIAL) & tf.not_equal(self.table.lookup(flat), -1)
        plain = tf.where(special, tf.constant(""), self.normalize(flat))
        words = tf_text.regex_split(plain, "[ ]|" + PUNCT, PUNCT)  # [N, (W)]; special parts: no words
        kept = tf.RaggedTensor.from_row_lengths(tf.boolean_mask(flat, special), tf.cast(special, tf.int64))
        words = tf.concat([words, kept], axis=1)  # a special part becomes its one word
        return parts.with_flat_values(words).merge_dims(1, 2)

    def __call__(self, texts):
        import tensorflow as tf
        words = self.words(texts)
        too_long = tf.strings.length(words.flat_values, unit="UTF8_CHAR") > self.max_chars_per_word
        words = words.with_flat_values(tf.where(too_long, tf.constant("[UNK]"), words.flat_values))
        return tf.cast(self.wordpiece.tokenize(words).merge_dims(1, 2), tf.int32)


class PatternLayout:
    """A one-field pattern as constants: ids and segments before and after the field, the field's
    segment, the budget left for its text, and the [MASK] offsets in each fixed part."""

    def __init__(self, preprocessor):
        pattern, tokenizer = preprocessor.pattern, preprocessor.tokenizer
        one_field(pattern)
        compiled = pattern.compile(tokenizer, preprocessor.num_masks)
        at = next(i for i, part in enumerate(compiled) if isinstance(part, str))
        self.field = compiled[at]
        before, after = compiled[:at], compiled[at + 1:]
        self.prefix, self.prefix_segments = _flatten(before)
        self.suffix, self.suffix_segments = _flatten(after)
        self.text_segment = before[-1][1]  # a field takes the segment of the fixed part before it
        self.budget = preprocessor.maxlen - pattern.fixed_length(compiled)
        self.prefix_masks = [i for i, t in enumerate(self.prefix) if t == tokenizer.mask_id]
        self.suffix_masks = [i for i, t in enumerate(self.suffix) if t == tokenizer.mask_id]

    def assemble(self, text_ids, pad_id):
        """Ragged text ids [B, (T)] -> model inputs, as Pattern.encode + EncodedSet.batch make them."""
        token_ids, segment_ids, masks = self.ragged(text_ids)
        return {"token_ids": token_ids.to_tensor(default_value=pad_id), "segment_ids": segment_ids.to_tensor(0),
                "mask_positions": masks}

    def ragged(self, text_ids):
        """Ragged text ids [B, (T)] -> (ragged token ids, ragged segment ids, [MASK] positions [B, M])."""
        import tensorflow as tf
        text_ids = text_ids[:, :self.budget]
        rows, lengths = text_ids.nrows(), tf.cast(text_ids.row_lengths(), tf.int32)

        def fixed(values):
            tiled = tf.tile(tf.constant(values, tf.int32, shape=[1, len(values)]), [rows, 1])
            return tf.RaggedTensor.from_tensor(tiled)

        segments = text_ids.with_flat_values(tf.fill(tf.shape(text_ids.flat_values), self.text_segment))
        token_ids = tf.concat([fixed(self.prefix), text_ids, fixed(self.suffix)], axis=1)
        segment_ids = tf.concat([fixed(self.prefix_segments), segments, fixed(self.suffix_segments)], axis=1)
        after_text = (len(self.prefix) + lengths)[:, None]
        masks = tf.concat([tf.tile(tf.constant(self.prefix_masks, tf.int32, shape=[1, len(self.prefix_masks)]),
                                   [rows, 1]),
                           after_text + tf.constant(self.suffix_masks, tf.int32, shape=[1, len(self.suffix_masks)])],
                          axis=1)
        return token_ids, segment_ids, masks


def _flatten(parts):
    ids, segments = [], []
    for part_ids, segment in parts:
        ids += part_ids
        segments += [segment] * len(part_ids)
    return ids, segments


def _resolve(source):
    """A run folder, a PromptClassifier or a model with a preprocessor -> (model, preprocessor)."""
    from few_shot.classifier import PromptClassifier
    if isinstance(source, (str, os.PathLike)):
        source = PromptClassifier.load(os.fspath(source))
    if isinstance(source, PromptClassifier):
        if getattr(source, "calibrate", None):
            raise FewShotError(f"this classifier calibrates its probabilities ({source.calibrate}), which the "
                               f"SavedModel would not; export the run without calibration")
        return source.model, source.preprocessor
    preprocessor = getattr(source, "preprocessor", None)
    if preprocessor is None or getattr(preprocessor, "tokenizer", None) is None:
        raise FewShotError("this model has no preprocessor with a tokenizer to export; pass a run folder, a "
                           "PromptClassifier, or a model built with build_model(method, mlm, preprocessor)")
    return source, preprocessor


def serving_model(model):
    """A P-tuning model with its prompt encoder folded into plain prompt rows (encoder "none"): the
    same scores with no LSTM/MLP left to run. Other models are served as they are."""
    from few_shot.portable import fold_prompt
    from few_shot.ptuning import PtuningModel
    if isinstance(model, PtuningModel) and not model.built:
        model.build()  # every weight exists from __init__; Keras export wants the flag
    if type(model) is not PtuningModel or model.prompt_encoder is None or model.encoder == "none":
        return model
    folded = PtuningModel(model.backbone, model.label_token_ids, model.prompt_token_ids, encoder="none",
                          objective=model.objective, train_backbone=model.train_backbone,
                          trainable_layers=model.trainable_layers, source_token_ids=model.source_token_ids,
                          name="served")
    folded.prompt_encoder.set_initial_embeddings(fold_prompt(model))
    folded.build()
    return folded


def export_saved_model(source, out_dir):
    """Write `source` (run folder, PromptClassifier or model) to `out_dir` (new or empty) as a SavedModel
    whose `serving_default` maps raw strings to label probabilities -> out_dir. The folder appears
    whole or not at all (written beside it, then renamed)."""
    check_out_dir(out_dir, "out_dir")
    model, preprocessor = _resolve(source)
    layout = PatternLayout(preprocessor)  # a pair pattern is refused before anything is built
    import keras
    import tensorflow as tf

    served = serving_model(model)
    tokenizer = GraphTokenizer(preprocessor.tokenizer)
    labels = tf.constant(preprocessor.labels)
    pad_id = int(getattr(getattr(served, "backbone", None), "pad_id", 0))

    def serve(text):
        inputs = layout.assemble(tokenizer(text), pad_id)
        probabilities = tf.nn.softmax(tf.cast(served(inputs, training=False), tf.float32), axis=-1)
        rows = tf.shape(probabilities)[0]
        return {"probabilities": probabilities,
                "label": tf.gather(labels, tf.argmax(probabilities, axis=-1, output_type=tf.int32)),
                "labels": tf.tile(labels[None], [rows, 1])}

    archive = keras.export.ExportArchive()
    # the variables the endpoint reads are saved with it (tracking the model as well stores them twice)
    archive.track(tokenizer.table)
    archive.add_endpoint(SIGNATURE, serve, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    return write_archive(archive, out_dir, {
        "signature": SIGNATURE, "input": "text", "labels": preprocessor.labels, "pattern": preprocessor.pattern.template,
        "field": layout.field, "verbalizer": preprocessor.verbalizer.mapping, "maxlen": preprocessor.maxlen})


def write_archive(archive, out_dir, metadata):
    """Write a keras ExportArchive to `out_dir` (new or empty) with `metadata` in assets.extra/few_shot.json ->
    out_dir. The folder appears whole or not at all (written beside it, then renamed)."""
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    created = []  # the parent folders made here, removed again if the export fails or is interrupted
    missing = parent
    while not os.path.exists(missing):
        created.append(missing)
        missing = os.path.dirname(missing)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.", dir=parent)
    try:
        with signals_deferred():  # an exception raised inside TensorFlow's writer would corrupt its state
            archive.write_out(staging, verbose=False)
        os.makedirs(os.path.join(staging, "assets.extra"), exist_ok=True)
        with open(os.path.join(staging, METADATA), "w", encoding="utf-8") as f:
            json.dump(metadata, f, ensure_ascii=False, indent=1)
        check_out_dir(out_dir, "out_dir")  # still new or empty after the (slow) write
        if os.path.isdir(out_dir):
            os.rmdir(out_dir)
        os.replace(staging, out_dir)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(out_dir, 0o777 & ~umask)  # mkdtemp made it 0700
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # our own temporary folder
        for folder in created:  # deepest first
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        raise
    return out_dir


def serving_hint(out_dir):
    """One line on serving `out_dir`: TF Serving loads numbered version folders under --model_base_path."""
    out_dir = os.path.abspath(out_dir)
    base, version = os.path.split(out_dir)
    if not re.fullmatch(r"\d+", version):
        return (f"note: TF Serving loads numbered version folders (MODEL_DIR/1, MODEL_DIR/2, ...) under "
                f"--model_base_path=MODEL_DIR: move {out_dir} to e.g. {os.path.join(out_dir + '_model', '1')} "
                f"(docs/serving.md)")
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(base)) or "model"
    return (f"serve: tensorflow_model_server --rest_api_port=8501 --model_name={name} --model_base_path={base} "
            f"(docs/serving.md)")
