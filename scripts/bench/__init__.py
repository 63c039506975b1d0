"""The pieces of scripts/benchmark.py (CPU: few_shot against its peers) and scripts/gpu_bench.py (the
GPU job's measurements): stages, peers, FLOP counting and reporting, each in its own module.

    common.py     Bench (one model's inputs), clocks, peak-memory meter, forked stages, machine info
    flops.py      FLOPs of a BERT pass from its shape and the padded tokens (shared with gpu_bench.py)
    ours.py       few_shot's stages: matmul peak, Scorer eval (+ XLA, int8), train step, epoch, threads
    seed.py       a torch re-implementation of the seed's P-tuning (wakafengfan/p-tuning_NLU)
    peers.py      torch stages: transformers BertForMaskedLM eval, the seed's eval/train step/epoch
    report.py     ratios, agreement, FLOP fractions, the headline keys and the markdown table
    gpu_*.py      scripts/gpu_bench.py's subcommands
"""
