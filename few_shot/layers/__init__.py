from few_shot.layers.bert_embeddings import BertEmbeddings
from few_shot.layers.masked_lm_head import MaskedLMHead
from few_shot.layers.transformer_encoder import TransformerEncoder, gelu_erf
from few_shot.layers.prompt_encoder import PromptEncoder
from few_shot.layers.lora_dense import LoraDense
from few_shot.layers.deep_prompt import DeepPromptEncoder
