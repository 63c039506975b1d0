"""few_shot: few-shot Chinese text classification with prompts (P-tuning) on a frozen BERT MLM."""
from few_shot.bert import BertMaskedLM
from few_shot.errors import FewShotError
from few_shot.layers import PromptEncoder
from few_shot.loading import DEFAULT_MODEL, PretrainedMLM, load_mlm
from few_shot.pattern import Pattern, Verbalizer
from few_shot.ptuning import PtuningModel
from few_shot.tokenizer import Tokenizer

__version__ = "0.1.0"

__all__ = ["BertMaskedLM", "DEFAULT_MODEL", "FewShotError", "Pattern", "PretrainedMLM", "PromptEncoder",
           "PtuningModel", "Tokenizer", "Verbalizer", "load_mlm"]
