"""few_shot: few-shot Chinese text classification with prompts (P-tuning) on a frozen BERT MLM.

    from few_shot import PromptClassifier, PtuningModel, PromptPreprocessor, build_model, load_mlm

Names are imported on first use (PEP 562), so `import few_shot` and the scripts' argument checks do
not load TensorFlow; low-level layers live in `few_shot.layers`.
"""
import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "BertMaskedLM": "few_shot.bert",
    "FewShotError": "few_shot.errors",
    "DEFAULT_MODEL": "few_shot.loading",
    "PretrainedMLM": "few_shot.loading",
    "load_mlm": "few_shot.loading",
    "Pattern": "few_shot.pattern",
    "Verbalizer": "few_shot.verbalizers",
    "PromptPreprocessor": "few_shot.preprocessor",
    "PtuningModel": "few_shot.ptuning",
    "RunConfig": "few_shot.config",
    "build_model": "few_shot.methods",
    "PromptClassifier": "few_shot.classifier",
    "export_saved_model": "few_shot.export",
    "save_portable_prompt": "few_shot.portable",
    "load_portable_prompt": "few_shot.portable",
    "portable_classifier": "few_shot.portable",
    "Tokenizer": "few_shot.tokenizer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'few_shot' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
