"""Names imported on first use (PEP 562), so that importing a package loads neither TensorFlow nor
Keras until one of its heavy names is touched."""
import importlib


def lazy_exports(package, exports):
    """-> (`__getattr__`, `__dir__`) for `package` (its __name__) whose `exports` map each public name
    to the module that defines it."""
    def __getattr__(name):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__():
        return sorted(set(vars(importlib.import_module(package))) | set(exports))
    return __getattr__, __dir__
