"""Checkpoints of a pretraining run (HF folder + optimizer.npz + state.json, written atomically) and
the model it starts from: a checkpoint to resume, an `--init-from` model, or a new `BertMaskedLM`."""
import json
import os

import keras
import numpy as np

from few_shot import checkpoints as ckpt
from few_shot.bert import BertMaskedLM
from few_shot.errors import FewShotError
from few_shot.loading import load_mlm
from few_shot.paths import DEFAULT_MODEL
from few_shot.owned_files import move_leftovers, remove_owned
from few_shot.pretraining.config import ARCH_FLAGS, CHECKPOINT_FILES, OPTIMIZER_FILE, STATE_FILE, flag
from few_shot.tokenizer import Tokenizer, load_vocab


def save_checkpoint(folder, bert, tokenizer, optimizer, state):
    """Atomically (write .tmp, then rename) write an HF folder + optimizer.npz + state.json. Only the
    checkpoint's own files are removed; anything else found in the folders stays in `folder`."""
    tmp, old = folder + ".tmp", folder + ".old"
    for path in (tmp, old):
        remove_owned(path, CHECKPOINT_FILES, keep_folder=False)
        move_leftovers(path, folder)  # a user's file left in .tmp/.old goes back into the checkpoint folder
    ckpt.export_hf(bert, tokenizer.vocab_path, tmp)
    arrays = {f"v{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(optimizer.variables)}
    np.savez(os.path.join(tmp, OPTIMIZER_FILE), **arrays)
    state = dict(state, optimizer_variables=[v.path for v in optimizer.variables])
    with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as f:
        json.dump(state, f)
    if os.path.exists(folder):
        os.rename(folder, old)
    os.rename(tmp, folder)
    if os.path.exists(old):
        remove_owned(old, CHECKPOINT_FILES, keep_folder=False)
        move_leftovers(old, folder)


def restore_optimizer(optimizer, folder):
    path = os.path.join(folder, OPTIMIZER_FILE)
    try:
        with np.load(path) as data:
            arrays = [data[f"v{i}"] for i in range(len(data.files))]
    except (OSError, ValueError, KeyError) as e:
        raise FewShotError(f"{path}: cannot be read ({e}); the checkpoint is incomplete, start a new run") from None
    variables = optimizer.variables
    if len(arrays) != len(variables) or any(tuple(a.shape) != tuple(v.shape) for a, v in zip(arrays, variables)):
        raise FewShotError(f"{path}: optimizer state does not match the model ({len(arrays)} arrays for "
                           f"{len(variables)} variables); the checkpoint is from another run, start a new one")
    for a, v in zip(arrays, variables):
        v.assign(a.astype(v.dtype))



def _check_vocab_file(vocab_path, tokenizer, source):
    theirs = load_vocab(vocab_path)
    if theirs == tokenizer.token_dict:
        return
    if len(theirs) != len(tokenizer.token_dict):
        raise FewShotError(f"--vocab {vocab_path} has {len(theirs)} tokens but {source} uses {tokenizer.vocab_size}; "
                           f"the checkpoint fixes the vocabulary: drop --vocab")
    mine = sorted(tokenizer.token_dict.items(), key=lambda kv: kv[1])
    for (token, i), other in zip(mine, sorted(theirs.items(), key=lambda kv: kv[1])):
        if token != other[0]:
            raise FewShotError(f"--vocab {vocab_path} differs from {source}'s vocabulary at line {i + 1} "
                               f"({other[0]!r} vs {token!r}); the checkpoint fixes the vocabulary: drop --vocab")


def _check_init_architecture(c, bert, source):
    for key, attr in ARCH_FLAGS.items():
        value = getattr(c, key)
        if value is not None and value != getattr(bert, attr):
            raise FewShotError(f"{flag(key)} {value} conflicts with --init-from {source} ({attr}="
                               f"{getattr(bert, attr)}); the checkpoint fixes the architecture: drop {flag(key)}")


def build_model(c, resume_folder=None):
    """-> (bert, tokenizer). Must run inside the strategy scope (variables are created here)."""
    if resume_folder is not None:
        pretrained = load_mlm(resume_folder)
        return pretrained.model, pretrained.tokenizer
    if c.init_from is not None:
        pretrained = load_mlm(c.init_from)
        bert, tokenizer = pretrained.model, pretrained.tokenizer
        _check_init_architecture(c, bert, c.init_from)
        if c.vocab is not None:
            _check_vocab_file(c.vocab, tokenizer, c.init_from)
        if c.maxlen > bert.max_position:
            raise FewShotError(f"--maxlen {c.maxlen} exceeds the {bert.max_position} positions of --init-from "
                               f"{c.init_from}; use --maxlen {bert.max_position} or less")
        return bert, tokenizer
    tokenizer = Tokenizer(c.vocab or os.path.join(DEFAULT_MODEL, ckpt.VOCAB))
    bert = BertMaskedLM(vocab_size=tokenizer.vocab_size, hidden_size=c.hidden, num_layers=c.layers,
                        num_heads=c.heads, intermediate_size=c.intermediate, max_position=c.max_position,
                        pad_id=tokenizer.pad_id)
    return bert, tokenizer
