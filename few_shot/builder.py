"""`build_model(method, mlm, preprocessor, config)`: the one builder behind every script; the method
(few_shot/methods/) decides what is built."""
from few_shot.config import RunConfig
from few_shot.methods import get_method


def build_model(method, mlm, preprocessor, config=None):
    """-> the Keras model of `method` over `mlm` (a PretrainedMLM or a BertMaskedLM) and `preprocessor`
    (its label and prompt token ids); `config` (a RunConfig, default: the method's defaults) gives
    init, objective, seed and the method's options."""
    m = get_method(method)
    config = config or RunConfig(method=method)
    backbone = getattr(mlm, "model", mlm)
    # the same checks a run makes before loading anything, for callers that build directly
    m.check_pattern(preprocessor.pattern)
    m.check_model(config, backbone.bert_config())
    common = dict(objective=config.objective, seed=config.seed, preprocessor=preprocessor)
    return m.build(backbone, preprocessor, config, common)
