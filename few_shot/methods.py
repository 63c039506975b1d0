"""`build_model(method, mlm, preprocessor, config)`: the one builder behind every script.

    ptuning    BiLSTM + MLP prompt encoder over [unused] rows, frozen MLM (P-tuning)
    mlp        MLP prompt encoder, frozen MLM
    prompt     the prompt rows themselves train, frozen MLM (prompt tuning, Lester et al.)
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
        return PtuningModel(backbone, labels, prompts, encoder=PROMPT_METHODS[method], init=config.init, **common)
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
