"""Reading few_shot's .keras files. Keras finds a custom class only once its module has run its
`register_keras_serializable` decorator: `register_classes()` imports every module whose classes a
model.keras may hold. `import few_shot` arranges for it to run as soon as Keras is imported (see
few_shot/__init__.py), so `keras.models.load_model` reads these files like any other."""
import os
import zipfile

from few_shot.errors import FewShotError, permission_denied

SERIALIZABLE_MODULES = ("few_shot.bert", "few_shot.layers", "few_shot.preprocessor", "few_shot.ptuning",
                        "few_shot.deep", "few_shot.lora")


def register_classes():
    import importlib
    for name in SERIALIZABLE_MODULES:
        importlib.import_module(name)


def load_model(path):
    """A few_shot .keras file -> the Keras model (uncompiled), or a one-line FewShotError."""
    if not os.path.isfile(path):
        raise FewShotError(f"{path}: not found; pass the --output folder of a finished training run or its "
                           f"model.keras")
    if not zipfile.is_zipfile(path):  # Keras would say "File not found" for a truncated file
        raise FewShotError(f"{path}: cannot be read as a few_shot model (not a complete .keras zip file); the "
                           f"file is damaged or not from few_shot: rerun the training")
    if not os.access(path, os.R_OK):
        raise permission_denied(path, "model file")
    register_classes()
    import keras
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:  # a foreign file: h5 or config errors of every kind
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise FewShotError(f"{path}: cannot be read as a few_shot model ({first}); the file is damaged or not "
                           f"from few_shot: rerun the training") from None
