"""Pre-trained prompt tuning (PPT, Gu et al. 2022): soft prompts trained on unlabelled text, with the MLM
frozen, in the formats of the downstream task shapes, then used to start a few-shot run's prompt
(`--prompt-init FILE`). Modules: `formats` (the self-supervised examples, pure Python), `config` (the
options and every check before TensorFlow), `run` (training, checkpoints, the portable prompt files).
The command is scripts/pretrain_prompts.py."""
