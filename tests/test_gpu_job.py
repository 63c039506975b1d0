"""scripts/gpu_job.sh (the one-call GPU job) and its helpers, on the CPU: the tiny mode end to end, the
corpus filter of gpu_prepare.py and the pack/unpack round trip of gpu_transfer.py."""
import json
import lzma
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import gpu_prepare  # noqa: E402
import gpu_transfer  # noqa: E402

MAX_FILES, MAX_FILE_BYTES = 8, 16 * 2 ** 20  # what comes back from the GPU machine's $OUT


@pytest.mark.slow
def test_tiny_job_end_to_end_returns_bench_and_a_loadable_model(tmp_path):
    """GPU_JOB_TINY=1 runs every stage on the CPU (a subset of the benchmark, to stay near a minute): the
    returned files respect the limits, bench.json has every section, and the packed model rebuilds into a
    folder that load_mlm and transformers load, with the same logits."""
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "OUT": str(out), "GPU_JOB_WORK": str(work), "GPU_JOB_TINY": "1",
           "GPU_JOB_BENCH": "peak keras_torch", "GPU_JOB_PRECISIONS": "fp32"}
    proc = subprocess.run(["bash", os.path.join(ROOT, "scripts", "gpu_job.sh")], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    files = sorted(p for p in out.iterdir())
    assert all(p.is_file() for p in files) and len(files) <= MAX_FILES
    assert all(p.stat().st_size <= MAX_FILE_BYTES for p in files)
    names = {p.name for p in files}
    assert {"job.log", "bench.json", "pretrain.log", gpu_transfer.META_TAR, gpu_transfer.PARTS + ".000"} <= names

    bench = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    sections = {"machine", "peak_tflops", "eval", "train", "pipeline", "pretraining", "probe", "errors", "notes"}
    assert sections <= set(bench)
    import torch
    if not torch.cuda.is_available():
        assert bench["machine"]["device"] == "cpu"
    assert {"bf16", "fp32", "tf32"} <= set(bench["peak_tflops"])
    (ev,) = [r for r in bench["eval"] if r["name"] == "keras_torch_fp32"]
    assert "error" not in ev and ev["rows_per_s"] > 0 and ev["rows"] == 32 and ev["fraction_of_peak"] > 0
    (tr,) = [r for r in bench["train"] if r["name"] == "keras_torch_fp32_ptuning"]
    assert "error" not in tr and tr["samples_per_s"] > 0 and tr["batch"] == 8
    assert bench["pipeline"]["tokens_per_s"] > 0
    pre = bench["pretraining"]
    assert pre["steps"] == 20 and pre["config"]["mixed_precision"] and pre["model"]["num_hidden_layers"] == 2
    probes = {r["name"]: r for r in bench["probe"]}
    assert probes["pretrained"]["rows"] == 64 and 0 <= probes["pretrained"]["accuracy"] <= 1
    assert probes["transformers_loads_export"]["argmax_agree"] == 1.0
    assert bench["errors"] == []
    assert "[gpu_job" in (out / "job.log").read_text(encoding="utf-8")

    model_dir = tmp_path / "model"
    gpu_transfer.unpack(str(out), str(model_dir))
    from few_shot.loading import load_mlm
    mlm = load_mlm(str(model_dir))
    assert mlm.model.num_layers == 2 and mlm.model.hidden_size == 64
    import transformers
    hf = transformers.BertForMaskedLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    ids = np.array([mlm.tokenizer.encode("这家酒店很好")[0]], dtype="int32")
    import keras
    ours = keras.ops.convert_to_numpy(mlm.model({"token_ids": ids, "segment_ids": np.zeros_like(ids)}))
    with torch.inference_mode():
        theirs = hf(input_ids=torch.from_numpy(ids).long()).logits.numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert json.loads((model_dir / "pretrain_log.json").read_text(encoding="utf-8"))["steps"] == 20


def _write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_prepare_removes_lines_with_test_texts_and_fits_the_budget(tmp_path):
    """A line goes if it equals a test text (any length) or contains one of >= 4 characters, compared after
    NFKC / lower-case / whitespace removal; chid passages count piecewise around their #idiom# blanks."""
    shared = tmp_path / "shared"
    for task in gpu_prepare.TEST_FIELDS:
        _write_jsonl(shared / "data" / "fewclue" / task / "test_public.json", [])
    _write_jsonl(shared / "data" / "fewclue" / "tnews" / "test_public.json", [{"sentence": "农村依然很重视土葬"}])
    _write_jsonl(shared / "data" / "fewclue" / "bustm" / "test_public.json",
                 [{"sentence1": "几点啊", "sentence2": "喊我老公"}])
    _write_jsonl(shared / "data" / "fewclue" / "chid" / "test_public.json",
                 [{"content": "光伏电池或也将迎来从PERC到HJT#idiom#的历史性投资机遇期。自3月18日以来..."}])
    sentiment_text = open(os.path.join(ROOT, "data", "sentiment", "sentiment.test.data"),
                          encoding="utf-8").readline().rpartition("\t")[0]
    keep = ["这是一条普通的中文句子。", "几点啊你说", "今天天气不错，适合出门。"]
    drop = ["新闻：农村依然很重视 土葬。", "几点啊", "他说喊我老公吧", "ＰＥＲＣ到ＨＪＴ之后：光伏电池或也将迎来从perc到hjt",
            sentiment_text, "前言" + sentiment_text + "后记"]
    corpus = shared / "data" / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "zh_corpus.txt").write_text("\n".join(keep[:2] + drop[:3] + keep[2:] + drop[3:]) + "\n",
                                          encoding="utf-8")
    rng = np.random.default_rng(0)  # random characters: xz cannot squeeze them below the budget
    (corpus / "zh_corpus_extra.txt").write_text(
        "\n".join("".join(map(chr, rng.integers(0x4E00, 0x9FA5, 30))) for _ in range(2000)) + "\n", encoding="utf-8")
    out = tmp_path / "gpu"
    assert gpu_prepare.main(["--out", str(out), "--shared", str(shared), "--skip-wheels", "--budget-mib", "0.01"]) == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    main, extra = manifest["corpus"]
    assert main["removed_lines"] == len(drop) and main["shipped_documents"] == len(keep)
    assert main["removed_lines_per_source"]["fewclue/tnews/test_public.json"] == 1
    assert main["removed_lines_per_source"]["fewclue/chid/test_public.json"] == 1
    assert main["removed_lines_per_source"]["sentiment/sentiment.test.data"] == 2
    assert lzma.decompress((out / main["path"]).read_bytes()).decode("utf-8").splitlines() == keep
    assert 0 < extra["shipped_documents"] < 2000  # the extra corpus is cut to the budget
    assert manifest["corpus_xz_bytes"] <= manifest["corpus_xz_budget_bytes"] == int(0.01 * 2 ** 20)
    shipped = lzma.decompress((out / extra["path"]).read_bytes()).decode("utf-8").splitlines()
    assert len(shipped) == extra["shipped_documents"]


def test_transfer_round_trip_in_parts(tmp_path):
    """pack cuts float16 weights into parts; unpack checks and joins them and restores float32."""
    from safetensors.numpy import load_file, save_file
    src = tmp_path / "hf"
    src.mkdir()
    rng = np.random.default_rng(0)
    tensors = {"bert.embeddings.word_embeddings.weight": rng.normal(0, 0.02, (500, 64)).astype("float32"),
               "cls.predictions.bias": np.zeros(500, dtype="float32")}
    save_file(tensors, str(src / "model.safetensors"), metadata={"format": "pt"})
    (src / "config.json").write_text("{}", encoding="utf-8")
    (src / "vocab.txt").write_text("[PAD]\n", encoding="utf-8")
    out = tmp_path / "out"
    info = gpu_transfer.pack(str(src), str(out), part_mib=0.02)
    assert len(info["parts"]) == 4 and all((out / p).stat().st_size <= 0.02 * 2 ** 20 for p in info["parts"])
    dest = tmp_path / "back"
    gpu_transfer.unpack(str(out), str(dest))
    back = load_file(str(dest / "model.safetensors"))
    for name, value in tensors.items():
        assert back[name].dtype == np.float32
        np.testing.assert_allclose(back[name], value, atol=1e-4)
    assert json.loads((dest / "tokenizer_config.json").read_text())["tokenizer_class"] == "BertTokenizer"
    (out / info["parts"][1]).write_bytes(b"x")
    with pytest.raises(SystemExit, match="do not rebuild"):
        gpu_transfer.unpack(str(out), str(tmp_path / "bad"))


def test_pretraining_time_limit_stops_cleanly_and_mixed_precision_is_scoped(tmp_path):
    """--max-minutes ends the run after the step that crosses it, with a checkpoint and the HF export (what
    the GPU job returns if the data are slower than measured); --mixed-precision trains in bf16 and leaves
    Keras' global policy as it found it."""
    import keras

    from few_shot.pretraining import CHECKPOINT_DIR, HF_DIR, PretrainConfig, read_state, run_pretraining
    corpus = tmp_path / "corpus.txt"
    with open(os.path.join(ROOT, "data", "sentiment", "sentiment.train.data"), encoding="utf-8") as f:
        corpus.write_text("".join(line.split("\t")[0] + "\n" for _, line in zip(range(300), f)), encoding="utf-8")
    out = tmp_path / "run"
    before = keras.mixed_precision.dtype_policy().name
    log = run_pretraining(PretrainConfig(corpus=[str(corpus)], output=str(out), layers=1, hidden=32, heads=2,
                                         maxlen=32, batch_size=2, steps=50, max_minutes=1e-4, mixed_precision=True,
                                         progress=False))
    assert keras.mixed_precision.dtype_policy().name == before
    assert log["steps"] == 1 and log["stopped_at_time_limit"] == {"step": 1, "max_minutes": 1e-4}
    assert log["config"]["mixed_precision"] and log["config"]["steps"] == 50
    assert read_state(str(out))["step"] == 1 and (out / CHECKPOINT_DIR / "model.safetensors").exists()
    assert (out / HF_DIR / "model.safetensors").exists()
