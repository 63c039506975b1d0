"""The method registry. A training method is one module under few_shot/methods/ that declares a
`Method`: its name and script, its options (a dataclass whose fields become RunConfig fields, with
defaults and one `check`), its command-line flags, its builder, and the files it writes to and reads
from a run folder. `few_shot/methods/__init__.py` registers each with one line; run.py, run_folder.py,
the classifier and the scripts ask the registry instead of naming methods.

Pure Python: the registry and every method's checks run before TensorFlow loads (builders import
the model classes when called)."""
import dataclasses

from few_shot.errors import FewShotError

_METHODS = {}


def flag(options_class, name):
    """The command-line flag of an options field (`metadata={"flag": ...}`, else --field-name)."""
    field = next(f for f in dataclasses.fields(options_class) if f.name == name)
    return field.metadata.get("flag", "--" + name.replace("_", "-"))


class Method:
    """Base class: override what the method needs. Instances are registered (one line each)."""
    name = None
    script = "ptuning"        # which top-level script offers it: ptuning (few_shot_ptuning.py) or finetune
    summary = ""              # one line, for --help and the docs
    default_lr = 1e-3
    options = ()              # the options dataclasses it reads (their fields are RunConfig fields)
    run_files = ()            # files it adds to a run folder (besides model.keras, metrics.json, ...)
    file_format = None        # the `format` in the header of its small .safetensors file, if it writes one
    trains = True             # False: scored as it is (zero-shot)
    encoder = None            # the prompt encoder in front of the frozen MLM, if any
    cli = None                # the flag that asks for it on the command line (None: its script's default)

    def add_arguments(self, group):
        """Its flags, in its script's parser (called once per Method class)."""

    def chosen_by(self, args):
        """Did the command line ask for this method? (The script's first registered method that says
        yes is run.)"""
        return False

    def check(self, config):
        """Checks of this method that involve more than its own options (which check themselves)."""

    def default_pattern(self, hand_written, soft, prompt_length):
        """The pattern when --pattern is not given: the soft one (the P-tuning pattern, or [u1..uN] for
        --prompt-length N), or the task's / verbalizer's hand-written one."""
        return soft

    def check_pattern(self, pattern):
        """The pattern suits the method (e.g. it has [uN] slots for a prompt to train)."""

    def check_model(self, config, shape):
        """Its options against the checkpoint's config.json (`shape`, read without loading the model)."""

    def build(self, backbone, preprocessor, config, common):
        """-> the Keras model (a PtuningModel or subclass). `common`: objective, seed, preprocessor."""
        raise NotImplementedError

    def save(self, model, output, model_ref):
        """Write its small files into the run folder `output` -> [(path, what it is)]."""
        return []

    def load_file(self, path, mlm):
        """The model saved in its small file at `path`, on `mlm` (a PretrainedMLM, a folder or None)."""
        raise FewShotError(f"{path}: {self.name} runs write no file of their own; pass the run folder")


def register(method):
    """Add a Method instance to the registry (its name must be new)."""
    if not method.name or method.name in _METHODS:
        raise ValueError(f"method name {method.name!r} is empty or registered already")
    _METHODS[method.name] = method
    return method


def get_method(name):
    """The registered Method called `name` -> FewShotError naming the choices."""
    if name not in _METHODS:
        raise FewShotError(f"method {name!r}: choose one of {', '.join(_METHODS)}")
    return _METHODS[name]


def methods(script=None):
    """The registered methods (of one script), in registration order."""
    return [m for m in _METHODS.values() if script is None or m.script == script]


def method_for_format(fmt):
    """The method whose small file carries `fmt` in its header, or None."""
    return next((m for m in _METHODS.values() if fmt is not None and m.file_format == fmt), None)


def option_classes():
    """Every options dataclass of the registered methods, once, in registration order."""
    return list(dict.fromkeys(cls for m in _METHODS.values() for cls in m.options))
