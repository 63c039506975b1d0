"""Task: what one FewCLUE task needs besides the model: its fields, labels, a reader that checks
every row (the file and line of a bad one), a hand-written zero-shot pattern + verbalizer and a
P-tuning pattern. Each task is one small module (few_shot/tasks/<name>.py) that makes a `TASK`.

Reading imports neither TensorFlow nor Keras: a bad row fails before a model loads.
"""
import dataclasses
import os
import re
import warnings
from typing import Callable, Optional

from few_shot.datasets import DataWarning, json_objects, line_list
from few_shot.errors import FewShotError
from few_shot.pattern import field_names, lookup
from few_shot.verbalizers import Candidates, verbalizer_from

FEWCLUE_SPLITS = {"train": "train_{}.json", "valid": "dev_{}.json", "test": "test_public.json"}


@dataclasses.dataclass(frozen=True)
class Task:
    """One task. `fields`: the row's fields a pattern may use (dotted for nested ones, kept nested);
    `verbalizer`: label -> word (or `Candidates`); `label_field`: where the gold label is;
    `skip_labels`: labels meaning "no gold label" (rows skipped, counted in a warning);
    `check_row(row, label) -> problem or None`: the task's own row checks."""
    name: str
    description: str
    fields: tuple
    verbalizer: object
    ptuning_pattern: str
    # hand-written zero-shot patterns: the default first, then the ones it was chosen over by zero-shot
    # accuracy on dev_0 with the task's verbalizer (few_shot/tasks/select.py)
    zero_shot_patterns: tuple
    label_field: str = "label"
    skip_labels: tuple = ()
    check_row: Optional[Callable] = None

    @property
    def zero_shot_pattern(self):
        return self.zero_shot_patterns[0]

    @property
    def labels(self):
        return self.make_verbalizer().labels

    def make_verbalizer(self):
        return verbalizer_from(self.verbalizer)

    # -- reading ---------------------------------------------------------------------------------

    def read(self, path):
        """A FewCLUE json-lines file -> [(row, label)]: rows keep only the task's fields (no id, no
        label), labels are strings. A row without a field, with an unknown label or failing the
        task's checks is a one-line FewShotError naming the file and the line."""
        if not os.path.isfile(path):
            raise FewShotError(f"{path}: no such file; a {self.name} folder holds train_<i>.json, dev_<i>.json and "
                               f"test_public.json")
        labels = set(self.labels)
        examples, skipped = [], []
        for number, raw in json_objects(path, f"{self.name} files"):
            where = f"{path}:{number}"
            row = {}
            for name in self.fields + (self.label_field,):
                try:
                    value = lookup(raw, name)
                except KeyError:
                    raise FewShotError(f"{where}: no field {name!r} (fields: {', '.join(field_names(raw))}); a "
                                       f"{self.name} row needs {', '.join(self.fields + (self.label_field,))}") \
                        from None
                if name != self.label_field:
                    _put(row, name, value)
            label = str(lookup(raw, self.label_field)).strip()
            if label in self.skip_labels:
                skipped.append(number)
                continue
            if label not in labels:
                shown = ", ".join(sorted(labels)) if len(labels) <= 20 else f"{len(labels)} labels"
                raise FewShotError(f"{where}: label {label!r} is not a {self.name} label ({shown}); fix the row or "
                                   f"the task's verbalizer")
            problem = self.check_row(row, label) if self.check_row else None
            if problem:
                raise FewShotError(f"{where}: {problem}")
            examples.append((row, label))
        if skipped:
            warnings.warn(f"{path}: skipped {len(skipped)} row(s) without a gold label "
                          f"({'/'.join(map(repr, self.skip_labels))}) at line {line_list(skipped)}", DataWarning)
        if not examples:
            raise FewShotError(f"{path}: no labelled {self.name} rows")
        return examples

    def load(self, folder, fold):
        """FewCLUE folder -> {"train": train_<fold>, "valid": dev_<fold>, "test": test_public}
        (fold "all": train_few_all / dev_few_all)."""
        if not os.path.isdir(folder):
            raise FewShotError(f"{folder}: no such folder; pass the FewCLUE {self.name} folder (train_0.json, ...)")
        suffix = "few_all" if str(fold) == "all" else str(int(fold))
        return {split: self.read(os.path.join(folder, name.format(suffix))) for split, name in FEWCLUE_SPLITS.items()}


def _put(row, dotted, value):
    """row["a"]["b"] = value for "a.b" (nested fields stay nested, as the pattern reads them)."""
    keys = dotted.split(".")
    for key in keys[:-1]:
        row = row.setdefault(key, {})
    row[keys[-1]] = value


# -- label words of different lengths (iflytek, csldcp) -------------------------------------------

_CJK = re.compile(r"[\u4e00-\u9fff]")


def fixed_length_words(names, length=2, overrides=None):
    """{label: category name} -> {label: a `length`-character word taken from the name}, distinct for
    every label, so that every label word fills the same `length` [MASK] slots.

    Names that already are `length` Chinese characters, and `overrides`, are kept as they are; the
    others take, in label order, the first of: the name's first `length` characters, its last
    `length`, then any `length` of its characters in order, not yet taken (地图导航 -> 地图;
    汽车交易 -> 交易 once 汽车 is 汽车咨询's). A name with too few Chinese characters, or whose
    every pick is taken, is a FewShotError naming the label: give it a word in `overrides`.
    """
    import itertools
    overrides = dict(overrides or {})
    words, owner = {}, {}

    def take(label, word):
        if word in owner:
            raise FewShotError(f"label {label} ({names[label]!r}): its word {word!r} is also label {owner[word]}'s "
                               f"({names[owner[word]]!r}); give one of them another word")
        owner[word], words[label] = label, word

    for label, name in names.items():
        chars = "".join(_CJK.findall(name))
        if label in overrides or len(chars) == length:
            take(label, overrides.get(label, chars))
    for label, name in names.items():
        if label in words:
            continue
        chars = "".join(_CJK.findall(name))
        if len(chars) < length:
            raise FewShotError(f"label {label} ({name!r}) has fewer than {length} Chinese characters; give it a "
                               f"{length}-character word in the task's overrides")
        picks = [chars[:length], chars[-length:]] + ["".join(c) for c in itertools.combinations(chars, length)]
        word = next((w for w in picks if w not in owner), None)
        if word is None:
            raise FewShotError(f"label {label} ({name!r}): every {length}-character word from its name is taken; "
                               f"give it one in the task's overrides")
        take(label, word)
    return {label: words[label] for label in names}


def candidate_problem(candidates, blank_length, count):
    """chid-style checks of a row's candidate list -> a problem or None."""
    if not isinstance(candidates, list) or len(candidates) != count:
        return f"'candidates' must list {count} idioms, got {candidates!r}"
    for c in candidates:
        if not isinstance(c, str) or len(c) != blank_length:
            return (f"candidate {c!r} has {len(c) if isinstance(c, str) else '?'} characters, the blank takes "
                    f"{blank_length} [MASK]s; every candidate must fill the blank exactly")
    return None


__all__ = ["Task", "Candidates", "fixed_length_words", "candidate_problem", "FEWCLUE_SPLITS"]
