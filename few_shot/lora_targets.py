"""LoRA's vocabulary, pure Python: the Dense layers of an encoder block that `--lora-targets` names,
and the adapters file. Read by the method's checks (before TensorFlow) and by the model."""
from few_shot.errors import FewShotError

LORA_LAYERS = ("query", "key", "value", "attention_output", "intermediate", "output")
LORA_TARGETS = {"qv": ("query", "value"), "all": LORA_LAYERS}
ADAPTERS_FILE = "lora.safetensors"
ADAPTERS_FORMAT = "few_shot.lora_adapters/1"


def lora_target_names(spec):
    """--lora-targets: qv, all, or comma-separated layer names -> tuple of names of LORA_LAYERS."""
    names = LORA_TARGETS.get(spec) or tuple(n.strip() for n in str(spec).split(",") if n.strip())
    unknown = [n for n in names if n not in LORA_LAYERS]
    if not names or unknown:
        raise FewShotError(f"--lora-targets {spec!r}: {unknown[0] if unknown else 'nothing'} matches no layer of an "
                           f"encoder block; use qv, all, or names from {', '.join(LORA_LAYERS)}")
    return tuple(dict.fromkeys(names))
