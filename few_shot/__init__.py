"""few_shot: few-shot Chinese text classification with prompts (P-tuning) on a frozen BERT MLM.

    from few_shot import PromptClassifier, PtuningModel, PromptPreprocessor, build_model, load_mlm

Names are imported on first use (PEP 562), so `import few_shot` and the scripts' argument checks do
not load TensorFlow; low-level layers live in `few_shot.layers`. Once Keras is imported (by you or by
few_shot), the package's Keras classes are registered, so `keras.models.load_model("RUN/model.keras")`
reads a run's model after a plain `import few_shot`.
"""
import importlib
import importlib.abc
import importlib.util
import sys

from few_shot.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "BertMaskedLM": "few_shot.bert",
    "FewShotError": "few_shot.errors",
    "DEFAULT_MODEL": "few_shot.model_folder",
    "PretrainedMLM": "few_shot.loading",
    "load_mlm": "few_shot.loading",
    "Pattern": "few_shot.pattern",
    "Verbalizer": "few_shot.verbalizers",
    "PromptPreprocessor": "few_shot.preprocessor",
    "PtuningModel": "few_shot.ptuning",
    "RunConfig": "few_shot.config",
    "build_model": "few_shot.builder",
    "PromptClassifier": "few_shot.classifier",
    "export_saved_model": "few_shot.export",
    "save_portable_prompt": "few_shot.portable",
    "load_portable_prompt": "few_shot.portable",
    "Tokenizer": "few_shot.tokenizer",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


def _register_keras_classes():
    """Import the modules of every class a few_shot .keras file holds (few_shot/saving.py). Skipped while
    a few_shot module is itself importing Keras: its own import chain registers what it defines."""
    importing = [m for name, m in list(sys.modules.items())
                 if name.startswith("few_shot") and getattr(getattr(m, "__spec__", None), "_initializing", False)]
    if not importing:
        try:
            importlib.import_module("few_shot.saving").register_classes()
        except ImportError:  # a Keras backend without TensorFlow (torch/JAX pretraining): nothing to register
            pass


class _AfterKerasImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when `keras` is first imported it wraps the real loader so that the package's
    classes are registered right after Keras has loaded (TensorFlow is never loaded for it)."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            exec_module = spec.loader.exec_module

            def exec_then_register(module):
                exec_module(module)
                _register_keras_classes()
            spec.loader.exec_module = exec_then_register
        return spec


if "keras" in sys.modules:
    _register_keras_classes()
else:
    sys.meta_path.insert(0, _AfterKerasImport())
