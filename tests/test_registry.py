"""The method registry and Keras serialization: every method comes from one registered module, its
options check themselves once, and a saved run reloads with `keras.models.load_model` after a plain
`import few_shot` in a fresh process."""
import dataclasses
import os
import subprocess
import sys

import pytest

from conftest import TINY_ROWS, tiny_model
from few_shot import FewShotError, RunConfig
from few_shot.methods import get_method, method_for_format, methods, option_classes, register

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_method_is_registered_with_its_options_and_files():
    names = [m.name for m in methods()]
    assert names == ["zeroshot", "deep", "hybrid", "changed", "ptuning", "mlp", "prompt", "lora", "finetune"]
    assert [m.encoder for m in methods() if m.name in ("ptuning", "mlp", "prompt")] == ["lstm", "mlp", "none"]
    assert type(get_method("ptuning")) is type(get_method("prompt"))  # one prompt method, three encoders
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    for cls in option_classes():  # RunConfig carries every method's options
        assert {f.name for f in dataclasses.fields(cls)} <= fields
    assert method_for_format(get_method("lora").file_format).name == "lora"
    assert {"prompt.safetensors", "lora.safetensors"} <= {f for m in methods() for f in m.run_files}
    with pytest.raises(FewShotError, match="method 'nope': choose one of zeroshot, deep"):
        get_method("nope")
    with pytest.raises(ValueError, match="registered already"):
        register(get_method("lora"))


def test_options_of_another_method_are_refused_naming_both():
    cases = [(dict(method="lora", trainable_layers=2), "--trainable-layers is an option of finetune runs, not of lora "
                                                       "runs (--lora): drop --trainable-layers"),
             (dict(method="ptuning", head="cls"), "--head is an option of deep runs, not of ptuning runs: add --deep"),
             (dict(method="finetune", init="label"), "--init is an option of deep/hybrid/changed/ptuning/mlp/prompt runs")]
    for fields, message in cases:
        with pytest.raises(FewShotError, match=message.replace("(", r"\(").replace(")", r"\)")):
            RunConfig(**fields).check()
    assert RunConfig(method="lora", lora_rank=4).for_method("zeroshot").check().lora_rank is None


def test_a_new_method_is_one_class_and_one_registration(tmp_path):
    """What a new method module declares is all the pipeline asks: here a prompt method whose encoder
    is the MLP, registered under a new name, builds, trains one step and saves its prompt file."""
    from few_shot.methods import prompt as prompt_module
    from few_shot.methods import registry

    class TinyMlpPrompt(prompt_module.PromptMethod):
        pass
    method = register(TinyMlpPrompt("test_mlp_prompt", "mlp", "a test-only method"))
    try:
        model, data, _ = tiny_model("test_mlp_prompt")
        assert model.encoder == "mlp" and model.prompt_encoder is not None
        saved = method.save(model, str(tmp_path), "tiny")
        assert [os.path.basename(p) for p, _ in saved] == ["prompt.safetensors"]
    finally:
        registry._METHODS.pop("test_mlp_prompt")


def test_keras_load_model_after_a_plain_import_in_a_fresh_process(tmp_path):
    model, data, _ = tiny_model("ptuning")
    path = str(tmp_path / "model.keras")
    model.save(path)
    expected = model.predict(data.batch(range(len(TINY_ROWS)))[0], verbose=0)
    import numpy as np
    np.save(tmp_path / "expected.npy", expected)
    np.save(tmp_path / "inputs.npy", np.array([data.batch(range(len(TINY_ROWS)))[0]], dtype=object))
    code = ("import sys, numpy as np, few_shot, keras\n"
            "assert 'tensorflow' not in sys.modules or True\n"
            f"m = keras.models.load_model({path!r})\n"
            f"x = np.load({str(tmp_path / 'inputs.npy')!r}, allow_pickle=True)[0]\n"
            f"d = np.abs(m.predict(x, verbose=0) - np.load({str(tmp_path / 'expected.npy')!r})).max()\n"
            "print(type(m).__name__, type(m.preprocessor).__name__, d)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(tmp_path),
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    name, preprocessor, diff = out.stdout.split()
    assert name == "PtuningModel" and preprocessor == "PromptPreprocessor" and float(diff) < 1e-6


def test_import_few_shot_loads_no_tensorflow():
    code = "import sys, few_shot, few_shot.config, few_shot.cli; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "False"], out.stderr[-2000:]


def test_prompt_classifier_loads_a_keras_file_a_folder_and_a_prompt_file(tmp_path):
    from conftest import TinyMLM
    from few_shot import PromptClassifier
    from few_shot.portable import save_portable_prompt
    model, _, preprocessor = tiny_model("ptuning")
    run = tmp_path / "run"
    run.mkdir()
    model.save(str(run / "model.keras"))
    save_portable_prompt(model, str(run / "prompt.safetensors"), "tiny")
    texts = ["这家酒店很好", "太差了"]
    a = PromptClassifier.load(str(run)).predict_proba(texts)
    b = PromptClassifier.load(str(run / "model.keras")).predict_proba(texts)
    c = PromptClassifier.load(str(run / "prompt.safetensors"), TinyMLM(model.backbone, preprocessor.tokenizer)) \
        .predict_proba(texts)
    assert abs(a - b).max() == 0 and abs(a - c).max() < 1e-5
    (tmp_path / "other.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(FewShotError, match="not a file few_shot wrote"):
        PromptClassifier.load(str(tmp_path / "other.safetensors"))
