"""The TF Serving export (few_shot/export.py, `few_shot_ptuning.py --export RUN_DIR OUT_DIR`).

- the in-graph tokenizer gives the Python Tokenizer's ids on every sentiment test line, on edge texts
  and on every assigned BMP code point;
- the SavedModel, loaded in a fresh process, gives PromptClassifier.predict_proba's probabilities on
  200 sentiment test texts plus long and Latin/digit texts (a P-tuning run through the CLI, a zero-shot
  run with [MASK] after the text through the API);
- bad input: one line on stderr, exit status 2, nothing overwritten.
"""
import json
import os
import subprocess
import sys
import textwrap
import unicodedata

import numpy as np
import pytest

from conftest import REPO_ROOT, TINY_ROWS, tiny_model

SCRIPT = os.path.join(REPO_ROOT, "few_shot_ptuning.py")
# Latin words, digits, full-width forms, accents, special tokens typed by a user, controls, long words
EDGE_TEXTS = [
    "", "   ", "这家酒店很好", "iPhone12 Pro Max 256GB只要6999元，性价比很高！",
    "WiFi信号差，房间号1208，check-in用了40分钟", "ＯＫ，ＡＢＣ１２３很好 ｈｔｔｐ://ｗｗｗ.ｅｘａｍｐｌｅ.ｃｏｍ",
    "Café naïve RÉSUMÉ straße ΟΔΟΣ İstanbul ﬁne", "1,234.56元 ¥99 3.5折 50%",
    "[MASK]满意[unused3]x[unused500][UNUSED3][mask] [CLS]", "a" * 100, "a" * 101, "😀😀 emoji😀x ★☆ (╯▽╰)",
    "\t\n\r\x00\ufffd\u200b\xa0\u3000x\x85y", "兀 豈 \U00020000 \U0002B920 ぁあ한국어", "[MA\x00SK] [MASK]",
]
PAIR = "[MASK]{sentence1}[SEP]{sentence2}"
PAIR_ROWS = [({"sentence1": "很好", "sentence2": "不好"}, "1")]
LONG_TEXTS = ["这家酒店很好，服务周到，早餐丰富。" * 12, "Good hotel, room 1208, 2 nights for 998 yuan. " * 10]


def tokenizer_fn(tokenizer):
    import tensorflow as tf

    from few_shot.export import GraphTokenizer
    graph = GraphTokenizer(tokenizer)
    fn = tf.function(lambda texts: graph(texts))
    return lambda texts: fn(tf.constant(texts, tf.string)).to_list()


def mismatches(tokenizer, texts, ids):
    return [(t, tokenizer.tokenize(t)) for t, got in zip(texts, ids)
            if got != tokenizer.tokens_to_ids(tokenizer.tokenize(t))]


@pytest.fixture(scope="module")
def graph_tokenize(bundled_tokenizer):
    return tokenizer_fn(bundled_tokenizer)


def test_graph_tokenizer_equals_python_tokenizer_on_every_sentiment_test_line(graph_tokenize, bundled_tokenizer,
                                                                              sentiment_texts):
    texts = sentiment_texts("test")
    assert len(texts) == 2111
    assert mismatches(bundled_tokenizer, texts, graph_tokenize(texts)) == []


@pytest.mark.parametrize("lower", [True, False])
def test_graph_tokenizer_equals_python_tokenizer_on_edge_texts(lower, bundled_vocab_path, sentiment_texts):
    from few_shot.tokenizer import Tokenizer
    tokenizer = Tokenizer(bundled_vocab_path, do_lower_case=lower)
    texts = EDGE_TEXTS + LONG_TEXTS + sentiment_texts("test")[:300]
    assert mismatches(tokenizer, texts, tokenizer_fn(tokenizer)(texts)) == []


def test_graph_tokenizer_equals_python_tokenizer_on_every_assigned_bmp_code_point(graph_tokenize,
                                                                                   bundled_tokenizer):
    # code points unassigned in Python's Unicode tables (Cn) may be assigned in RE2's newer ones: not compared
    chars = [chr(cp) for cp in range(1, 0x10000) if not 0xD800 <= cp <= 0xDFFF
             and unicodedata.category(chr(cp)) != "Cn"]
    texts = [f"a{c}b {c}Ab{c}" for c in chars]
    assert mismatches(bundled_tokenizer, texts, graph_tokenize(texts)) == []


def test_cjk_ranges_are_the_tokenizers():
    from few_shot.export import CJK_RANGES
    from few_shot.tokenizer import _is_cjk
    assert [cp for cp in range(0x110000) if _is_cjk(cp) != any(lo <= cp <= hi for lo, hi in CJK_RANGES)] == []


def save_run(model, folder, vocab_path):
    """model.keras + vocab.txt, as few_shot.run.save_run writes them."""
    import shutil
    os.makedirs(folder)
    model.build()
    model.save(os.path.join(folder, "model.keras"))
    shutil.copyfile(vocab_path, os.path.join(folder, "vocab.txt"))
    return str(folder)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, bundled_mlm):
    """Two untrained run folders on the bundled MLM: P-tuning (default pattern, the prompt encoder to
    fold) at maxlen 64, and zero-shot with [MASK] after the text at maxlen 40 (so long texts are cut)."""
    from few_shot.config import RunConfig
    from few_shot.builder import build_model
    from few_shot.pattern import PTUNING_PATTERN
    from few_shot.preprocessor import PromptPreprocessor
    root = tmp_path_factory.mktemp("export_runs")
    folders = {}
    for name, method, pattern, maxlen in (("ptuning", "ptuning", None, 64),
                                          ("zeroshot", "zeroshot", "{text}。总之[MASK]满意。", 40)):
        preprocessor = PromptPreprocessor(bundled_mlm.tokenizer, pattern or PTUNING_PATTERN, {"0": "不", "1": "很"},
                                          maxlen)
        model = build_model(method, bundled_mlm, preprocessor, RunConfig(method=method, seed=3))
        folders[name] = save_run(model, root / name, bundled_mlm.tokenizer.vocab_path)
    return folders


LOAD_AND_PREDICT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import op_def_registry
    texts, folders, results = json.load(open(sys.argv[1], encoding="utf-8")), json.loads(sys.argv[2]), {}
    for name, folder in folders.items():  # the ops plain TensorFlow does not know (before tensorflow_text loads)
        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString(open(folder + "/saved_model.pb", "rb").read())
        graph = proto.meta_graphs[0].graph_def
        ops = {n.op for n in graph.node} | {n.op for fn in graph.library.function for n in fn.node_def}
        results[name] = {"non_core_ops": sorted(op for op in ops if op_def_registry.get(op) is None)}
    import tensorflow_text  # noqa: F401  registers those ops, as tensorflow_model_server links them in
    for name, folder in folders.items():
        serve = tf.saved_model.load(folder).signatures["serving_default"]
        out = serve(text=tf.constant(texts))
        results[name].update(probabilities=out["probabilities"].numpy().tolist(),
                             label=[s.decode() for s in out["label"].numpy()],
                             labels=[[s.decode() for s in row] for row in out["labels"].numpy()],
                             inputs=list(serve.structured_input_signature[1]))
    json.dump(results, open(sys.argv[3], "w"))
""")

def test_saved_model_in_a_fresh_process_gives_predict_proba(runs, sentiment_texts, bundled_tokenizer, tmp_path):
    from few_shot.classifier import PromptClassifier
    from few_shot.export import METADATA, export_saved_model
    texts = sentiment_texts("test")[:200] + EDGE_TEXTS + LONG_TEXTS
    lengths = [len(bundled_tokenizer.tokenize(t)) for t in texts]
    assert max(lengths) > 64 + 10 and sum(n > 40 - 6 for n in lengths) > 20  # truncation is exercised
    # P-tuning through the command line, zero-shot through the API (from a loaded classifier)
    cli = subprocess.run([sys.executable, SCRIPT, "--export", runs["ptuning"], str(tmp_path / "pt" / "1")],
                         capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0, cli.stderr
    assert "serve: tensorflow_model_server" in cli.stdout and f"--model_base_path={tmp_path / 'pt'}" in cli.stdout
    zero_shot = PromptClassifier.load(runs["zeroshot"])
    assert export_saved_model(zero_shot, str(tmp_path / "zs" / "1")) == str(tmp_path / "zs" / "1")
    meta = json.loads((tmp_path / "zs" / "1" / METADATA).read_text(encoding="utf-8"))
    assert meta["labels"] == ["0", "1"] and meta["maxlen"] == 40 and meta["pattern"] == "{text}。总之[MASK]满意。"

    (tmp_path / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    folders = {"ptuning": str(tmp_path / "pt" / "1"), "zeroshot": str(tmp_path / "zs" / "1")}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", LOAD_AND_PREDICT, str(tmp_path / "texts.json"), json.dumps(folders),
                           str(tmp_path / "out.json")], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "out.json").read_text())
    for name, classifier in (("ptuning", PromptClassifier.load(runs["ptuning"])), ("zeroshot", zero_shot)):
        want = classifier.predict_proba(texts)
        got = np.asarray(results[name]["probabilities"])
        assert got.shape == (len(texts), 2)
        assert np.abs(got - want).max() < 1e-5, (name, np.abs(got - want).max())
        assert results[name]["label"] == [["0", "1"][i] for i in got.argmax(-1)]
        assert results[name]["labels"] == [["0", "1"]] * len(texts)
        assert results[name]["inputs"] == ["text"]
        # tensorflow_model_server links TF Text in; these three ops have been in it for years
        assert results[name]["non_core_ops"] == ["NormalizeUTF8", "RegexSplitWithOffsets",
                                                 "WordpieceTokenizeWithOffsets"]


@pytest.mark.slow
def test_every_method_exports_with_the_same_probabilities(tmp_path):
    """Tiny models (conftest) of other methods: the MLP prompt encoder folded, deep prompts with the
    [CLS] head and LoRA served as they are (P-tuning and zero-shot: the fresh-process test above)."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    from few_shot.classifier import PromptClassifier
    from few_shot.export import export_saved_model
    texts = [t for t, _ in TINY_ROWS] + ["这家酒店很好" * 8, "abc 123 满意"]
    for method, options in (("mlp", {}), ("deep", {"head": "cls"}), ("lora", {})):
        model, _, _ = tiny_model(method, **options)
        want = PromptClassifier(model).predict_proba(texts)
        folder = export_saved_model(model, str(tmp_path / f"{method}_{'_'.join(options)}" / "1"))
        got = tf.saved_model.load(folder).signatures["serving_default"](text=tf.constant(texts))["probabilities"]
        assert np.abs(got.numpy() - want).max() < 1e-5, (method, options)


def test_export_refuses_a_pair_pattern_a_non_empty_folder_and_calibration(tmp_path):
    from few_shot.classifier import PromptClassifier
    from few_shot.errors import FewShotError
    from few_shot.export import export_saved_model
    model, _, _ = tiny_model("zeroshot", pattern=PAIR, rows=PAIR_ROWS)
    with pytest.raises(FewShotError, match="export supports one text field"):
        export_saved_model(model, str(tmp_path / "pair"))
    assert not (tmp_path / "pair").exists()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    with pytest.raises(FewShotError, match="not empty"):
        export_saved_model(model, str(tmp_path / "used"))
    assert os.listdir(tmp_path / "used") == ["notes.txt"]
    calibrated = PromptClassifier(tiny_model("zeroshot", pattern="[MASK]满意。{text}")[0])
    calibrated.calibrate = "content-free"
    with pytest.raises(FewShotError, match="calibrat"):
        export_saved_model(calibrated, str(tmp_path / "calibrated"))


def run_cli(*args):
    return subprocess.run([sys.executable, SCRIPT, "--export", *args], capture_output=True, text=True, timeout=120)


def test_cli_bad_input_is_one_line_and_exit_2_before_tensorflow_loads(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.keras").write_bytes(b"")  # never read: the output folder is checked first
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    pair_run = tmp_path / "pair_run"
    model, _, _ = tiny_model("zeroshot", pattern=PAIR, rows=PAIR_ROWS)
    save_run(model, pair_run, os.path.join(REPO_ROOT, "models", "zh-bert-mini", "vocab.txt"))
    cases = [((str(tmp_path / "missing"), str(tmp_path / "out")), "no such run folder"),
             ((str(tmp_path), str(tmp_path / "out")), "holds no model.keras"),
             ((str(run_dir), str(used)), "the folder is not empty"),
             ((str(run_dir), str(used / "notes.txt")), "is a file"),
             ((str(run_dir), str(tmp_path / "v[1]")), "glob pattern"),
             ((str(pair_run), str(tmp_path / "out")), "export supports one text field")]
    for args, message in cases:
        done = run_cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr
        assert done.stdout == ""
    assert (used / "notes.txt").read_text() == "mine" and os.listdir(used) == ["notes.txt"]
    assert not (tmp_path / "out").exists()
