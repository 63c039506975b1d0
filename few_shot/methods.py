"""`build_model(method, mlm, preprocessor, config)`: the one builder behind every script.

    ptuning    BiLSTM + MLP prompt encoder over [unused] rows, frozen MLM (P-tuning)
    mlp        MLP prompt encoder, frozen MLM
    prompt     the prompt rows themselves train, frozen MLM (prompt tuning, Lester et al.)
    deep       prompt states at every layer of the frozen MLM (P-tuning v2; few_shot/deep.py)
    lora       LoRA adapters on the frozen MLM's Dense layers, same pattern (few_shot/lora.py)
    finetune   no prompt encoder; the MLM trains (all of it, or the last `trainable_layers`)
    zeroshot   no prompt, nothing trains: the hand-written pattern scored as it is
"""
from few_shot.config import METHODS, PROMPT_METHODS, RunConfig
from few_shot.errors import FewShotError


def build_model(method, mlm, preprocessor, config=None):
    """-> PtuningModel for `method` over `mlm` (a PretrainedMLM or a BertMaskedLM) and `preprocessor`
    (its label and prompt token ids); `config` gives init, objective, seed and trainable_layers."""
    from few_shot.ptuning import PtuningModel

    config = config or RunConfig(method=method)
    if method not in METHODS:
        raise FewShotError(f"method {method!r}: choose one of {', '.join(METHODS)}")
    backbone = getattr(mlm, "model", mlm)
    common = dict(objective=config.objective, seed=config.seed, preprocessor=preprocessor)
    labels, prompts = preprocessor.label_token_ids, preprocessor.prompt_token_ids
    if method in PROMPT_METHODS:
        if not prompts:
            raise FewShotError(f"{method}: pattern {preprocessor.pattern.template!r} has no soft-prompt slots "
                               f"[u1]..[uN] to train; add them (e.g. --prompt-length 8)")
        if method == "deep":
            from few_shot.deep import DeepPromptModel
            # --deep-reparam: the input prompt through an MLP too (the deeper states have their own)
            return DeepPromptModel(backbone, labels, prompts, encoder="mlp" if config.deep_reparam else "none",
                                   init=config.init, reparam=config.deep_reparam, head=config.head, **common)
        return PtuningModel(backbone, labels, prompts, encoder=PROMPT_METHODS[method], init=config.init, **common)
    if method == "lora":
        from few_shot.lora import LoraModel
        # the pattern's [unusedN] tokens keep their (frozen) embeddings, as in finetune
        return LoraModel(backbone, labels, prompts, lora_rank=config.rank, lora_targets=config.lora_targets,
                         **common)
    if method == "finetune":
        layers = backbone.num_layers
        if config.trainable_layers is not None and not 0 <= config.trainable_layers <= layers:
            raise FewShotError(f"--trainable-layers {config.trainable_layers}: the model has {layers} encoder "
                               f"layers; pass 0..{layers}")
        # encoder=None: the [unusedN] prompt tokens keep their own embeddings, trained with the rest
        return PtuningModel(backbone, labels, prompts, encoder=None, train_backbone=True,
                            trainable_layers=config.trainable_layers, **common)
    if prompts:
        raise FewShotError(f"zero-shot pattern {preprocessor.pattern.template!r} has soft-prompt slots, which are "
                           f"untrained; write the prompt in words, e.g. --pattern '[MASK]满意。{{text}}'")
    return PtuningModel(backbone, labels, encoder=None, **common)


def add_method_args(parser, script):
    """The command-line options of the methods beside P-tuning (few_shot_ptuning.py: deep prompts,
    ensembles, calibration; few_shot_finetune.py: LoRA, calibration)."""
    from few_shot.config import CALIBRATIONS, HEADS

    def positive(text):
        from few_shot.cli import positive_int
        return positive_int(text)

    g = parser.add_argument_group("methods (docs/readme_methods.md)")
    g.add_argument("--calibrate", choices=CALIBRATIONS, default=None,
                   help="contextual calibration of the label probabilities (zero-shot, evaluation, --predict): "
                        "divide by those of content-free inputs or the mean over unlabelled texts (--unlabeled "
                        "FILE, which in a training run also turns on --semi; else the rest of train)")
    if script == "finetune":
        g.add_argument("--lora", dest="lora_rank", type=positive, metavar="RANK",
                       help="LoRA: train rank-RANK adapters on the frozen MLM (e.g. 8) instead of finetuning it")
        g.add_argument("--lora-targets", default="qv",
                       help="LoRA layers of every encoder block: qv (query, value; default), all, or names from "
                            "query,key,value,attention_output,intermediate,output")
        g.add_argument("--merge-lora", metavar="RUN_DIR",
                       help="fold a LoRA run's adapters into the MLM's kernels for serving: writes "
                            "RUN_DIR/merged/model.keras (or --output), which --predict reads")
        return
    g.add_argument("--deep", action="store_true",
                   help="deep prompts (P-tuning v2): trainable prompt states at every layer of the frozen MLM")
    g.add_argument("--deep-reparam", action="store_true",
                   help="deep prompts through an MLP (P-tuning v2's reparameterisation)")
    g.add_argument("--head", choices=HEADS, default="mask",
                   help="deep prompts: label words at [MASK] (default) or a linear head on [CLS]")
    g.add_argument("--evaluate", nargs="+", metavar="RUN_DIR",
                   help="score trained prompts (run folders or prompt.safetensors; several = an ensemble, one "
                        "batched pass) on --data's valid and test rows")
