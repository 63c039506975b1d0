"""The pretraining corpus: UTF-8 text, one document per line, checked before any model is built."""
import os
import warnings

from few_shot.errors import FewShotError
from few_shot.tokenizer import CJK

MAX_LISTED_LINES = 5


class BadLineWarning(UserWarning):
    """Corpus lines were skipped (`on_bad_line="skip"`)."""

def _lines(numbers):
    shown = ", ".join(str(n) for n in numbers[:MAX_LISTED_LINES])
    more = f" and {len(numbers) - MAX_LISTED_LINES} more" if len(numbers) > MAX_LISTED_LINES else ""
    return f"line{'s' if len(numbers) > 1 else ''} {shown}{more}"


def read_corpus(paths, on_bad_line="stop"):
    """-> (documents, per-file info). One document per non-blank line; every file must be UTF-8
    and contain Chinese text. Non-UTF-8 lines stop the run (`on_bad_line="stop"`, listing their
    line numbers) or are dropped with a `BadLineWarning` (`"skip"`)."""
    if isinstance(paths, str):
        paths = [paths]
    if not paths:
        raise FewShotError("no corpus given; pass --corpus FILE (one document per line)")
    documents, info = [], []
    for path in paths:
        if os.path.isdir(path):
            raise FewShotError(f"--corpus {path}: is a folder; pass the text file(s) in it")
        bad, first_error, docs, has_cjk = [], None, [], False
        try:
            with open(path, "rb") as f:
                for lineno, raw in enumerate(f, 1):
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError as e:
                        bad.append(lineno)
                        first_error = first_error or f"{e.reason} at byte {e.start}"
                        continue
                    if lineno == 1:
                        line = line.lstrip("\ufeff")
                    line = line.strip()
                    if line:
                        docs.append(line)
                        has_cjk = has_cjk or CJK.search(line) is not None
        except FileNotFoundError:
            raise FewShotError(f"--corpus {path}: file not found; pass a UTF-8 text file, one document per line") \
                from None
        except OSError as e:
            raise FewShotError(f"--corpus {path}: cannot be read ({e.strerror}); check the path and permissions") \
                from None
        if bad and on_bad_line == "stop":
            raise FewShotError(f"{path}: {_lines(bad)} not valid UTF-8 ({first_error}); convert the file "
                               f"(e.g. iconv -f GBK -t UTF-8) or pass --on-bad-line skip to drop such lines")
        if bad:
            warnings.warn(f"{path}: skipped {len(bad)} line{'s' if len(bad) > 1 else ''} that {'are' if len(bad) > 1 else 'is'} "
                          f"not valid UTF-8 ({_lines(bad)})", BadLineWarning, stacklevel=2)
        if not docs:
            why = f" after skipping {len(bad)} non-UTF-8 lines" if bad else ""
            raise FewShotError(f"--corpus {path}: no documents{why} (the file is empty or blank); pass a UTF-8 text "
                               f"file with one document per line")
        if not has_cjk:
            raise FewShotError(f"--corpus {path}: no Chinese (CJK) characters in its {len(docs)} documents; this "
                               f"pretrains a Chinese BERT, pass Chinese text")
        documents.extend(docs)
        info.append({"path": os.path.abspath(path), "documents": len(docs), "skipped_lines": len(bad)})
    return documents, info
