"""Prompt pretraining (PPT): the options, every check made before TensorFlow loads or a file is written
(`prepare`), and the files a run owns in its output folder."""
import dataclasses
import os
from typing import Optional

from few_shot.errors import FewShotError
from few_shot.model_folder import check_model_folder, model_path
from few_shot.paths import PROJECT_ROOT
from few_shot.prompt_pretraining.formats import FORMATS
from few_shot.run_folder import check_output_flags

DEFAULT_FEWCLUE = os.path.normpath(os.path.join(PROJECT_ROOT, "..", "shared", "data", "fewclue"))
LOG_FILE = "ppt_log.json"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILES = ("state.json", "prompt.npy", "optimizer.npz", "seeds.npz")


def prompt_file(fmt):
    return f"{fmt}.safetensors"


def owned_files(formats=FORMATS):
    """Every file a prompt-pretraining run writes (glob patterns under --output)."""
    return (LOG_FILE, LOG_FILE + ".tmp", *(prompt_file(f) for f in formats),
            *(f"{CHECKPOINT_DIR}/{f}/{name}" for f in formats for name in CHECKPOINT_FILES),
            *(f"{CHECKPOINT_DIR}/{f}.tmp/{name}" for f in formats for name in CHECKPOINT_FILES))


@dataclasses.dataclass
class PromptPretrainConfig:
    corpus: list
    output: str
    formats: tuple = FORMATS
    model: Optional[str] = None          # None: the bundled models/zh-bert-mini
    prompt_length: int = 8               # soft tokens; a run's --prompt-init needs the same number
    steps: int = 300                     # optimizer steps per format
    batch_size: int = 16
    lr: float = 5e-3
    maxlen: int = 128
    seed: int = 0
    save_every: int = 100
    max_documents: Optional[int] = None  # use the first N documents of the corpus (after removing test texts)
    pseudo_labels: int = 3000            # sentences scored zero-shot for the single format's pseudo-labels
    fewclue_root: Optional[str] = None   # whose test_public.json texts leave the corpus (default ../shared/...)
    keep_test_texts: bool = False        # only for a corpus known to hold no evaluation text
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    progress_seconds: float = 30.0

    def check(self):
        formats = tuple(self.formats)
        unknown = [f for f in formats if f not in FORMATS]
        if not formats or unknown:
            raise FewShotError(f"--formats {','.join(formats)}: choose from {', '.join(FORMATS)}")
        for name in ("prompt_length", "steps", "batch_size", "maxlen", "save_every", "pseudo_labels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise FewShotError(f"--{name.replace('_', '-')} {value}: must be a positive integer")
        if self.max_documents is not None and self.max_documents < 2:
            raise FewShotError(f"--max-documents {self.max_documents}: pair and choice examples need at least 2")
        if not self.lr > 0:
            raise FewShotError(f"--lr {self.lr}: must be > 0")
        if self.maxlen < 32 + self.prompt_length:
            raise FewShotError(f"--maxlen {self.maxlen}: too short for {self.prompt_length} soft tokens and the "
                               f"patterns' sentences; use --maxlen {64 + self.prompt_length} or more")
        return self


def check_output(config):
    out = config.output
    check_output_flags(out, config.resume, config.overwrite)
    if config.resume:
        if not os.path.isdir(os.path.join(out, CHECKPOINT_DIR)) and not any(
                os.path.isfile(os.path.join(out, prompt_file(f))) for f in config.formats):
            raise FewShotError(f"--resume: {out} holds no prompt-pretraining checkpoint; run without --resume")
    elif os.path.isdir(out) and os.listdir(out) and not config.overwrite:
        raise FewShotError(f"--output {out}: exists and is not empty; pass --resume to continue its run, "
                           f"--overwrite to replace a run's own files, or a new folder")


def prepare(config):
    """Every check and the corpus, before TensorFlow -> (config, SentenceBank, documents, removed-report)."""
    from few_shot.evaluation_texts import collect_test_texts, drop_test_texts
    from few_shot.pretraining.corpus import read_corpus
    from few_shot.prompt_pretraining.formats import SentenceBank
    config.check()
    check_output(config)
    check_model_folder(config.model)
    if not os.path.isdir(model_path(config.model)):
        raise FewShotError(f"--model {config.model}: prompt pretraining needs a local model folder")
    sources = {}
    if not config.keep_test_texts:
        root = config.fewclue_root or DEFAULT_FEWCLUE
        if not os.path.isdir(root):
            raise FewShotError(f"--fewclue-root {root}: not a folder; the test texts of every evaluation set must "
                               f"leave the corpus first: pass the FewCLUE folder (../shared/data/fewclue), or "
                               f"--keep-test-texts for a corpus known to hold none")
        sources = collect_test_texts(root)
    documents, corpus_info = read_corpus(config.corpus)
    removed = {}
    if sources:
        documents, removed = drop_test_texts(documents, sources)
    if config.max_documents is not None:
        documents = documents[:config.max_documents]
    bank = SentenceBank(documents)
    return bank, documents, {"corpus": corpus_info, "removed_test_documents": removed,
                             "documents_used": len(documents), "sentences": len(bank.sentences)}
