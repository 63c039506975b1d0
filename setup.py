"""Install with `pip install -e .` (add `[test]` for the test oracles: transformers + CPU torch; `[docs]` for
the documentation site: `pip install -e '.[docs]' && mkdocs serve`; `[serve]` for the multi-task server)."""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version():
    # Parsed, not imported: importing few_shot would import TensorFlow/Keras before they are installed.
    with open(os.path.join(HERE, "few_shot", "__init__.py"), encoding="utf-8") as f:
        match = re.search(r"""^__version__\s*=\s*['"]([^'"]+)['"]""", f.read(), re.M)
    if not match:
        raise RuntimeError("few_shot/__init__.py has no __version__ = '...' line")
    return match.group(1)


setup(
    name="few_shot",
    version=read_version(),
    description="Few-shot Chinese text classification with prompts (P-tuning) on a frozen BERT masked-LM",
    packages=find_packages(exclude=["tests", "tests.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.15,<3.16",
        "tensorflow-text>=2.21,<2.22",  # in-graph tokenizer of the exported SavedModel (few_shot/export.py)
        "tensorboard",  # keras.callbacks.TensorBoard writes each run's scalars
        "safetensors",
        "jieba",
        "numpy",
        "scikit-learn",  # metrics (macro-F1, confusion matrix) and the char TF-IDF + LR reference row
        "tqdm",
        "matplotlib",
        "huggingface_hub",
    ],
    extras_require={
        # torch is pinned exactly: a local CPU wheel of that version is on the build machines, and
        # a range would let pip fetch a multi-GB CUDA build instead.
        # jax: the pretraining path is tested on the torch and JAX backends (GPU machines without TF)
        "test": ["pytest", "transformers", "torch==2.13.0", "jax"],
        # the documentation site (mkdocs.yml; tests/test_docs.py builds it with --strict); mkdocs is held to the
        # 1.x series the site was built with (mkdocs 1.6, mkdocs-material 9.8, mkdocstrings 1.0 + python 2.0)
        "docs": ["mkdocs>=1.6,<2", "mkdocs-material>=9.5", "mkdocstrings[python]>=1.0"],
        # the multi-task server (few_shot_ptuning.py --serve, few_shot/serve.py): an ASGI app run by uvicorn; httpx
        # for its tests and scripts/load_test.py
        "serve": ["starlette>=0.37", "uvicorn>=0.29", "httpx"],
    },
)
