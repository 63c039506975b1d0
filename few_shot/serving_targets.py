"""The tasks of a multi-task model (few_shot/multitask.py) or server (few_shot/serve.py), checked before
TensorFlow loads (pure Python): `NAME=TARGET` specs, each TARGET a portable prompt file or the run folder of
a method that trains prompts for a frozen MLM (those whose small file is a portable prompt: ptuning, mlp,
prompt, deep, hybrid, changed). LoRA and finetune change the MLM itself, so they cannot share its one pass."""
import json
import os
import re

from few_shot.errors import FewShotError

TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def parse_task_specs(specs, flag="--serve"):
    """["sentiment=runs/p1", "tnews=tnews.safetensors"] -> {"sentiment": "runs/p1", ...} (order kept)."""
    tasks = {}
    for spec in specs:
        name, sep, target = str(spec).partition("=")
        if not sep or not target:
            raise FewShotError(f"{flag} {spec}: write each task as NAME=TARGET (e.g. sentiment=runs/ptuning-1 or "
                               f"tnews=runs/tnews/prompt.safetensors)")
        if not TASK_NAME.fullmatch(name):
            raise FewShotError(f"{flag} {spec}: task name {name!r} must be 1-64 letters, digits, '_', '.' or '-' "
                               f"(it is part of the URL /v1/models/NAME:predict)")
        if name in tasks:
            raise FewShotError(f"{flag}: task {name!r} is given twice; give each task one NAME=TARGET")
        tasks[name] = target
    if not tasks:
        raise FewShotError(f"{flag}: no task given; pass NAME=TARGET [NAME=TARGET ...]")
    return tasks


def check_task_target(name, target):
    """The target of task `name` exists and holds prompts for a frozen MLM -> "file" or "folder"."""
    from few_shot.methods import get_method, method_for_format
    from few_shot.portable import FORMAT, file_format
    where = f"task {name}: {target}"
    apart = ("a multi-task model runs one frozen MLM for every task: serve this task apart (--export it to its own "
             "SavedModel, or --predict)")
    if os.path.isfile(target):
        fmt = file_format(target)
        if fmt == FORMAT:
            return "file"
        method = method_for_format(fmt)
        if method is not None:
            raise FewShotError(f"{where} holds {method.name} weights, which change the MLM itself; {apart}")
        raise FewShotError(f"{where}: not a portable prompt file ({fmt or 'no few_shot format in its header'}); pass a "
                           f"run's prompt.safetensors or its run folder")
    if not os.path.isdir(target):
        raise FewShotError(f"{where}: no such run folder or prompt file; pass the --output folder of a finished run "
                           f"or its prompt.safetensors")
    if not os.path.isfile(os.path.join(target, "model.keras")):
        raise FewShotError(f"{where}: holds no model.keras; pass the --output folder of a finished run (or its "
                           f"prompt.safetensors)")
    method = run_method(target)
    if method is not None:
        try:
            found = get_method(method)
        except FewShotError:
            found = None
        if found is not None and found.file_format != FORMAT:
            what = "changes the MLM itself" if found.trains else "has no trained prompt"
            raise FewShotError(f"{where} is a {method} run, which {what}; {apart}")
    return "folder"


def run_method(run_dir):
    """The method named in a run folder's metrics.json, or None when it cannot be read."""
    try:
        with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:
            method = json.load(f).get("config", {}).get("method")
    except (OSError, ValueError, AttributeError):
        return None
    return method if isinstance(method, str) else None
