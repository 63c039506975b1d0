"""scripts/benchmark.py on a tiny random BERT (bundled vocab, so the sentiment rows and the verbalizer
words tokenize as with the real model), every stage in this process (--isolation none): the JSON has the
headline keys measured in that run, every path gives the same label scores, the torch re-implementation
of the seed's P-tuning scores and trains as few_shot's objective "vocab", bad input is a one-line exit 2."""
import importlib.util
import json
import os
import sys

import numpy as np
import pytest

from conftest import BUNDLED_MODEL_DIR, REPO_ROOT, build_tiny_bert

SCRIPT = os.path.join(REPO_ROOT, "scripts", "benchmark.py")
sys.path.insert(0, os.path.join(REPO_ROOT, "scripts"))
# a --quick-like run (eval + epoch; every eval path, so each is checked against few_shot's scores)
TINY = ["--isolation", "none", "--stages", "eval,epoch", "--rows", "40", "--repeats", "1", "--passes", "1",
        "--epoch-eval-rows", "16", "--maxlen", "32", "--eval-variants",
        "fast,fast_int8,transformers_dynamic,transformers_grouped,transformers_grouped_at_mask,transformers_padded,"
        "seed,naive", "--epoch-variants", "ours,ours_none,seed"]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("few_shot_benchmark_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_bert(folder, **extra):
    return build_tiny_bert(str(folder), os.path.join(BUNDLED_MODEL_DIR, "vocab.txt"), arch="masked_lm",
                           hidden_size=16, intermediate_size=32, **extra)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("bench") / "tiny-bert")


@pytest.fixture(scope="module")
def tiny_run(bench, tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_out") / "bench.json"
    result = bench.main(["--models", tiny_model, *TINY, "--json", str(out)])
    return json.loads(out.read_text(encoding="utf-8")), result


def test_json_has_the_headline_keys_measured_in_the_run(tiny_run):
    report, _ = tiny_run
    for key in ("eval_speedup_vs_transformers_dynamic", "eval_speedup_vs_transformers_grouped",
                "eval_speedup_vs_seed_path", "epoch_speedup_vs_seed_path", "eval_speedup_vs_transformers_dynamic_cpu",
                "epoch_speedup_vs_seed_path_cpu", "epoch_speedup_vs_seed_path_first_epoch", "peak_fraction",
                "peak_gflops"):
        assert isinstance(report[key], float) and report[key] > 0, key
    assert report["predictions_identical"] is True
    (entry,) = report["models"].values()
    fast = entry["eval"]["variants"]["fast"]
    assert report["peak_fraction"] == pytest.approx(fast["flops"] / fast["best_seconds"] / 1e9 / report["peak_gflops"])
    assert report["peak"]["fp32_gflops"] == report["peak_gflops"] and report["peak"]["int8_gops"] > 0
    assert set(report["targets"]) == {"eval_speedup_vs_transformers_dynamic", "epoch_speedup_vs_seed_path"}
    assert all(isinstance(t["met"], bool) for t in report["targets"].values())
    for key in ("cpu_count", "processor", "backend", "tensorflow", "torch", "transformers", "load_average_start",
                "load_average_end"):
        assert key in report["machine"], key
    assert report["machine"]["backend"] == "tensorflow"
    assert report["settings"]["isolation"] == "none" and report["settings"]["threads"] >= 1
    assert "--json" in report["command"]
    assert "| eval | **few_shot**" in report["table"] and "GFLOP/s" in report["table"]


def test_every_path_records_rows_tokens_flops_and_memory(tiny_run):
    report, _ = tiny_run
    (name, entry), = report["models"].items()
    assert report["rows"][name]["eval"] == 40
    assert report["rows"][name]["epoch"] == {"train_rows": 168, "passes": 1, "steps": 6, "valid_rows": 16,
                                             "test_rows": 16}
    variants = entry["eval"]["variants"]
    for r in variants.values():
        assert r["rows"] == 40 and len(r["seconds"]) == 1 and r["samples_per_s"] > 0 and r["samples_per_cpu_s"] > 0
        assert r["memory"]["peak_rss_mb"] > 0 and r["flops"] > 0 and 0 < r["peak_fraction"]
    assert variants["fast"]["batch_size"] == 128 and variants["transformers_dynamic"]["batch_size"] == 32
    assert variants["transformers_padded"]["padded_tokens"] == 40 * 32
    assert variants["transformers_grouped"]["padded_tokens"] <= variants["transformers_dynamic"]["padded_tokens"]
    # full logits cost more than the label words at [MASK] on the same tokens
    assert variants["transformers_grouped"]["flops"] > variants["transformers_grouped_at_mask"]["flops"]
    assert entry["eval"]["fast_jit_compile"] is False and variants["fast_int8"]["quantized_layers"] > 0
    assert set(entry["eval"]["int8"]) >= {"speedup", "argmax_agreement", "kept", "rule"}
    ours, seed = (entry["epoch"]["variants"][v] for v in ("ours", "seed"))
    for r in (ours, seed):
        assert r["seconds"] > 0 and r["cpu_seconds"] > 0 and 0.0 <= r["valid_acc"] <= 1.0 and r["steps"] == 6
        assert r["seconds"] >= r["train_seconds"] and r["warmup_seconds"] > 0 and r["flops"] > 0
    assert ours["samples"] == seed["samples"] == 168  # the same steps of the same sizes: 5 x 32 + 8
    assert ours["strategy"] == "MirroredStrategy" and entry["epoch"]["variants"]["ours_none"]["strategy"] != ours["strategy"]
    assert report["mirrored_strategy_cost"]["train"] > 0 and report["epoch_train_part_speedup_vs_seed_path"] > 0
    split = entry["epoch"]["split"]
    assert split["train_s"] == ours["train_seconds"] and 0 < split["tracing_share_of_first_epoch"] < 1


def test_every_fp32_path_gives_few_shots_label_scores(tiny_run):
    _, result = tiny_run
    e = next(iter(result["models"].values()))["eval"]
    for other in ("transformers_dynamic", "transformers_grouped", "transformers_grouped_at_mask",
                  "transformers_padded", "seed", "naive"):
        assert e[f"max_abs_diff_fast_vs_{other}"] < 1e-4, other
        assert e[f"argmax_mismatches_fast_vs_{other}"] == 0, other
    assert e["max_abs_diff_fast_vs_fast_int8"] < 0.5 and "fast_int8" not in e["predictions_compared"]


def test_train_stages_time_steps_after_warmup(bench, tiny_model):
    from bench import common, ours, peers
    from few_shot.paths import DEFAULT_DATA
    settings = {"maxlen": 32, "seed": 1, "threads": 2, "passes": 1, "train_steps": 2, "epoch_eval_rows": 8}
    data = common.make_bench("tiny", tiny_model, common.load_rows(DEFAULT_DATA), settings, eval_rows=8)
    r = ours.stage_train_step(data, "finetune")  # (p-tuning runs the same code, with a longer trace)
    assert r["steps"] == 2 and len(r["seconds"]) == 2 and r["samples"] == 64
    assert r["samples_per_s"] > 0 and r["samples_per_cpu_s"] > 0 and r["flops"] > 0
    assert r["trainable_params"] > 300_000 and r["lr"] == 1e-4  # the whole tiny MLM; few_shot_finetune.py's lr
    s = peers.stage_train_seed(data)
    assert s["steps"] == 2 and s["samples"] <= 64 and s["lr"] == 1e-5 and s["samples_per_s"] > 0
    assert s["trainable_params"] < r["trainable_params"] and s["memory"]["peak_rss_mb"] > 0


def test_seed_reimplementation_scores_and_trains_as_the_vocab_objective(bench, tmp_path):
    """With few_shot's prompt-encoder weights copied in and no random masking, the seed's torch path gives
    few_shot's label scores, its loss equals few_shot's objective "vocab" (full-vocabulary log-softmax at
    [MASK]) in training mode, and so do the gradients reaching the prompt encoder."""
    import keras
    import tensorflow as tf
    import torch

    from bench import common, seed
    from few_shot.paths import DEFAULT_DATA
    from few_shot.loading import load_mlm
    folder = tiny_bert(tmp_path / "bert", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    settings = {"maxlen": 32, "seed": 3, "threads": 2, "passes": 1, "epoch_eval_rows": 8}
    data = common.make_bench("tiny", folder, common.load_rows(DEFAULT_DATA), settings, eval_rows=8)
    ours, _ = common.build_ours("ptuning", data, load_mlm(folder), objective="vocab")
    theirs = seed.SeedPtuning(folder, data.prompt_ids)
    seed.load_prompt_weights(theirs.prompt_encoder, seed.keras_prompt_weights(ours))
    rows = np.arange(8)
    tok = data.tokenizer
    source, target, pseudo = seed.seed_batch(data.train_set, rows, data.label_ids, data.prompt_ids, tok.mask_id,
                                             tok.vocab_size, np.random.default_rng(0), mlm=False)
    inputs, labels = data.train_set.batch(rows)
    np.testing.assert_array_equal(source.numpy(), inputs["token_ids"])
    assert (target != 0).sum() == 8  # one target per row: the label word at [MASK]
    np.testing.assert_allclose(theirs.prompt_encoder().detach().numpy(),
                               keras.ops.convert_to_numpy(ours.prompt_embeddings()), atol=1e-5)
    theirs.train()
    logits = theirs(source, pseudo)
    loss = seed.seed_loss(logits, target)
    loss.backward()
    with tf.GradientTape() as tape:
        ours_loss = tf.reduce_mean(ours.loss_function()(labels, ours(inputs, training=True)))
    mlp_kernel = ours.prompt_encoder.mlp[1].kernel
    (grad,) = tape.gradient(ours_loss, [mlp_kernel])
    assert float(loss.detach()) == pytest.approx(float(ours_loss), rel=1e-4)
    np.testing.assert_allclose(theirs.prompt_encoder.mlp_head[2].weight.grad.numpy().T, grad.numpy(), atol=1e-5)
    scores = common.label_scores_at_mask(logits.detach(), torch.as_tensor(inputs["mask_positions"]).long(),
                                         torch.as_tensor(data.label_ids)).numpy()
    np.testing.assert_allclose(scores, keras.ops.convert_to_numpy(ours(inputs, training=False)), atol=1e-4)


def test_seed_batches_mask_at_random_and_target_the_label_word(bench):
    from bench import seed

    class Rows:  # two encoded rows, the second unlabelled
        token_ids = [[101, 1, 103, 2, 500, 600, 102], [101, 1, 103, 2, 700, 102]]
        mask_positions = np.array([[2], [2]])
        labels = np.array([1, -1])
    rng = np.random.default_rng(0)
    source, target, pseudo = seed.seed_batch(Rows, [0, 1], [[11], [22]], [1, 2], 103, 1000, rng)
    assert source.shape == target.shape == pseudo.shape == (2, 7)  # padded to the longer row
    assert target[0, 2] == 22 and target[1, 2] == 0 and source[0, 2] == source[1, 2] == 103
    assert pseudo[0].tolist() == [0, -1, 0, -1, 0, 0, 0] and source[1, 6] == 0
    many = [seed.random_masking(list(range(1, 1001)), rng, 103, 1000) for _ in range(5)]
    share = np.mean([t != 0 for _, targets in many for t in targets])
    assert 0.12 < share < 0.18  # the seed's 15%


def test_flops_count_the_encoder_as_transformers_holds_it(tiny_model):
    import transformers

    from bench import flops
    from bench.common import model_shape
    model = transformers.BertForMaskedLM.from_pretrained(tiny_model)
    shape = model_shape(tiny_model)
    assert flops.encoder_params(shape) == sum(p.numel() for p in model.bert.encoder.parameters())
    batches = [(2, 10), (3, 4)]
    assert flops.tokens(batches) == 32
    assert flops.attention_flops(shape, batches) == 4 * 2 * 16 * (2 * 100 + 3 * 16)
    full, mask = (flops.eval_flops(shape, batches, 5, 1, full) for full in (True, False))
    assert full - mask == flops.head_flops(shape, 32, shape["vocab"]) - flops.head_flops(shape, 5, 2)
    assert flops.train_flops(shape, batches, 5, 2, encoder_trains=True) > flops.train_flops(shape, batches, 5, 2)


def test_label_scores_at_mask_sums_the_slots(bench):
    from bench.common import label_scores_at_mask
    logits = np.arange(2 * 5 * 7, dtype="float32").reshape(2, 5, 7)
    masks = np.array([[1, 2], [3, 4]])
    label_ids = [[6, 5], [0, 1]]
    scores = label_scores_at_mask(logits, masks, label_ids)
    expected = [[logits[b, masks[b, 0], w[0]] + logits[b, masks[b, 1], w[1]] for w in label_ids] for b in range(2)]
    np.testing.assert_allclose(scores, expected)


def _boom():
    raise ValueError("stage exploded")


def test_forked_stage_returns_its_result_and_reports_its_failure(bench):
    from bench.common import run_stage
    result = run_stage(dict, "fork", answer=42)
    assert result["answer"] == 42 and result["stage_wall_seconds"] >= 0
    with pytest.raises(RuntimeError, match="stage exploded"):
        run_stage(_boom, "fork")


@pytest.mark.parametrize("extra,needle", [
    (["--stages", "eval,magic"], "unknown magic"),
    (["--eval-variants", "fast,warp"], "unknown warp"),
    (["--rows", "0"], "--rows 0"),
    (["--models", "no/such/folder"], "no/such/folder"),
])
def test_bad_input_is_one_line_exit_2(bench, tmp_path, capsys, extra, needle):
    with pytest.raises(SystemExit) as e:
        bench.main(["--isolation", "none", "--json", str(tmp_path / "b.json"), *extra])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert not (tmp_path / "b.json").exists()


def test_refuses_to_overwrite_json_without_flag(bench, tmp_path, capsys):
    path = tmp_path / "bench.json"
    path.write_text("{}")
    with pytest.raises(SystemExit) as e:
        bench.main(["--quick", "--json", str(path)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(path) in err[0] and "--overwrite" in err[0], err
    assert path.read_text() == "{}"


def test_threads_stage_times_eval_and_train_per_setting(bench, tiny_model):
    from bench import common, ours
    from few_shot.paths import DEFAULT_DATA
    settings = {"maxlen": 32, "seed": 1, "threads": 1, "passes": 1, "train_steps": 1, "epoch_eval_rows": 8}
    data = common.make_bench("tiny", tiny_model, common.load_rows(DEFAULT_DATA), settings, eval_rows=8)
    r = ours.stage_threads(data, intra=1, inter=1)  # in this process: TensorFlow runs here already
    assert r["intra"] == r["inter"] == 1 and set(r["threads"]) == {"tensorflow_intra_op", "tensorflow_inter_op"}
    assert r["samples_per_s"] > 0 and r["train_samples_per_s"] > 0 and r["train_samples_per_cpu_s"] > 0


def test_quick_plan_has_the_peers_the_headline_needs(bench):
    settings = bench.resolve_settings(bench.build_parser().parse_args(["--quick", "--isolation", "none"]))
    plan = bench.plan_stages(settings)
    assert plan[0][1] == "peak"
    assert {("mini", "eval", v) for v in ("fast", "transformers_dynamic", "seed")} <= set(plan)
    assert {("mini", "epoch", "ours"), ("mini", "epoch", "seed")} <= set(plan)


def test_benchmark_scripts_stay_small():
    """No benchmark module over ~400 lines: benchmark.py and gpu_bench.py are split into scripts/bench/."""
    scripts = os.path.join(REPO_ROOT, "scripts")
    paths = [os.path.join(scripts, "benchmark.py"), os.path.join(scripts, "gpu_bench.py")]
    paths += [os.path.join(scripts, "bench", n) for n in os.listdir(os.path.join(scripts, "bench")) if n.endswith(".py")]
    for path in paths:
        with open(path, encoding="utf-8") as f:
            assert sum(1 for _ in f) <= 400, path
