"""scripts/benchmark.py on a tiny random BERT (bundled vocab, so the sentiment rows and the verbalizer
words tokenize as with the real model), every stage in this process (--isolation none): the JSON
has the ratios, the fast and naive paths give the same label scores, bad input is a one-line exit 2."""
import importlib.util
import json
import os

import numpy as np
import pytest

from conftest import BUNDLED_MODEL_DIR, REPO_ROOT, build_tiny_bert

SCRIPT = os.path.join(REPO_ROOT, "scripts", "benchmark.py")
# the stages the JSON's required keys need; the train stage has its own test (tracing is most of the time)
TINY = ["--isolation", "none", "--stages", "eval,epoch", "--rows", "40", "--repeats", "1", "--passes", "1",
        "--epoch-eval-rows", "16", "--maxlen", "32"]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("few_shot_benchmark_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench") / "tiny-bert"
    return build_tiny_bert(str(folder), os.path.join(BUNDLED_MODEL_DIR, "vocab.txt"), arch="masked_lm",
                           hidden_size=16, intermediate_size=32)


@pytest.fixture(scope="module")
def tiny_run(bench, tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_out") / "bench.json"
    result = bench.main(["--models", tiny_model, *TINY, "--json", str(out)])
    return json.loads(out.read_text(encoding="utf-8")), result


def test_json_has_the_ratios_and_identical_predictions(tiny_run):
    report, _ = tiny_run
    for key in ("eval_speedup_vs_transformers", "eval_speedup_vs_naive", "epoch_speedup_vs_naive",
                "eval_speedup_vs_transformers_cpu", "epoch_speedup_vs_naive_cpu"):
        assert isinstance(report[key], float) and report[key] > 0, key
    assert report["predictions_identical"] is True
    for key in ("cpu_count", "processor", "backend", "tensorflow", "torch", "transformers"):
        assert key in report["machine"], key
    assert report["machine"]["backend"] == "tensorflow"
    assert report["settings"]["isolation"] == "none" and report["settings"]["threads"] >= 1
    assert "--json" in report["command"]
    assert "| eval | few_shot fast" in report["table"]


def test_every_stage_records_rows_timings_and_memory(tiny_run):
    report, _ = tiny_run
    (name, entry), = report["models"].items()
    assert report["rows"][name]["eval"] == 40
    assert report["rows"][name]["epoch"] == {"train_rows": 168, "passes": 1, "steps": 6, "valid_rows": 16,
                                             "test_rows": 16}
    for variant in ("fast", "fast_xla", "naive", "transformers"):
        r = entry["eval"]["variants"][variant]
        assert r["rows"] == 40 and len(r["seconds"]) == 1 and r["samples_per_s"] > 0 and r["samples_per_cpu_s"] > 0
        assert r["memory"]["peak_rss_mb"] > 0
    assert entry["eval"]["variants"]["naive"]["batch_size"] == 32
    assert entry["eval"]["variants"]["fast"]["padded_tokens"] <= entry["eval"]["variants"]["naive"]["padded_tokens"]
    # the headline is the path the scripts run (no XLA); XLA pads to multiples of 16 (few compiles)
    assert entry["eval"]["fast_jit_compile"] is False
    assert entry["eval"]["fast_samples_per_s"] == entry["eval"]["variants"]["fast"]["samples_per_s"]
    xla = entry["eval"]["variants"]["fast_xla"]
    assert xla["pad_multiple"] == 16 and entry["eval"]["variants"]["fast"]["pad_multiple"] == 1
    assert xla["padded_tokens"] % 16 == 0 and xla["first_pass"]["seconds"] > 0
    for variant in ("ours", "naive"):
        r = entry["epoch"]["variants"][variant]
        assert r["seconds"] > 0 and r["cpu_seconds"] > 0 and 0.0 <= r["valid_acc"] <= 1.0 and r["steps"] == 6


def test_fast_naive_and_transformers_scores_agree(tiny_run):
    _, result = tiny_run
    e = next(iter(result["models"].values()))["eval"]
    assert e["max_abs_diff_fast_vs_naive"] < 1e-4
    assert e["max_abs_diff_fast_vs_fast_xla"] < 1e-4
    assert e["max_abs_diff_fast_vs_transformers"] < 1e-4
    assert e["argmax_mismatches_fast_vs_naive"] == 0 and e["predictions_identical_transformers"]


def test_train_stage_times_steps_after_warmup(bench, tiny_model):
    settings = {"maxlen": 32, "seed": 1, "threads": 2, "passes": 1, "train_steps": 2, "epoch_eval_rows": 8}
    from few_shot.cli import DEFAULT_DATA
    data = bench.make_bench("tiny", tiny_model, bench.load_rows(DEFAULT_DATA), settings, eval_rows=8)
    r = bench.stage_train_step(data, "finetune")  # (p-tuning runs the same code, with a longer trace)
    assert r["steps"] == 2 and len(r["seconds"]) == 2 and r["samples"] == 64
    assert r["samples_per_s"] > 0 and r["samples_per_cpu_s"] > 0
    assert r["trainable_params"] > 300_000 and r["lr"] == 1e-4  # the whole tiny MLM; few_shot_finetune.py's lr
    assert r["memory"]["peak_rss_mb"] > 0


def test_label_scores_at_mask_sums_the_slots(bench):
    logits = np.arange(2 * 5 * 7, dtype="float32").reshape(2, 5, 7)
    masks = np.array([[1, 2], [3, 4]])
    label_ids = [[6, 5], [0, 1]]
    scores = bench.label_scores_at_mask(logits, masks, label_ids)
    expected = [[logits[b, masks[b, 0], w[0]] + logits[b, masks[b, 1], w[1]] for w in label_ids] for b in range(2)]
    np.testing.assert_allclose(scores, expected)


def _boom():
    raise ValueError("stage exploded")


def test_forked_stage_returns_its_result_and_reports_its_failure(bench):
    result = bench.run_stage(dict, "fork", answer=42)
    assert result["answer"] == 42 and result["stage_wall_seconds"] >= 0
    with pytest.raises(RuntimeError, match="stage exploded"):
        bench.run_stage(_boom, "fork")


@pytest.mark.parametrize("extra,needle", [
    (["--stages", "eval,magic"], "unknown magic"),
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


@pytest.mark.parametrize("objective", ["label", "vocab"])
def test_naive_trainer_scores_as_the_model_through_full_vocabulary_logits(bench, tmp_path, objective):
    from few_shot.loading import load_mlm
    from few_shot.ptuning import PtuningModel
    # no dropout, so that training=True is deterministic too
    mlm = load_mlm(build_tiny_bert(str(tmp_path / "bert"), os.path.join(BUNDLED_MODEL_DIR, "vocab.txt"),
                                   arch="masked_lm", hidden_size=16, intermediate_size=32,
                                   hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    tok = mlm.tokenizer
    model = PtuningModel(mlm.model, [[tok.token_to_id("不")], [tok.token_to_id("很")]],
                         [tok.token_to_id(f"[unused{i}]") for i in range(1, 5)], objective=objective, seed=3)
    ids = np.array([[101, 1, 2, 103, 3, 4, 6821, 2523, 102, 0, 0], [101, 1, 2, 103, 3, 4, 679, 102, 0, 0, 0]])
    inputs = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "mask_positions": np.array([[3], [3]])}
    naive = bench.full_logits_trainer(model)
    for training in (False, True):  # vocab + training: full-vocabulary log-probs, computed two ways
        np.testing.assert_allclose(np.asarray(naive(inputs, training=training)),
                                   np.asarray(model(inputs, training=training)), atol=1e-4)
    assert {id(w) for w in naive.trainable_weights} == {id(w) for w in model.trainable_weights}


def test_epoch_ours_and_naive_train_the_same_model(tiny_run):
    report, _ = tiny_run
    ours, naive = (next(iter(report["models"].values()))["epoch"]["variants"][v] for v in ("ours", "naive"))
    assert ours["loss"] == pytest.approx(naive["loss"], rel=1e-3)
    assert ours["valid_acc"] == naive["valid_acc"] and ours["test_acc"] == naive["test_acc"]
