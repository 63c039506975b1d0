"""The files a run owns, and the one way they are removed.

A run folder may hold a user's own files, in it or inside the folders a run writes (backup/,
tensorboard/, hf/, ...). `--overwrite` and the checkpoint rotation therefore remove files by the
names the package writes (glob patterns relative to the folder, e.g. "backup/*.h5"), never a
folder wholesale: a folder goes only when removing the run's files left it empty.
"""
import contextlib
import glob
import os


def remove_owned(folder, patterns, keep_folder=True):
    """Remove the files under `folder` matching `patterns`, then the folders they lived in if that
    left them empty (`folder` too, with keep_folder=False) -> the folders kept because something else
    (a user's file) is still inside."""
    touched = set() if keep_folder or not os.path.isdir(folder) else {folder}
    for pattern in patterns:
        for path in glob.glob(os.path.join(glob.escape(folder), pattern)):
            if os.path.isdir(path) and not os.path.islink(path):
                continue  # a pattern names files; a folder that matches one is not the run's to remove
            # tolerant of a file gone meanwhile: another worker of a cluster may clear its backup too
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            parent = os.path.dirname(path)
            while os.path.abspath(parent) != os.path.abspath(folder):
                touched.add(parent)
                parent = os.path.dirname(parent)
    kept = []
    for path in sorted(touched, key=len, reverse=True):  # the deepest first
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:  # not empty: something that is not the run's is inside
            kept.append(path)
    return sorted(p for p in kept if not any(k != p and k.startswith(p + os.sep) for k in kept))


def move_leftovers(source, target):
    """After `target` replaced `source` (a checkpoint rotation): what is left in `source` once the run's
    own files are gone (a user's files) moves into `target`, then `source` goes. -> names moved."""
    moved = []
    for name in sorted(os.listdir(source)) if os.path.isdir(source) else ():
        destination = os.path.join(target, name)
        if not os.path.exists(destination):
            os.makedirs(target, exist_ok=True)
            os.rename(os.path.join(source, name), destination)
            moved.append(name)
    with contextlib.suppress(OSError):
        os.rmdir(source)
    return moved
