"""MLM pretraining: corpus checks, packing, (whole-word) masking, a tiny training run, exports, resume.

About a minute on 2 CPU cores: one 30-step tiny run is shared by the training/export/resume tests.
"""
import contextlib
import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from few_shot.errors import FewShotError  # noqa: E402
from few_shot.batching import pad_batch  # noqa: E402
from few_shot.loading import load_mlm  # noqa: E402
from few_shot.paths import DEFAULT_MODEL  # noqa: E402
from few_shot.masking import CJK, BlockStream, DocumentTokenizer, Masker  # noqa: E402
from few_shot.pretraining import (  # noqa: E402
    CHECKPOINT_DIR, LOG_FILE, OPTIMIZER_FILE, STATE_FILE, BadLineWarning, MLMBatches, PretrainConfig, PretrainingRun,
    check_output, read_corpus, run_pretraining)
from few_shot.tokenizer import Tokenizer, _is_cjk  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SENTIMENT = os.path.join(ROOT, "data", "sentiment", "sentiment.train.data")
TINY = dict(layers=2, hidden=64, heads=2, maxlen=64, batch_size=16, progress=False)


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer(os.path.join(DEFAULT_MODEL, "vocab.txt"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """300 real documents (review texts of the bundled sentiment data, which the corpus also holds)."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    with open(SENTIMENT, encoding="utf-8") as f:
        docs = [line.rsplit("\t", 1)[0].strip() for _, line in zip(range(300), f)]
    path.write_text("\n".join(docs) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def probe_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("probe") / "probe.tsv"
    with open(os.path.join(ROOT, "data", "sentiment", "sentiment.valid.data"), encoding="utf-8") as f:
        path.write_text("".join(line for _, line in zip(range(16), f)), encoding="utf-8")
    return str(path)


def _config(corpus, output, **kwargs):
    return PretrainConfig(**{"corpus": [corpus], "output": str(output), **TINY, **kwargs})


def _one_line_error(excinfo, *parts):
    message = str(excinfo.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message
    return message


# -- corpus / arguments ------------------------------------------------------------------------

@pytest.mark.parametrize("content, expected", [
    (b"", "no documents"),
    (b"\n   \n\t\n", "no documents"),
    (b"hello world\nonly latin text 123\n", "no Chinese (CJK) characters"),
])
def test_bad_corpus_is_a_one_line_error(tmp_path, content, expected):
    path = tmp_path / "c.txt"
    path.write_bytes(content)
    with pytest.raises(FewShotError) as e:
        read_corpus([str(path)])
    _one_line_error(e, str(path), expected)
    with pytest.raises(FewShotError) as e:
        read_corpus([str(tmp_path / "missing.txt")])
    _one_line_error(e, "missing.txt", "not found")


def test_non_utf8_lines_stop_with_line_numbers_or_skip_with_a_warning(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes("第一行很好\n".encode() + "第二行是GBK\n".encode("gbk") + "第三行\n".encode()
                     + "第四行也是\n".encode("gbk"))
    with pytest.raises(FewShotError) as e:
        read_corpus([str(path)])
    _one_line_error(e, "lines 2, 4", "not valid UTF-8", "--on-bad-line skip")
    with pytest.warns(BadLineWarning, match="skipped 2 lines"):
        docs, info = read_corpus([str(path)], on_bad_line="skip")
    assert docs == ["第一行很好", "第三行"] and info[0]["skipped_lines"] == 2


def test_output_folder_must_be_empty_unless_overwrite_or_resume(tmp_path, corpus):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(FewShotError) as e:
        check_output(_config(corpus, tmp_path))
    _one_line_error(e, "not empty", "--overwrite", "--resume")
    check_output(_config(corpus, tmp_path, overwrite=True))
    with pytest.raises(FewShotError) as e:
        check_output(_config(corpus, tmp_path, resume=True))
    _one_line_error(e, "no checkpoint to resume from")


def test_init_from_with_a_different_vocab_is_refused(tmp_path, corpus):
    with open(os.path.join(DEFAULT_MODEL, "vocab.txt"), encoding="utf-8") as f:
        tokens = f.read().rstrip("\n").split("\n")  # not splitlines(): the vocab holds U+2028
    shorter = tmp_path / "short.txt"
    shorter.write_text("\n".join(tokens[:-5]) + "\n", encoding="utf-8")
    swapped = tmp_path / "swapped.txt"
    swapped.write_text("\n".join(tokens[:2000] + [tokens[2001], tokens[2000]] + tokens[2002:]) + "\n",
                       encoding="utf-8")
    base = dict(corpus=[corpus], init_from=DEFAULT_MODEL, steps=1, progress=False)
    with pytest.raises(FewShotError) as e:
        run_pretraining(PretrainConfig(output=str(tmp_path / "a"), vocab=str(shorter), **base))
    _one_line_error(e, "21123 tokens", "21128", "drop --vocab")
    with pytest.raises(FewShotError) as e:
        run_pretraining(PretrainConfig(output=str(tmp_path / "b"), vocab=str(swapped), **base))
    _one_line_error(e, "line 2001", "drop --vocab")


def test_cli_prints_one_line_error_and_exits_2(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "pretrain_mlm.py"), "--corpus", str(empty),
                           "--output", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "no documents" in errors[0], proc.stderr


# -- tokenisation, packing, masking -------------------------------------------------------------

def test_cjk_pattern_matches_the_tokenizer():
    for cp in list(range(0x2E80, 0xFB00)) + list(range(0x1F000, 0x30000, 7)):
        assert bool(CJK.fullmatch(chr(cp))) == _is_cjk(cp), hex(cp)


def test_whole_word_tokens_equal_plain_tokens(tokenizer, corpus):
    docs, _ = read_corpus([corpus])
    wwm, plain = DocumentTokenizer(tokenizer, whole_word=True), DocumentTokenizer(tokenizer)
    for doc in docs + ["iPhone12的屏幕很好，Ｂ超［ＭＡＳＫ］ok", "混合text和中文，ﬁ café 測試"]:
        assert wwm(doc)[0].tolist() == plain(doc)[0].tolist(), doc


def test_whole_word_masking_masks_whole_jieba_words(tokenizer):
    import jieba
    sentence = "我们今天在北京大学图书馆学习自然语言处理和机器学习的基础知识"
    word_of = [w for w, word in enumerate(jieba.lcut(sentence)) for _ in word]
    ids, groups = DocumentTokenizer(tokenizer, whole_word=True)(sentence)
    assert len(ids) == len(sentence)  # one token per character
    block = np.concatenate([[tokenizer.cls_id], ids, [tokenizer.sep_id]]).astype(np.int32)
    block_groups = np.concatenate([[-1], groups, [-1]])
    masker = Masker(tokenizer, rate=0.3, max_predictions=20)
    rng = np.random.default_rng(0)
    multi = 0
    for _ in range(300):
        _, positions, labels, weights = masker.mask_block(block, block_groups, rng)
        masked = set((positions[weights > 0] - 1).tolist())  # character indexes
        assert masked and len(masked) <= round(0.3 * len(sentence))
        for i in masked:
            word = [j for j in range(len(sentence)) if word_of[j] == word_of[i]]
            assert set(word) <= masked, (sentence, sorted(masked))
            multi += len(word) > 1
        assert labels[weights > 0].tolist() == block[positions[weights > 0]].tolist()
    assert multi > 100


def test_masking_proportions_80_10_10(tokenizer, corpus):
    docs, _ = read_corpus([corpus])
    stream = BlockStream(docs, DocumentTokenizer(tokenizer), maxlen=64)
    masker = Masker(tokenizer, rate=0.15, max_predictions=10)
    rng = np.random.default_rng(1)
    counts = np.zeros(3)
    candidates = predicted = 0
    for _ in range(1500):
        ids, groups = stream.next_block()
        masked_ids, positions, labels, weights = masker.mask_block(ids, groups, rng)
        pos, lab = positions[weights > 0], labels[weights > 0]
        got = masked_ids[pos]
        counts += [np.sum(got == tokenizer.mask_id), np.sum((got != tokenizer.mask_id) & (got != lab)),
                   np.sum(got == lab)]
        n = np.sum(groups >= 0)
        assert len(pos) == min(10, max(1, round(0.15 * n)))  # token masking always hits its target
        candidates += n
        predicted += len(pos)
        unmasked = np.setdiff1d(np.arange(len(ids)), pos)
        assert np.array_equal(masked_ids[unmasked], ids[unmasked])
        assert not np.isin(ids[pos], [tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id]).any()
    share = counts / counts.sum()
    assert abs(share[0] - 0.8) < 0.015 and abs(share[1] - 0.1) < 0.012 and abs(share[2] - 0.1) < 0.012, share
    assert abs(predicted / candidates - 0.15) < 0.01


def test_packing_and_exact_stream_restore(tokenizer, corpus):
    docs, _ = read_corpus([corpus])
    doc_tok = DocumentTokenizer(tokenizer)
    stream = BlockStream(docs, doc_tok, maxlen=32, seed=3)
    blocks = [stream.next_block()[0] for _ in range(40)]
    assert all(len(b) == 32 and b[0] == tokenizer.cls_id for b in blocks)
    # [CLS] d1 [SEP] d2 [SEP] ...: after their [CLS] the blocks continue the documents (in the epoch's
    # order, each followed by [SEP]); a [SEP] that would open a block is dropped
    expected = []
    for i in np.random.default_rng([3, 0]).permutation(len(docs))[:60]:
        expected += doc_tok(docs[i])[0].tolist() + [tokenizer.sep_id]
    k = 0
    for b in blocks:
        body = b[1:].tolist()
        if expected[k] == tokenizer.sep_id and body[0] != tokenizer.sep_id:
            k += 1
        assert body == expected[k:k + len(body)]
        k += len(body)
    assert sum(b.tolist().count(tokenizer.sep_id) for b in blocks) >= 5
    assert any(tokenizer.sep_id not in b for b in blocks)  # a long document spans a whole block
    # restore: a stream rebuilt from state() continues identically
    state = json.loads(json.dumps(stream.state()))
    after = [stream.next_block() for _ in range(10)]
    restored = BlockStream(docs, doc_tok, maxlen=32, seed=3, state=state)
    for a, b in zip(after, (restored.next_block() for _ in range(10))):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_batches_are_a_function_of_the_step(tokenizer, corpus):
    docs, _ = read_corpus([corpus])

    def batches(start=0, state=None):
        stream = BlockStream(docs, DocumentTokenizer(tokenizer, whole_word=True), maxlen=48, seed=5, state=state)
        return MLMBatches(stream, Masker(tokenizer, max_predictions=8, seed=5), 4, start, 10)

    first = batches()
    reference = [first[i] for i in range(6)]
    assert first[1][0]["token_ids"].shape == (4, 48) and first[1][0]["masked_positions"].shape == (4, 8)
    resumed = batches(start=3, state=json.loads(json.dumps(first.stream_state_at(3))))
    for i in range(3):
        (x1, y1, w1), (x2, y2, w2) = reference[3 + i], resumed[i]
        for key in x1:
            assert np.array_equal(x1[key], x2[key])
        assert np.array_equal(y1, y2) and np.array_equal(w1, w2)


# -- training run, exports, resume --------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus, probe_file):
    """-> (output folder, log, what the run printed on stdout). progress=False and a tiny interval:
    a status line after every step."""
    out = tmp_path_factory.mktemp("run") / "out"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        log = run_pretraining(_config(corpus, out, steps=30, save_every=15, warmup_steps=3, probe=probe_file,
                                      progress_seconds=1e-6))
    return out, log, printed.getvalue()


def test_loss_falls_over_30_steps(trained):
    _, log, _ = trained
    loss = log["loss"]
    assert len(loss) == 30 and all(np.isfinite(loss))
    assert np.mean(loss[:5]) > np.log(21128) - 0.3  # starts near uniform
    assert np.mean(loss[:5]) - np.mean(loss[-5:]) > 0.5, loss
    # batches are read in step order (Keras' default shuffle asked at random: each late batch re-read
    # the packed stream, 2.5x slower runs); Keras peeks at the first few again when it starts
    assert log["runs"][-1]["batch_late_requests"] < 10 and log["runs"][-1]["batch_rewinds"] == 0


def test_status_lines_without_a_progress_bar(trained):
    """--no-progress or stdout not a terminal (CI, nohup): a status line every --progress-every seconds
    (here: after every step) with step/total, loss, tokens/s, elapsed time and ETA."""
    _, log, printed = trained
    pattern = (r"pretrain step (\d+)/30 - loss (\S+) \(avg20 \S+\) - ([\d,]+) tokens/s - "
               r"elapsed \d+:\d\d:\d\d - ETA (\d+:\d\d:\d\d|\?)")
    lines = [re.fullmatch(pattern, line) for line in printed.splitlines() if line.startswith("pretrain step")]
    assert lines and all(lines), printed
    assert [int(m[1]) for m in lines] == list(range(1, 31))
    assert [float(m[2]) for m in lines] == pytest.approx(log["loss"], abs=1e-4)
    assert lines[-1][4] == "0:00:00" and int(lines[-1][3].replace(",", "")) > 0


def test_progress_interval_option(tmp_path, corpus):
    import importlib.util
    spec = importlib.util.spec_from_file_location("pretrain_mlm", os.path.join(ROOT, "scripts", "pretrain_mlm.py"))
    pretrain_mlm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pretrain_mlm)
    args = pretrain_mlm.build_parser().parse_args(["--corpus", corpus, "--output", "o", "--no-progress"])
    assert args.progress is False and args.progress_seconds == 60.0
    args = pretrain_mlm.build_parser().parse_args(["--corpus", corpus, "--output", "o", "--progress-every", "5"])
    assert args.progress is True and args.progress_seconds == 5.0
    with pytest.raises(FewShotError) as e:
        PretrainingRun(_config(corpus, tmp_path / "out", progress_seconds=0))
    _one_line_error(e, "--progress-every 0")


def test_log_checkpoint_and_probe(trained):
    out, log, _ = trained
    on_disk = json.loads((out / LOG_FILE).read_text(encoding="utf-8"))
    assert on_disk["steps"] == log["steps"] == 30 and on_disk["loss"] == log["loss"]
    assert log["tokens_per_second"] > 0 and log["wall_time_s"] > 0 and log["tokens_per_step"] == 16 * 64
    assert log["config"]["hidden"] == 64 and log["model"]["num_hidden_layers"] == 2
    assert [c["step"] for c in log["checkpoints"]] == [15, 30]
    assert all(0 <= c["probe"]["accuracy"] <= 1 and c["probe"]["rows"] == 16 for c in log["checkpoints"])
    state = json.loads((out / CHECKPOINT_DIR / STATE_FILE).read_text(encoding="utf-8"))
    assert state["step"] == state["optimizer_iterations"] == 30
    assert load_mlm(str(out / CHECKPOINT_DIR)).model.num_layers == 2  # the checkpoint is an HF folder too


def test_zero_shot_probe_matches_full_logits_and_traces_once(tokenizer, probe_file):
    import keras
    from few_shot.bert import BertMaskedLM
    from few_shot.pretraining import PROBE_PATTERN, ZeroShotProbe, read_probe
    keras.utils.set_random_seed(3)
    bert = BertMaskedLM(tokenizer.vocab_size, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    rows = read_probe(probe_file) * 5  # 80 rows: two batches of different padded lengths
    probe = ZeroShotProbe(bert, tokenizer, rows, maxlen=64)
    # oracle: full-vocabulary logits one row at a time, 很 vs 不 at the [MASK] (position 1)
    expected = []
    for text, _ in rows:
        ids = np.array([tokenizer.encode(PROBE_PATTERN.replace("{text}", text), maxlen=64)[0]])
        logits = keras.ops.convert_to_numpy(bert(ids))[0, 1]
        expected.append(int(logits[tokenizer.token_to_id("很")] > logits[tokenizer.token_to_id("不")]))
    labels = np.array([label for _, label in rows])
    first = probe()
    assert first["rows"] == 80
    assert first["accuracy"] == pytest.approx(np.mean(np.array(expected) == labels))
    assert first["predicted_1"] == pytest.approx(np.mean(expected))
    # the next checkpoint's probe reads the new weights without tracing again
    fn = probe.scorer.fn
    traces = fn.experimental_get_tracing_count() if hasattr(fn, "experimental_get_tracing_count") else None
    bias = keras.ops.convert_to_numpy(bert.mlm_head.output_bias)
    bias[tokenizer.token_to_id("很")] += 100.0
    bert.mlm_head.output_bias.assign(bias)
    second = probe()
    assert second["predicted_1"] == 1.0 and second["accuracy"] == pytest.approx(labels.mean())
    if traces is not None:
        assert fn.experimental_get_tracing_count() == traces


def test_exports_load_and_agree_with_transformers(trained):
    import torch
    from transformers import BertForMaskedLM
    out, _, _ = trained
    hf, google = load_mlm(str(out / "hf")), load_mlm(str(out / "google"))
    assert (hf.format, google.format) == ("hf", "google")
    texts = ["这家酒店很好", "[MASK]满意。房间太小了，服务也一般", "北京大学"]
    ids = [hf.tokenizer.encode(t)[0] for t in texts]
    a, b = hf.predict_logits(ids), google.predict_logits(ids)
    reference = BertForMaskedLM.from_pretrained(str(out / "hf")).eval()
    t = pad_batch(ids)
    with torch.no_grad():
        c = reference(input_ids=torch.tensor(t, dtype=torch.long),
                      attention_mask=torch.tensor(t != 0, dtype=torch.long)).logits.numpy()
    real = t != 0
    assert np.abs(a - b)[real].max() < 1e-4
    assert np.abs(a - c)[real].max() < 1e-4


def test_resume_restores_optimizer_and_continues_the_step_count(trained, corpus, probe_file, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(trained[0], out)
    saved = np.load(out / CHECKPOINT_DIR / OPTIMIZER_FILE)
    # --steps equal to the checkpoint's: nothing to train, so the restored state can be compared exactly
    run = PretrainingRun(_config(corpus, out, steps=30, resume=True))
    run.run()
    import keras
    assert int(keras.ops.convert_to_numpy(run.optimizer.iterations)) == 30
    for i, v in enumerate(run.optimizer.variables):
        assert np.array_equal(keras.ops.convert_to_numpy(v), saved[f"v{i}"])
    # a conflicting architecture flag is refused
    with pytest.raises(FewShotError) as e:
        PretrainingRun(_config(corpus, out, hidden=128, steps=33, resume=True))
    _one_line_error(e, "--hidden 128", "checkpoint")
    # continue to 33 steps: the count, the loss history and the optimizer go on from 30
    log = run_pretraining(dataclasses.replace(_config(corpus, out, steps=33, resume=True, save_every=15),
                                              layers=None, hidden=None, heads=None, maxlen=None, batch_size=None))
    assert log["steps"] == 33 and len(log["loss"]) == 33 and log["loss"][:30] == trained[1]["loss"]
    assert [r["start_step"] for r in log["runs"]] == [0, 30]
    state = json.loads((out / CHECKPOINT_DIR / STATE_FILE).read_text(encoding="utf-8"))
    assert state["step"] == state["optimizer_iterations"] == 33
    assert [c["step"] for c in log["checkpoints"]] == [15, 30, 33]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_backend_without_tensorflow_trains_checkpoints_resumes_and_exports_hf(tmp_path, corpus, probe_file, backend):
    """GPU machines may have only torch or JAX: the run, its mid-run checkpoints and probe, --resume and
    the HF export must not need TensorFlow (the Google export is skipped and says so in the log). On
    JAX, Keras keeps the weights outside the variables during fit: a checkpoint must sync them first."""
    pytest.importorskip(backend)  # both are in the test extras; this only names what is missing
    out = tmp_path / "out"
    code = ("import sys; sys.modules['tensorflow'] = None; sys.argv = sys.argv[1:]; import runpy; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")

    def pretrain(steps, *extra):
        proc = subprocess.run([sys.executable, "-c", code, os.path.join(ROOT, "scripts", "pretrain_mlm.py"),
                               "--corpus", corpus, "--layers", "2", "--hidden", "64", "--heads", "2",
                               "--maxlen", "64", "--batch-size", "4", "--steps", str(steps), "--save-every", "2",
                               "--probe", probe_file, "--output", str(out), *extra],
                              capture_output=True, text=True, timeout=600, env={**os.environ, "KERAS_BACKEND": backend})
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc, json.loads((out / LOG_FILE).read_text(encoding="utf-8"))

    proc, log = pretrain(3)
    assert log["backend"] == backend and log["steps"] == 3 and log["strategy"] is None
    assert [c["step"] for c in log["checkpoints"]] == [2, 3]
    assert all(c["probe"]["rows"] == 16 for c in log["checkpoints"])
    assert log["exports"]["google"] is None and "TensorFlow is not installed" in log["exports"]["google_skipped"]
    assert not (out / "google").exists() and "skipping" in proc.stderr
    assert "pretrain step 1/3 - loss" in proc.stdout  # stdout is a pipe: status lines, no bar
    state = json.loads((out / CHECKPOINT_DIR / STATE_FILE).read_text(encoding="utf-8"))
    assert state["step"] == state["optimizer_iterations"] == 3

    _, log = pretrain(5, "--resume")
    assert log["steps"] == 5 and [r["start_step"] for r in log["runs"]] == [0, 3] and len(log["loss"]) == 5
    state = json.loads((out / CHECKPOINT_DIR / STATE_FILE).read_text(encoding="utf-8"))
    assert state["step"] == state["optimizer_iterations"] == 5
    hf = load_mlm(str(out / "hf"))
    assert hf.model.num_layers == 2 and hf.model.hidden_size == 64


def test_batches_replay_when_asked_again_or_out_of_order():
    """Keras may build a second iterator over the batches (starting again at batch 0) after the
    first one prefetched far ahead, and tf.data may ask out of order: every step still gets the
    same blocks, made in stream order."""
    from few_shot.pretraining import MLMBatches

    class Stream:
        made = 0

        def state(self):
            return {"made": self.made}

        def restore(self, state):
            self.made = state["made"]

        def next_block(self):
            self.made += 1
            return np.full(4, self.made), np.zeros(4)

    class Identity:
        def mask_batch(self, ids, groups, step):
            return ids, None, None

    batches = MLMBatches(Stream(), Identity(), 2, 0, 300)
    expected = {k: 2 * k + 1 for k in range(300)}
    first_pass = {k: batches[k][0][0, 0] for k in range(200)}
    second_pass = {k: batches[k][0][0, 0] for k in [150, 0] + list(range(1, 150)) + list(range(151, 300))}
    assert first_pass == {k: expected[k] for k in range(200)}
    assert second_pass == expected
    assert len(batches._blocks) <= MLMBatches.KEEP  # old batches are freed
    # the checkpoint after the last step asks where step 300 starts, after a rewind to step 0
    batches[0]
    assert batches.stream_state_at(300) == {"made": 600}
    assert batches.stream_state_at(150) == {"made": 300}
