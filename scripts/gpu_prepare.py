#!/usr/bin/env python3
"""Build `.gpu/` (git-ignored) for scripts/gpu_job.sh: run HERE, before the one GPU call.

    python3 scripts/gpu_prepare.py            # -> .gpu/whl/*.whl, .gpu/corpus/*.txt.xz, .gpu/manifest.json

What travels to the GPU machine is the working tree (tracked + untracked-not-ignored files) plus the
`carry` paths, 64 MiB in all; the repository is ~41 MiB, so `.gpu/` holds:
  - whl/: the pure-Python/compiled wheels that machine lacks for Keras (keras, namex, optree; cp312
    manylinux), the versions installed here, one version each;
  - corpus/: the pretraining corpus, with every line that contains (or equals) a test text of an
    evaluation task removed (rule of the project: remove a task's test texts from any corpus before
    reporting that task), xz-compressed to at most CORPUS_XZ_BUDGET bytes: all of zh_corpus.txt, then
    as much of zh_corpus_extra.txt (in file order) as fits.
Removed texts: data/sentiment/sentiment.test.data (and sentiment.valid.data, the zero-shot probe set),
and the text fields of ../shared/data/fewclue/*/test_public.json (few_shot/evaluation_texts.py). Lines and test
texts are compared after NFKC + lower-case + removing all whitespace; a line is dropped when it equals a
test text or contains one of >= MIN_CONTAINED_CHARS characters (exact substring, GNU `grep -F`): the few
test texts shorter than that ('赞', 'ok', '不错', '520', '他哭了', ...) only remove lines equal to them
(containment would drop ~9% of zh_corpus.txt for words like 赞). chid's contents are split at their #idiom#
blanks and each piece of >= MIN_PIECE_CHARS characters counts as a text; csl's keyword lists are not texts.
"""
import argparse
import glob
import hashlib
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from few_shot.evaluation_texts import (MIN_CONTAINED_CHARS, MIN_PIECE_CHARS, TEST_FIELDS,  # noqa: E402,F401
                                       collect_test_texts, drop_test_texts)
CORPUS_XZ_BUDGET = 15 * 2 ** 20  # bytes of xz for all corpus files together (repo ~41 MiB + wheels ~3 MiB)
XZ_PRESET = 6
WHEELS = ("keras", "namex", "optree")  # what the GPU machine lacks for Keras (see keras' Requires-Dist)
PIP_PLATFORM = ["--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
                "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64"]
CORPUS_FILES = ("zh_corpus.txt", "zh_corpus_extra.txt")


def filter_corpus(path, sources, tmp):
    """-> (kept lines (original text, without newline), report dict)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    kept, per_source = drop_test_texts(lines, sources)
    kept = [line for line in kept if line.strip()]
    report = {"file": os.path.basename(path), "lines": len(lines), "removed_lines": len(lines) - len(kept),
              "removed_lines_per_source": per_source, "kept_documents": len(kept)}
    return kept, report


def xz_bytes(lines):
    return lzma.compress(("\n".join(lines) + "\n").encode("utf-8"), preset=XZ_PRESET) if lines else b""


def fit_to_budget(lines, budget):
    """The longest prefix of `lines` whose xz fits in `budget` bytes -> (xz bytes, number of lines)."""
    if budget <= 0 or not lines:
        return b"", 0
    sample = lines[:20000]
    ratio = len(xz_bytes(sample)) / max(1, len(("\n".join(sample) + "\n").encode("utf-8")))
    sizes, total = [], 0
    for line in lines:
        total += len(line.encode("utf-8")) + 1
        sizes.append(total)
    target = budget / ratio * 0.985
    n = next((i for i, s in enumerate(sizes) if s > target), len(lines))
    for _ in range(6):
        data = xz_bytes(lines[:n])
        if len(data) <= budget:
            return data, n
        n = int(n * budget / len(data) * 0.99)
    raise SystemExit("error: could not fit the corpus into the budget")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ensure_excluded(pattern):
    """Add `pattern` to .git/info/exclude (local ignore, not committed) unless it is there."""
    path = os.path.join(REPO, ".git", "info", "exclude")
    if not os.path.isdir(os.path.join(REPO, ".git")):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lines = open(path, encoding="utf-8").read().splitlines() if os.path.exists(path) else []
    if pattern not in lines:
        with open(path, "a", encoding="utf-8") as f:
            f.write(pattern + "\n")


def download_wheels(folder):
    os.makedirs(folder, exist_ok=True)
    wanted = []
    for name in WHEELS:
        version = metadata.version(name)
        wanted.append(f"{name}=={version}")
        for old in glob.glob(os.path.join(folder, f"{name}-*.whl")):
            if not os.path.basename(old).startswith(f"{name}-{version}-"):
                os.remove(old)  # one version of each wheel
    missing = [w for w in wanted if not glob.glob(os.path.join(folder, w.replace("==", "-") + "-*.whl"))]
    if missing:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *PIP_PLATFORM,
                        "-d", folder, *missing], check=True)
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(folder, "*.whl")))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(REPO, ".gpu"), help="folder to build (default .gpu)")
    p.add_argument("--shared", default=os.path.join(os.path.dirname(REPO), "shared"),
                   help="the shared folder (holding data/corpus and data/fewclue)")
    p.add_argument("--budget-mib", type=float, default=CORPUS_XZ_BUDGET / 2 ** 20,
                   help="xz bytes of corpus allowed, in MiB")
    p.add_argument("--skip-wheels", action="store_true")
    args = p.parse_args(argv)
    t0 = time.time()
    out = os.path.abspath(args.out)
    if out == os.path.join(REPO, ".gpu"):
        ensure_excluded("/.gpu/")
    budget = int(args.budget_mib * 2 ** 20)
    os.makedirs(out, exist_ok=True)
    wheels = [] if args.skip_wheels else download_wheels(os.path.join(out, "whl"))
    sources = collect_test_texts(os.path.join(args.shared, "data", "fewclue"))
    print("test texts (normalised, distinct): " + ", ".join(f"{k} {len(v)}" for k, v in sources.items()))
    corpus_dir = os.path.join(out, "corpus")
    if os.path.isdir(corpus_dir):
        shutil.rmtree(corpus_dir)
    os.makedirs(corpus_dir)
    files, left = [], budget
    with tempfile.TemporaryDirectory() as tmp:
        for name in CORPUS_FILES:
            kept, report = filter_corpus(os.path.join(args.shared, "data", "corpus", name), sources, tmp)
            print(f"{name}: {report['lines']} lines, removed {report['removed_lines']} "
                  f"({report['removed_lines_per_source']})", flush=True)
            data, n = fit_to_budget(kept, left)
            left -= len(data)
            report.update(shipped_documents=n, shipped_text_bytes=sum(len(x.encode("utf-8")) + 1 for x in kept[:n]),
                          xz_bytes=len(data))
            if n:
                path = os.path.join(corpus_dir, name + ".xz")
                with open(path, "wb") as f:
                    f.write(data)
                report.update(path=os.path.relpath(path, out), sha256=sha256(path))
            print(f"  shipped {n} of {len(kept)} documents, {len(data)} bytes of xz", flush=True)
            files.append(report)
    manifest = {"corpus_xz_budget_bytes": budget, "corpus_xz_bytes": budget - left, "corpus": files,
                "test_texts": {k: len(v) for k, v in sources.items()},
                "removed_lines_total": sum(f["removed_lines"] for f in files),
                "matching": "line dropped if it equals a test text, or contains one of >= "
                            f"{MIN_CONTAINED_CHARS} chars, both NFKC + lower-cased + whitespace removed (grep -F); "
                            f"chid: pieces between #idiom# blanks of >= {MIN_PIECE_CHARS} chars",
                "wheels": wheels, "built_s": round(time.time() - t0, 1)}
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
    size = sum(os.path.getsize(os.path.join(d, x)) for d, _, fs in os.walk(out) for x in fs)
    print(f"wrote {out}: {size} bytes ({size / 2 ** 20:.2f} MiB); removed {manifest['removed_lines_total']} "
          f"corpus lines in {manifest['built_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
