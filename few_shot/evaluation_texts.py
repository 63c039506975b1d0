"""Evaluation texts kept out of every pretraining corpus (the project's rule: remove a task's test texts
before reporting that task): the sentiment valid/test texts and the text fields of every FewCLUE
task's test_public.json. A document is dropped when it equals such a text or contains one of at least
MIN_CONTAINED_CHARS characters (after NFKC + lower-case + removing whitespace; containment by GNU
`grep -F`, fast on millions of lines). Shorter texts ('赞', 'ok', '不错') only drop documents equal to
them. chid's passages count by their pieces between #idiom# blanks; csl's keyword lists are not texts.
Used by scripts/pretrain_prompts.py and scripts/gpu_prepare.py."""
import json
import os
import re
import subprocess
import tempfile
import unicodedata

from few_shot.errors import FewShotError
from few_shot.paths import PROJECT_ROOT

TEST_FIELDS = {"bustm": ("sentence1", "sentence2"), "ocnli": ("sentence1", "sentence2"), "csl": ("abst",),
               "chid": ("content",), "cluewsc": ("text",), "csldcp": ("content",), "iflytek": ("sentence",),
               "tnews": ("sentence",)}
SENTIMENT_FILES = ("sentiment.test.data", "sentiment.valid.data")
MIN_PIECE_CHARS = 8
MIN_CONTAINED_CHARS = 4
IDIOM_BLANK = re.compile(r"#idiom\d*#")


def normalize(text):
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text).lower())


def sentiment_texts(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            text = line.rstrip("\r\n").rpartition("\t")[0]
            if text.strip():
                yield text


def fewclue_texts(path, task):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            for field in TEST_FIELDS[task]:
                text = row.get(field)
                if not isinstance(text, str) or not text.strip():
                    continue
                if task == "chid":  # the passage with its idioms blanked out: its pieces are what a corpus holds
                    for piece in IDIOM_BLANK.split(text.rstrip(".…").rstrip()):
                        if len(normalize(piece)) >= MIN_PIECE_CHARS:
                            yield piece
                else:
                    yield text


def collect_test_texts(fewclue_root):
    """-> {source name: set of normalised texts}: the bundled sentiment valid/test and the test_public.json
    of every FewCLUE task under `fewclue_root` (../shared/data/fewclue)."""
    sources = {}
    for name in SENTIMENT_FILES:
        path = os.path.join(PROJECT_ROOT, "data", "sentiment", name)
        sources[f"sentiment/{name}"] = {normalize(t) for t in sentiment_texts(path)} - {""}
    for task in sorted(TEST_FIELDS):
        path = os.path.join(fewclue_root, task, "test_public.json")
        if not os.path.exists(path):
            raise FewShotError(f"{path}: not found; pass the folder holding the FewCLUE tasks (../shared/data/fewclue) "
                               f"so that their test texts can be removed from the corpus")
        sources[f"fewclue/{task}/test_public.json"] = {normalize(t) for t in fewclue_texts(path, task)} - {""}
    return sources


def matching_lines(norm_path, patterns, tmp):
    """Line numbers (0-based) of `norm_path` that contain any of `patterns` (grep -F, bytes)."""
    patterns = {p for p in patterns if p}
    if not patterns:  # an empty pattern file would match every line
        return set()
    pat_path = os.path.join(tmp, "patterns.txt")
    with open(pat_path, "w", encoding="utf-8") as f:
        f.write("\n".join(sorted(patterns)) + "\n")
    proc = subprocess.run(["grep", "-n", "-F", "-f", pat_path, norm_path], stdout=subprocess.PIPE,
                          env={**os.environ, "LC_ALL": "C"})
    if proc.returncode not in (0, 1):
        raise FewShotError(f"grep failed with exit code {proc.returncode} while removing test texts")
    return {int(line.split(b":", 1)[0]) - 1 for line in proc.stdout.splitlines()}


def drop_test_texts(documents, sources):
    """-> (the documents that hold no test text, {source name: documents it removed})."""
    norm = [normalize(d) for d in documents]
    everything = set().union(*sources.values())
    with tempfile.TemporaryDirectory() as tmp:
        norm_path = os.path.join(tmp, "normalized.txt")
        with open(norm_path, "w", encoding="utf-8") as f:
            f.write("\n".join(n.replace("\n", " ") for n in norm) + "\n")
        removed = {i for i, n in enumerate(norm) if n in everything}
        removed |= matching_lines(norm_path, {t for t in everything if len(t) >= MIN_CONTAINED_CHARS}, tmp)
        hit_lines = sorted(removed)  # per-source counts: grep again, on the removed documents only
        hit_path = os.path.join(tmp, "removed.txt")
        with open(hit_path, "w", encoding="utf-8") as f:
            f.write("\n".join(norm[i] for i in hit_lines) + "\n")
        per_source = {}
        for name, texts in sources.items():
            hits = {hit_lines[j] for j in matching_lines(hit_path, {t for t in texts if len(t) >= MIN_CONTAINED_CHARS},
                                                         tmp)}
            per_source[name] = len(hits | {i for i in hit_lines if norm[i] in texts})
    return [d for i, d in enumerate(documents) if i not in removed], per_source
