"""LoRA (Hu et al. 2021): rank-r adapters on the frozen MLM's Dense layers (Keras' `Dense.enable_lora`),
the same pattern and label words as P-tuning. Writes lora.safetensors (the adapters alone, a few
hundred KB); `--merge-lora RUN` folds them into the kernels for serving."""
import dataclasses
import os
from typing import Optional

from few_shot.argtypes import positive_int
from few_shot.errors import FewShotError
from few_shot.lora_targets import ADAPTERS_FILE, ADAPTERS_FORMAT, LORA_LAYERS, lora_target_names
from few_shot.methods.registry import Method

DEFAULT_RANK = 8


@dataclasses.dataclass
class LoraOptions:
    """Options of the lora method."""
    lora_rank: Optional[int] = dataclasses.field(default=None, metadata={"flag": "--lora"})  # None: DEFAULT_RANK
    lora_targets: str = "qv"  # qv, all, or comma-separated names of LORA_LAYERS

    def check(self):
        rank = self.lora_rank
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
            raise FewShotError(f"--lora {rank}: the rank must be a positive integer (e.g. 8)")
        lora_target_names(self.lora_targets)

    @property
    def rank(self):
        return DEFAULT_RANK if self.lora_rank is None else self.lora_rank


class LoraMethod(Method):
    name = "lora"
    script = "finetune"
    cli = "--lora"
    summary = "LoRA adapters on the frozen MLM's Dense layers"
    options = (LoraOptions,)
    run_files = (ADAPTERS_FILE,)
    file_format = ADAPTERS_FORMAT

    def add_arguments(self, group):
        group.add_argument("--lora", dest="lora_rank", type=positive_int, metavar="RANK",
                           help="LoRA: train rank-RANK adapters on the frozen MLM (e.g. 8) instead of finetuning it")
        group.add_argument("--lora-targets", default="qv",
                           help=f"LoRA layers of every encoder block: qv (query, value; default), all, or names from "
                                f"{','.join(LORA_LAYERS)}")
        group.add_argument("--merge-lora", metavar="RUN_DIR",
                           help="fold a LoRA run's adapters into the MLM's kernels for serving: writes "
                                "RUN_DIR/merged/model.keras (or --output), which --predict reads")

    def chosen_by(self, args):
        return getattr(args, "lora_rank", None) is not None

    def build(self, backbone, preprocessor, config, common):
        from few_shot.lora import LoraModel
        # the pattern's [unusedN] tokens keep their (frozen) embeddings, as in finetune
        return LoraModel(backbone, preprocessor.label_token_ids, preprocessor.prompt_token_ids,
                         lora_rank=config.rank, lora_targets=config.lora_targets,
                         **common)

    def save(self, model, output, model_ref):
        from few_shot.lora import save_adapters
        return [(save_adapters(model, os.path.join(output, ADAPTERS_FILE), model_ref), "LoRA adapters")]

    def load_file(self, path, mlm):
        from few_shot.lora import load_adapters
        return load_adapters(path, mlm)


def merge_run(run_dir, output=None):
    """--merge-lora RUN_DIR: RUN_DIR/model.keras (a LoRA run) -> OUTPUT (default RUN_DIR/merged)/model.keras
    + vocab.txt, which --predict reads like any run folder -> the output folder."""
    import shutil

    from few_shot.lora import LoraModel, merge_lora
    from few_shot.saving import load_model
    model = load_model(os.path.join(run_dir, "model.keras"))
    if not isinstance(model, LoraModel):
        raise FewShotError(f"--merge-lora {run_dir}: not a LoRA run (its model has no adapters); train one with "
                           f"few_shot_finetune.py --lora 8")
    output = output or os.path.join(run_dir, "merged")
    os.makedirs(output, exist_ok=True)
    merge_lora(model).save(os.path.join(output, "model.keras"))
    if os.path.isfile(os.path.join(run_dir, "vocab.txt")):
        shutil.copyfile(os.path.join(run_dir, "vocab.txt"), os.path.join(output, "vocab.txt"))
    return output
