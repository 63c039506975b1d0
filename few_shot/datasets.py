"""Labelled text files -> lists of `(text, label)` with labels as strings (a FewCLUE task,
`--task`, reads its rows as dicts of fields instead: few_shot/tasks/).

Formats (chosen by extension): tsv (`text<TAB>label`, Su's sentiment `*.data` files, `.txt`),
csv (header row; `--text-field/--label-field`), json lines (`.json`/`.jsonl`). Folder layouts:
Su's (`*.train.data`, `*.valid.data`, `*.test.data`), `train/dev|valid/test.<ext>`, and FewCLUE
(`train_<i>.json`, `dev_<i>.json`, `test_public.json`). Problems name the file and the line.
"""
import collections
import csv
import glob
import json
import os
import warnings

import numpy as np

from few_shot.errors import FewShotError, permission_denied

TEXT_FIELDS = ("text", "sentence", "content", "title")
LABEL_FIELDS = ("label", "label_desc")
SPLIT_NAMES = {"train": ("train",), "valid": ("valid", "dev", "val"), "test": ("test_public", "test")}
EXTENSIONS = (".data", ".tsv", ".txt", ".csv", ".jsonl", ".json")
MAX_LISTED = 5
FEWCLUE_UNLABELED = ("unlabeled.json", "unlabeled_data.json")

# FewCLUE tnews: the two-character Chinese label names of the dataset's label_index2en2zh.json.
TNEWS_VERBALIZER = {"100": "故事", "101": "文化", "102": "娱乐", "103": "体育", "104": "财经", "106": "房产",
                    "107": "汽车", "108": "教育", "109": "科技", "110": "军事", "112": "旅游", "113": "国际",
                    "114": "股票", "115": "农业", "116": "电竞"}


class DataWarning(UserWarning):
    """Rows were skipped or look suspicious (empty or duplicate texts)."""


def _format_of(path, fmt=None):
    fmt = fmt or {".csv": "csv", ".json": "jsonl", ".jsonl": "jsonl"}.get(os.path.splitext(path)[1].lower(), "tsv")
    if fmt not in ("tsv", "csv", "jsonl"):
        raise FewShotError(f"unknown data format {fmt!r}; use tsv, csv or jsonl")
    return fmt


def line_list(numbers):
    """[3, 9, ...] -> "3, 9, ... and N more": the lines a warning or an error names."""
    shown = ", ".join(map(str, numbers[:MAX_LISTED]))
    return shown + (f" and {len(numbers) - MAX_LISTED} more" if len(numbers) > MAX_LISTED else "")


def decoded_lines(path):
    """-> [(line_number, line)] of a UTF-8 file (BOM and CR dropped); every undecodable line is named
    in one error."""
    try:
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
    except PermissionError:
        raise permission_denied(path, "data file") from None
    decoded, bad = [], []
    for number, line in enumerate(lines, 1):
        try:
            decoded.append((number, line.decode("utf-8").rstrip("\r").lstrip("\ufeff")))
        except UnicodeDecodeError:
            bad.append(number)
    if bad:
        raise FewShotError(f"{path}: line {line_list(bad)} not UTF-8; re-save the file as UTF-8 "
                           f"(e.g. iconv -f GBK -t UTF-8)")
    return decoded


def json_objects(path, what="json files"):
    """Yield (line_number, dict) for each non-blank line of a json-lines file; a line that is not a
    JSON object is an error naming the file and the line."""
    for number, line in decoded_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise FewShotError(f"{path}:{number}: not a JSON object ({e.msg}); {what} hold one object per "
                               f"line") from None
        if not isinstance(row, dict):
            raise FewShotError(f"{path}:{number}: not a JSON object; {what} hold one object per line")
        yield number, row


def _pick_field(fields, wanted, defaults, what, path, flag):
    if wanted is not None:
        if wanted not in fields:
            raise FewShotError(f"{path}: no {what} field {wanted!r} (fields: {', '.join(map(str, fields))}); "
                               f"fix {flag}")
        return wanted
    for name in defaults:
        if name in fields:
            return name
    raise FewShotError(f"{path}: no {what} field among {', '.join(map(str, fields))}; name it with {flag}")


def _raw_rows(path, fmt, text_field, label_field):
    """Yield (line_number, text, label) from one file."""
    if fmt == "jsonl":
        for number, row in json_objects(path):
            tf_ = _pick_field(list(row), text_field, TEXT_FIELDS, "text", f"{path}:{number}", "--text-field")
            lf = _pick_field(list(row), label_field, LABEL_FIELDS, "label", f"{path}:{number}", "--label-field")
            yield number, str(row[tf_]), str(row[lf]).strip()
        return
    decoded = decoded_lines(path)
    if fmt == "tsv":
        for number, line in decoded:
            if not line.strip():
                continue
            text, sep, label = line.rpartition("\t")
            if not sep:
                raise FewShotError(f"{path}:{number}: no tab; tsv rows are text<TAB>label")
            yield number, text, label.strip()
    else:
        reader = csv.reader([line for _, line in decoded])
        numbers = [n for n, _ in decoded]
        try:
            header = next(reader)
        except StopIteration:
            return
        tf_ = _pick_field(header, text_field, TEXT_FIELDS, "text", f"{path}:1", "--text-field")
        lf = _pick_field(header, label_field, LABEL_FIELDS, "label", f"{path}:1", "--label-field")
        ti, li = header.index(tf_), header.index(lf)
        for i, row in enumerate(reader, 1):
            if not row:
                continue
            if len(row) <= max(ti, li):
                raise FewShotError(f"{path}:{numbers[i]}: {len(row)} columns, the header has {len(header)}; "
                                   f"quote fields that contain commas")
            yield numbers[i], row[ti], row[li].strip()


def read_examples(path, text_field=None, label_field=None, fmt=None, duplicates_seen=None):
    """-> [(text, label)]. Empty texts are skipped and duplicates kept, each with a warning that
    names the lines; an empty label or an unreadable line is an error."""
    if not os.path.isfile(path):
        raise FewShotError(f"{path}: no such file; pass a labelled data file (tsv, csv or json lines)")
    examples, empty, seen, duplicates = [], [], {}, []
    for number, text, label in _raw_rows(path, _format_of(path, fmt), text_field, label_field):
        if label == "":
            raise FewShotError(f"{path}:{number}: empty label; every row needs text and label")
        text = text.strip()
        if not text:
            empty.append(number)
            continue
        if text in seen:
            duplicates.append(number)
        seen.setdefault(text, number)
        examples.append((text, label))
    if empty:
        warnings.warn(f"{path}: skipped {len(empty)} empty text(s) at line {line_list(empty)}", DataWarning)
    if duplicates and duplicates_seen is not None:  # the caller reports them once for all its files
        duplicates_seen[os.path.basename(path)] = len(duplicates)
    elif duplicates:
        warnings.warn(f"{path}: {len(duplicates)} duplicate text(s) at line {line_list(duplicates)}", DataWarning)
    if not examples:
        raise FewShotError(f"{path}: no labelled rows; expected text and label per line")
    return examples


def find_split(folder, split):
    """The file of `split` (train/valid/test) in `folder`, in Su's or the train/dev/test layout."""
    candidates = []
    for name in SPLIT_NAMES[split]:
        for ext in EXTENSIONS:
            candidates += sorted(glob.glob(os.path.join(glob.escape(folder), f"*.{name}{ext}")))
            candidates += sorted(glob.glob(os.path.join(glob.escape(folder), f"{name}{ext}")))
        if candidates:
            break
    if not candidates:
        raise FewShotError(f"{folder}: no {split} file; name it {split}.tsv (or xx.{split}.data, "
                           f"{'/'.join(SPLIT_NAMES[split])}.csv|jsonl), or use --fewclue-fold for FewCLUE")
    if len(set(candidates)) > 1:
        raise FewShotError(f"{folder}: several {split} files ({', '.join(map(os.path.basename, candidates))}); "
                           f"keep one")
    return candidates[0]


def load_task(folder, text_field=None, label_field=None):
    """-> {"train", "valid", "test"}: lists of (text, label)."""
    if os.path.isfile(folder):
        raise FewShotError(f"--data {folder}: is a file; --data takes the folder that holds the train, valid and "
                           f"test files")
    if not os.path.isdir(folder):
        raise FewShotError(f"{folder}: no such folder; --data takes a folder with train/valid/test files")
    seen = {}
    splits = {split: read_examples(find_split(folder, split), text_field, label_field, duplicates_seen=seen)
              for split in ("train", "valid", "test")}
    warn_duplicates(folder, seen)
    return splits


def warn_duplicates(folder, counts):
    """One short line for a whole data folder: duplicates are kept (Su's sentiment set has 3,026)."""
    if counts:
        listed = ", ".join(f"{name} {n}" for name, n in counts.items())
        warnings.warn(f"{folder}: duplicate texts kept ({listed})", DataWarning)


def load_fewclue(folder, fold, text_field=None, label_field=None):
    """FewCLUE: train on train_<fold>, select on dev_<fold>, report on test_public. fold="all"
    uses train_few_all / dev_few_all."""
    if not os.path.isdir(folder):
        raise FewShotError(f"{folder}: no such folder; pass the FewCLUE task folder (train_0.json, ...)")
    suffix = "few_all" if str(fold) == "all" else str(int(fold))
    files = {"train": f"train_{suffix}.json", "valid": f"dev_{suffix}.json", "test": "test_public.json"}
    out, seen = {}, {}
    for split, name in files.items():
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise FewShotError(f"{path}: not found; FewCLUE folders hold train_<i>.json, dev_<i>.json and "
                               f"test_public.json (fold 0-4 or all)")
        out[split] = read_examples(path, text_field, label_field, duplicates_seen=seen)
    warn_duplicates(folder, seen)
    return out


def label_counts(rows):
    return dict(sorted(collections.Counter(label for _, label in rows).items()))


def stratified_sample(rows, k, seed):
    """k rows drawn without replacement, as balanced over the labels as k allows (labels that
    have too few rows give their share to the others). Deterministic in `seed`."""
    if k <= 0 or k > len(rows):
        raise FewShotError(f"--k {k}: must be between 1 and the {len(rows)} training rows")
    rng = np.random.default_rng(seed)
    by_label = collections.defaultdict(list)
    for i, (_, label) in enumerate(rows):
        by_label[label].append(i)
    labels = sorted(by_label)
    pools = {label: list(rng.permutation(by_label[label])) for label in labels}
    quota = dict.fromkeys(labels, 0)
    remaining = k
    while remaining:
        open_labels = [label for label in labels if quota[label] < len(pools[label])]
        share, extra = divmod(remaining, len(open_labels))
        # the extras go to the labels with the fewest rows so far (random among ties), so labels
        # that filled up earlier cannot leave the rest unbalanced
        extra_labels = set(sorted(rng.permutation(open_labels), key=quota.get)[:extra])
        for label in open_labels:
            take = min(share + (label in extra_labels), len(pools[label]) - quota[label])
            quota[label] += take
            remaining -= take
    chosen = [i for label in labels for i in pools[label][:quota[label]]]
    return [rows[i] for i in rng.permutation(chosen)]


def first_fraction(rows, fraction):
    """The first int(len * fraction) rows, as the seed (1% of sentiment train = 168 rows)."""
    if not 0 < fraction <= 1:
        raise FewShotError(f"--train-fraction {fraction}: must be in (0, 1]")
    n = int(len(rows) * fraction)
    if n == 0:
        raise FewShotError(f"--train-fraction {fraction} of {len(rows)} rows is 0 rows; raise it or use --k")
    return rows[:n]


# -- what a run reads -----------------------------------------------------------------------------

def first_rows(rows, n, flag):
    """rows[:n], with a warning when the cut loses labels (a file sorted by label, as FewCLUE's)."""
    if n is None or n >= len(rows):
        return rows
    kept, every = {label for _, label in rows[:n]}, {label for _, label in rows}
    if kept != every:
        warnings.warn(f"{flag} {n} keeps {len(kept)} of the {len(every)} labels (the file is ordered by label?); "
                      f"evaluate on more rows or all of them", DataWarning)
    return rows[:n]


def read_unlabeled(path, text_field=None):
    """-> [text]. One text per line; `text<TAB>label` lines keep the text (labels are ignored) and
    JSON lines (FewCLUE's unlabeled_data.json) give their `text_field` (default text/sentence/
    content/title). Blank lines are skipped; a file without any text is an error."""
    if not os.path.isfile(path):
        raise FewShotError(f"--unlabeled {path}: no such file; pass a UTF-8 text file, one text per line")
    texts = []
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip().lstrip("\ufeff")
                if not line:
                    continue
                if line.startswith("{"):
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        row = None
                    if isinstance(row, dict):
                        fields = [text_field] if text_field else [k for k in TEXT_FIELDS if k in row]
                        if not fields or fields[0] not in row:
                            raise FewShotError(f"--unlabeled {path}:{lineno}: no text field among "
                                               f"{', '.join(map(str, row))}; name it with --text-field")
                        line = str(row[fields[0]]).strip()
                elif "\t" in line:
                    line = line.rsplit("\t", 1)[0].strip()
                if line:
                    texts.append(line)
    except PermissionError:
        raise permission_denied(path, "unlabelled texts file") from None
    except UnicodeDecodeError as e:
        raise FewShotError(f"--unlabeled {path}: not UTF-8 ({e.reason} at byte {e.start}); re-save it as UTF-8") \
            from None
    if not texts:
        raise FewShotError(f"--unlabeled {path}: no texts (the file is empty or blank); pass one text per line")
    return texts


def unlabeled_remainder(all_train, labelled):
    """The texts of the full train split that are not among the labelled rows (labels dropped)."""
    used = {text for text, _ in labelled}
    return [text for text, _ in all_train if text not in used]


def unlabeled_texts(config, labelled):
    """-> (texts, where they come from), or (None, None) without `--semi`/`--unlabeled`. The texts
    are `--unlabeled FILE`, else FewCLUE's unlabeled.json / unlabeled_data.json (with
    `--fewclue-fold`), else the train rows not among the `labelled` ones (for FewCLUE: the rest of
    train_few_all, the pool the folds are drawn from)."""
    if not (config.unlabeled or config.semi):
        return None, None
    if getattr(config, "task", None) is not None:
        raise FewShotError(f"--semi/--unlabeled with --task {config.task}: unlabelled rows of a FewCLUE task (dicts of "
                           f"fields) are not supported yet; drop --semi")
    path = config.unlabeled
    if path is None and config.fewclue_fold is not None:
        path = next((p for p in (os.path.join(config.data, n) for n in FEWCLUE_UNLABELED) if os.path.isfile(p)), None)
    if path is not None:
        texts, source = read_unlabeled(path, config.text_field), path
    else:
        if config.fewclue_fold is not None:
            pool_path = os.path.join(config.data, "train_few_all.json")
            pool = read_examples(pool_path, config.text_field, config.label_field) \
                if os.path.isfile(pool_path) else []
        else:
            pool = read_examples(find_split(config.data, "train"), config.text_field,
                                          config.label_field)
        texts, source = unlabeled_remainder(pool, labelled), "the rest of the train split"
        if not texts:
            raise FewShotError(f"--semi: the train split of {config.data} has no rows beyond the {len(labelled)} "
                               f"labelled ones; pass --unlabeled FILE with unlabelled texts")
    return (texts[:config.max_unlabeled] if config.max_unlabeled else texts), source
