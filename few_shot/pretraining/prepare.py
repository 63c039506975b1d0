"""Everything a pretraining run checks before TensorFlow/Keras load or a file is written: the output
folder, the resumed checkpoint's state, the arguments, the model to start from, the corpus and the
probe file. `prepare(config)` -> `PreparedRun`, which `PretrainingRun` takes."""
import dataclasses
import os

from few_shot import checkpoints as ckpt
from few_shot.errors import FewShotError
from few_shot.masking import import_jieba
from few_shot.model_folder import check_model_folder
from few_shot.pretraining.config import CHECKPOINT_DIR, STATE_FILE, check_config, check_output, resolve
from few_shot.pretraining.corpus import read_corpus
from few_shot.pretraining.probe import read_probe


@dataclasses.dataclass
class PreparedRun:
    config: object          # the resolved PretrainConfig
    saved: dict             # --resume: the checkpoint's state.json, else None
    documents: list
    corpus_info: dict
    probe_rows: list        # None without --probe


def read_state(folder):
    return ckpt.read_json(os.path.join(folder, CHECKPOINT_DIR, STATE_FILE))


def prepare(config):
    """Check everything that needs no model -> PreparedRun. Imports no TensorFlow or Keras, writes nothing."""
    check_output(config)
    saved = read_state(config.output) if config.resume else None
    c = resolve(config, saved["config"] if saved else None)
    check_config(c)
    if c.init_from is not None and saved is None:
        check_model_folder(c.init_from, "--init-from")
    if c.vocab is not None and not os.path.isfile(c.vocab):
        raise FewShotError(f"--vocab {c.vocab}: no such file; pass a vocab.txt (one token per line)")
    documents, corpus_info = read_corpus(c.corpus, c.on_bad_line)
    if saved and saved["documents"] != len(documents):
        raise FewShotError(f"the corpus has {len(documents)} documents but the checkpoint was trained on "
                           f"{saved['documents']}; pass the same --corpus files to --resume")
    probe_rows = read_probe(c.probe, c.probe_limit) if c.probe else None
    if c.whole_word:
        import_jieba()
    return PreparedRun(c, saved, documents, corpus_info, probe_rows)
