"""Masked-LM pretraining (from scratch or continued) of a `BertMaskedLM` on a plain-text corpus.

Backend-agnostic: the data pipeline is numpy (a `keras.utils.PyDataset` whose batch `i` is a pure
function of the corpus, the seed and the global step), the model is trained with `compile`/`fit`
on a small wrapper that gathers the masked positions before the vocabulary projection, and the
only TensorFlow-specific piece is the optional `tf.distribute.MirroredStrategy` scope.

Pipeline: read + validate the corpus (one document per line, UTF-8) -> tokenise each document
with the project `Tokenizer` (whole-word groups from jieba with `whole_word=True`) -> pack into
`maxlen` blocks `[CLS] d1 [SEP] d2 [SEP] ...` (long documents continue in the next block) ->
mask 15% of the non-special tokens (80% [MASK] / 10% random / 10% unchanged), at most
`max_predictions` per block -> sample-weighted sparse cross-entropy at the masked positions.

Checkpoints (`DIR/checkpoint/`) are an HF folder (so `load_mlm` and `--init-from` read them)
plus `optimizer.npz` and `state.json` (step, data-stream position, loss history, config), which
is what `--resume` continues from exactly.

Modules: `config` (PretrainConfig, defaults, argument checks, the output folder), `corpus` (reading and
checking the corpus), `prepare` (every check before Keras loads), `probe` (the zero-shot probe), `training` (the Keras pieces: batches, model,
schedule, optimizer, strategy), `state` (checkpoints and the starting model), `run` (PretrainingRun,
run_pretraining, progress). Everything public is importable from `few_shot.pretraining`.
"""
from few_shot.lazy import lazy_exports

# Names are imported on first use (PEP 562): `few_shot.pretraining.prepare` and `.config` check a run's
# input without TensorFlow or Keras; the training modules import Keras.
_MODULES = {
    "few_shot.masking": ("BlockStream", "DocumentTokenizer", "Masker"),
    "few_shot.pretraining.config": ("ARCH_FLAGS", "CHECKPOINT_DIR", "GOOGLE_DIR", "HF_DIR", "LOG_FILE", "OPTIMIZER_FILE",
                                    "OUTPUTS", "RESUME_FIXED", "STATE_FILE", "PretrainConfig", "check_config",
                                    "check_output", "prepare_output", "resolve"),
    "few_shot.pretraining.corpus": ("BadLineWarning", "read_corpus"),
    "few_shot.pretraining.prepare": ("PreparedRun", "read_state"),
    "few_shot.pretraining.probe": ("PROBE_PATTERN", "PROBE_WORDS", "ZeroShotProbe", "read_probe"),
    "few_shot.pretraining.run": ("PretrainingRun", "run_pretraining"),
    "few_shot.pretraining.state": ("build_model", "restore_optimizer", "save_checkpoint"),
    "few_shot.pretraining.training": ("LastValue", "MLMBatches", "MaskedLMPretrainer", "WarmupLinearDecay",
                                      "make_optimizer", "make_strategy", "mixed_precision"),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
