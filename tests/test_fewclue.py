"""FewCLUE task shapes: patterns over named and nested fields with one truncation rule (a window
around chid's blank), per-row candidates scored by full-vocabulary log-probs, label words of
fixed length, every task's reader on real rows (skipped when ../shared is absent), bad rows as
one-line errors with file and line, and scripts/fewclue.py end to end."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT, tiny_bert, tiny_tokenizer
from few_shot.config import RunConfig
from few_shot.errors import FewShotError
from few_shot.pattern import Pattern, truncated_lengths
from few_shot.verbalizers import Candidates, Verbalizer, verbalizer_from
from few_shot.tasks import TASK_NAMES, get_task
from few_shot.tasks.base import fixed_length_words

FEWCLUE = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "data", "fewclue"))
SHIPPED = ("bustm", "chid", "cluewsc", "csl", "csldcp", "iflytek", "ocnli", "tnews")


def fewclue_dir(task=""):
    path = os.path.join(FEWCLUE, task)
    if not os.path.isdir(path):
        pytest.skip(f"{path} is absent (the FewCLUE data lives beside the repo as ../shared)")
    return path


def write_lines(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return str(path)


def tokens(tok, ids):
    return [tok.id_dict[i] for i in ids]


# -- patterns and truncation ------------------------------------------------------------------

def test_pair_keeps_both_texts_every_prompt_slot_and_the_mask_when_tight():
    tok = tiny_tokenizer()
    pattern = Pattern(get_task("bustm").ptuning_pattern)  # [u1]..[u4][MASK][u5]..[u8]{sentence1}[SEP]{sentence2}
    row = {"sentence1": "这家酒店很好" * 6, "sentence2": "服务太差了" * 6}
    enc = pattern.encode(tok, row, maxlen=24)
    assert len(enc.token_ids) == 24
    assert [t for t in enc.token_ids if 1 <= t <= 8] == list(range(1, 9))  # all 8 soft-prompt slots
    assert tokens(tok, [enc.token_ids[p] for p in enc.mask_positions]) == ["[MASK]"]
    first = [p for p in enc.text_positions if enc.segment_ids[p] == 0]
    second = [p for p in enc.text_positions if enc.segment_ids[p] == 1]
    assert [len(first), len(second)] == [6, 6]  # 24 - 12 fixed = 12, shared by the longest-first rule
    assert tokens(tok, [enc.token_ids[p] for p in first]) == list("这家酒店很好"[:len(first)])
    assert tokens(tok, [enc.token_ids[p] for p in second]) == list(("服务太差了" * 2)[:len(second)])
    sep = enc.token_ids.index(tok.sep_id)
    assert sep == first[-1] + 1 and second[0] == sep + 1
    assert enc.segment_ids == [0] * (sep + 1) + [1] * (24 - sep - 1)  # [SEP] in the pattern -> segment 1


def test_truncation_rule_on_a_row_longer_than_maxlen():
    tok = tiny_tokenizer()
    pattern = Pattern("[u1][u2]{keyword}[MASK]是{abst}")
    row = {"abst": "这家酒店很好" * 20, "keyword": ["酒店", "服务"]}
    enc = pattern.encode(tok, row, maxlen=32)
    assert len(enc.token_ids) == 32
    # fixed: [CLS] u1 u2 [MASK] 是 [SEP] = 6, budget 26: the keyword list (5 tokens with ，) stays whole
    assert tokens(tok, enc.token_ids[3:8]) == ["酒", "店", "[UNK]", "服", "务"]
    assert tokens(tok, enc.token_ids[10:-1]) == list(("这家酒店很好" * 4)[:21])  # the longest field, cut at its end
    assert truncated_lengths({"abst": 120, "keyword": 5}, 26) == {"abst": 21, "keyword": 5}


def test_chid_blank_window_keeps_the_blank_and_both_sides():
    tok = tiny_tokenizer()
    pattern = Pattern(get_task("chid").ptuning_pattern)  # [u1]..[u8]{content:#idiom#}
    assert pattern.blanks == {"content": "#idiom#"} and pattern.fields == ["content"]
    before, after = "我们" * 30 + "这家酒店", "服务太差" + "了" * 40
    enc = pattern.encode(tok, {"content": before + "#idiom#" + after}, maxlen=32, num_masks=4)
    assert len(enc.token_ids) == 32
    masks = enc.mask_positions
    assert masks == list(range(masks[0], masks[0] + 4)) and tokens(tok, [enc.token_ids[p] for p in masks]) == [
        "[MASK]"] * 4
    # 32 - [CLS] 8 slots 4 masks [SEP] = 18 tokens of content: 9 before the blank (its tail), 9 after (its head)
    assert tokens(tok, enc.token_ids[9:masks[0]]) == list(("我们" * 30 + "这家酒店")[-9:])
    assert tokens(tok, enc.token_ids[masks[-1] + 1:-1]) == list(("服务太差" + "了" * 40)[:9])
    # a blank near the start keeps its few tokens before and fills the rest after it
    near = pattern.encode(tok, {"content": "很好#idiom#" + after}, maxlen=32, num_masks=4)
    assert near.mask_positions == [11, 12, 13, 14] and len(near.token_ids) == 32
    assert len(near.text_positions) == 18
    with pytest.raises(FewShotError, match="holds the blank '#idiom#' 0 times"):
        pattern.encode(tok, {"content": "没有空"}, maxlen=32, num_masks=4)
    with pytest.raises(FewShotError, match="one blank and no"):
        Pattern("[MASK]{content:#idiom#}")


def test_nested_fields_are_read_with_dots():
    tok = tiny_tokenizer()
    pattern = Pattern("{text}[SEP]{target.span2_text}[MASK]{target.span1_text}")
    row = {"text": "这家酒店很好", "target": {"span1_text": "酒店", "span2_text": "这"}}
    enc = pattern.encode(tok, row, maxlen=32)
    assert tokens(tok, enc.token_ids) == ["[CLS]", *"这家酒店很好", "[SEP]", "这", "[MASK]", "酒", "店", "[SEP]"]
    pattern.check_fields(row, "cluewsc")
    with pytest.raises(FewShotError, match=r"\{target.span3_text\} is not a field of x.json .*target.span1_text"):
        Pattern("{target.span3_text}[MASK]").check_fields(row, "x.json")


# -- per-row candidates -----------------------------------------------------------------------

def chid_rows():
    cands = ["很好满意", "太差了不", "酒店服务", "房间还可", "这家的是", "我们一个", "新闻体育"]
    return [({"content": "我们#idiom#这家酒店", "candidates": cands}, "0"),
            ({"content": "服务太差了，#idiom#。", "candidates": cands[::-1]}, "1"),
            ({"content": "#idiom#" + "房间还可以" * 3, "candidates": cands[1:] + cands[:1]}, "6")]


def test_chid_candidate_scores_are_sums_of_full_vocabulary_log_probs():
    from few_shot.loading import PretrainedMLM
    from few_shot.builder import build_model
    from few_shot.preprocessor import PromptPreprocessor
    from few_shot.training import Scorer

    tok, bert = tiny_tokenizer(), tiny_bert(seed=3)
    pre = PromptPreprocessor(tok, get_task("chid").zero_shot_pattern, get_task("chid").verbalizer, maxlen=24)
    assert pre.num_masks == 4 and pre.labels == [str(i) for i in range(7)]
    rows = chid_rows()
    data = pre.encode(rows)
    assert data.candidate_ids.shape == (3, 7, 4) and data.labels.tolist() == [0, 1, 6]
    x, _ = data.batch(np.arange(3))
    assert x["candidate_ids"].shape == (3, 7, 4)
    scores = Scorer(build_model("zeroshot", bert, pre), 2).scores(data)  # [3, 7]
    logits = PretrainedMLM(bert, tok, "tiny", "keras").predict_logits(data.token_ids, data.segment_ids)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    for i, (row, _) in enumerate(rows):
        for k, candidate in enumerate(row["candidates"]):
            ids = tok.tokens_to_ids(list(candidate))
            expected = sum(log_probs[i, p, t] for p, t in zip(data.mask_positions[i], ids))
            np.testing.assert_allclose(scores[i, k], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_chid_ptuning_trains_on_a_softmax_over_the_row_candidates(tmp_path):
    import keras

    from few_shot.builder import build_model
    from few_shot.preprocessor import PromptPreprocessor
    from few_shot.training import training_dataset

    tok = tiny_tokenizer()
    pre = PromptPreprocessor(tok, get_task("chid").ptuning_pattern, get_task("chid").verbalizer, maxlen=32)
    model = build_model("ptuning", tiny_bert(seed=1), pre, RunConfig(seed=1))
    data = pre.encode(chid_rows() * 4)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=model.loss_function())
    x, y = data.batch(np.arange(len(data)))
    before = float(model.evaluate(x, y, verbose=0))
    model.fit(training_dataset(data, 4, 0), epochs=1, steps_per_epoch=6, verbose=0)
    assert float(model.evaluate(x, y, verbose=0)) < before
    model.save(tmp_path / "m.keras")  # the Candidates verbalizer travels in the preprocessor's config
    again = keras.models.load_model(tmp_path / "m.keras", compile=False)
    assert isinstance(again.preprocessor.verbalizer, Candidates)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(x)), keras.ops.convert_to_numpy(model(x)), atol=1e-5)


@pytest.mark.slow
def test_per_length_model_trains_through_the_dataset_pipeline():
    import keras

    from few_shot.builder import build_model
    from few_shot.verbalizers import PerLengthVerbalizer
    from few_shot.preprocessor import PromptPreprocessor
    from few_shot.training import Scorer, training_dataset

    pre = PromptPreprocessor(tiny_tokenizer(), "[u1][u2][MASK][u3]{text}", PerLengthVerbalizer(PER_LENGTH), maxlen=24)
    # finetune: the random tiny MLM gives every row nearly the same [MASK] states, a prompt alone moves little
    model = build_model("finetune", tiny_bert(seed=2), pre, RunConfig(method="finetune", seed=2))
    rows = [("这家酒店很好", "a"), ("服务太差了", "d"), ("酒店服务还可以", "c"), ("体育新闻", "b")] * 3
    data = pre.encode(rows)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=model.loss_function())
    scorer = Scorer(model, 4)
    loss = lambda: float(keras.losses.sparse_categorical_crossentropy(  # noqa: E731
        data.labels, scorer.scores(data), from_logits=True).numpy().mean())
    before = loss()
    model.fit(training_dataset(data, len(data), 0), epochs=1, steps_per_epoch=12, verbose=0)  # full batches
    assert loss() < before - 0.002


def test_candidate_longer_than_the_blank_is_an_error():
    from few_shot.preprocessor import PromptPreprocessor
    pre = PromptPreprocessor(tiny_tokenizer(), "{content:#idiom#}", Candidates("candidates", 2, 4), maxlen=24)
    with pytest.raises(FewShotError, match="row 1: candidate '很好满意了' has 5 tokens, the blank has 4"):
        pre.encode([({"content": "#idiom#", "candidates": ["很好满意了", "太差了不"]}, "0")])
    assert verbalizer_from(Candidates().mapping).mapping == Candidates().mapping
    assert isinstance(Verbalizer.parse(json.dumps(Candidates().mapping)), Candidates)


# -- label words of different lengths ---------------------------------------------------------

def test_fixed_length_words_from_names_without_collisions():
    names = {"0": "汽车咨询", "1": "汽车交易", "2": "汽车", "3": "K歌", "4": "语言(非英语)"}
    words = fixed_length_words(names, 2, overrides={"3": "唱歌"})
    assert words == {"0": "汽车咨询"[-2:], "1": "交易", "2": "汽车", "3": "唱歌", "4": "语言"}
    assert len(set(words.values())) == len(words)
    with pytest.raises(FewShotError, match=r"^label 3 \('K歌'\) has fewer than 2 Chinese characters"):
        fixed_length_words(names, 2)
    with pytest.raises(FewShotError, match=r"label 1 \('乙'\): its word '甲乙' is also label 0's"):
        fixed_length_words({"0": "甲乙", "1": "乙"}, 2, overrides={"1": "甲乙"})
    from few_shot.verbalizers import PerLengthVerbalizer
    for task in ("iflytek", "csldcp"):  # the alternative measured on dev (FIXED_WORDS) and the default
        get_task(task)
        fixed = sys.modules[f"few_shot.tasks.{task}"].FIXED_WORDS
        assert {len(w) for w in fixed.values()} == {2} and len(set(fixed.values())) == len(fixed)
        assert isinstance(get_task(task).make_verbalizer(), PerLengthVerbalizer)
    assert len(get_task("iflytek").labels) == 119 and len(get_task("csldcp").labels) == 67


PER_LENGTH = {"a": "很", "b": "体育", "c": "酒店服务", "d": "不"}


def test_per_length_scores_are_mean_log_probs_at_each_length_group():
    from few_shot.loading import PretrainedMLM
    from few_shot.builder import build_model
    from few_shot.verbalizers import PerLengthVerbalizer
    from few_shot.preprocessor import PromptPreprocessor
    from few_shot.training import Scorer

    tok, bert = tiny_tokenizer(), tiny_bert(seed=5)
    pattern = "这是[MASK]的。{text}"
    pre = PromptPreprocessor(tok, pattern, PerLengthVerbalizer(PER_LENGTH), maxlen=24)
    assert pre.mask_groups == [1, 2, 4] and pre.num_masks == 4
    rows = [("这家酒店很好", "a"), ("服务太差了", "d"), ("我们一个房间还可以", "c")]
    data = pre.encode(rows)
    assert len(data) == 3 and data.labels.tolist() == [0, 3, 2]
    x, _ = data.batch(np.arange(2))
    assert x["token_ids"].shape[0] == 6 and x["mask_positions"].shape == (6, 4)  # 2 rows x 3 length groups
    scores = Scorer(build_model("zeroshot", bert, pre), 2).scores(data)  # [3, 4]
    mlm = PretrainedMLM(bert, tok, "tiny", "keras")
    for c, (label, word) in enumerate(PER_LENGTH.items()):
        ids = tok.tokens_to_ids(tok.tokenize(word))
        encoded = [Pattern(pattern).encode(tok, text, 24, num_masks=len(ids)) for text, _ in rows]
        logits = mlm.predict_logits([e.token_ids for e in encoded], [e.segment_ids for e in encoded])
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        for i, e in enumerate(encoded):
            expected = np.mean([log_probs[i, p, t] for p, t in zip(e.mask_positions, ids)])
            np.testing.assert_allclose(scores[i, c], expected, rtol=1e-4, atol=1e-4)
    again = PromptPreprocessor.from_config(pre.get_config())
    assert isinstance(again.verbalizer, PerLengthVerbalizer) and again.verbalizer.mapping == PER_LENGTH


def test_out_of_vocabulary_or_colliding_label_word_is_one_line_naming_the_label():
    tok = tiny_tokenizer()
    with pytest.raises(FewShotError, match=r"^verbalizer word '龘龘' \(label 7\) is not in the vocabulary"):
        Verbalizer({"3": "体育", "7": "龘龘"}).token_ids(tok)
    with pytest.raises(FewShotError, match="labels 3 and 7 map to the same word '体育'"):
        Verbalizer({"3": "体育", "7": "体育"})
    with pytest.raises(FewShotError, match=r"label 7 '很好满' has 3, label 3 '体育' has 2"):
        Verbalizer({"3": "体育", "7": "很好满"}).token_ids(tok)


# -- readers ----------------------------------------------------------------------------------

LABELS = {"bustm": {"0", "1"}, "ocnli": {"entailment", "neutral", "contradiction"}, "csl": {"0", "1"},
          "cluewsc": {"true", "false"}, "chid": {str(i) for i in range(7)}}


@pytest.mark.parametrize("name", SHIPPED)
def test_each_task_reads_a_few_real_rows(name, tmp_path, bundled_tokenizer):
    folder = fewclue_dir(name)
    task = get_task(name)
    with open(os.path.join(folder, "train_0.json"), encoding="utf-8") as f:
        head = [next(f) for _ in range(6)]
    rows = task.read(write_lines(tmp_path / "train_0.json", [line.rstrip("\n") for line in head]))
    assert len(rows) == 6
    for row, label in rows:
        assert label in set(task.labels) and "id" not in row and "label" not in row
        for field in task.fields:
            Pattern("{%s}[MASK]" % field).check_fields(row, name)
    dev = task.read(os.path.join(folder, "dev_0.json"))  # a whole real file
    assert {label for _, label in dev} <= LABELS.get(name, set(task.labels))
    if name in LABELS:
        assert {label for _, label in dev} == LABELS[name]
    from few_shot.preprocessor import PromptPreprocessor
    for pattern in (task.zero_shot_pattern, task.ptuning_pattern):
        pre = PromptPreprocessor(bundled_tokenizer, pattern, task.verbalizer, maxlen=128)
        data = pre.encode(rows)
        assert max(data.lengths) <= 128 and (data.labels >= 0).all()
        for ids, masks in zip(data.token_ids, data.mask_positions):
            assert [ids[p] for p in masks] == [bundled_tokenizer.mask_id] * pre.num_masks
    if name in ("bustm", "ocnli"):  # the pattern's [SEP] gives the second sentence segment 1
        assert 1 in data.segment_ids[0]


def test_task_labels_match_the_real_label_sets():
    for name, field in (("iflytek", "label"), ("csldcp", "label"), ("tnews", "label")):
        folder = fewclue_dir(name)
        with open(os.path.join(folder, "train_few_all.json"), encoding="utf-8") as f:
            seen = {str(json.loads(line)[field]) for line in f if line.strip()}
        assert seen <= set(get_task(name).labels), name
    with open(os.path.join(fewclue_dir("csldcp"), "labels_all.txt"), encoding="utf-8") as f:
        assert [line.strip() for line in f if line.strip()] == get_task("csldcp").labels


def test_eprstmt_reads_by_the_same_rules(tmp_path):
    path = write_lines(tmp_path / "train_0.json", [{"id": 1, "sentence": "外包装上有点磨损，试听后感觉不错", "label": "Positive"},
                                                   {"id": 2, "sentence": "太差了", "label": "Negative"}])
    assert get_task("eprstmt").read(path) == [({"sentence": "外包装上有点磨损，试听后感觉不错"}, "Positive"),
                                              ({"sentence": "太差了"}, "Negative")]
    bad = write_lines(tmp_path / "dev_0.json", [{"sentence": "好", "label": "Positive"},
                                                {"sentence": "好", "label": "Neutral"}])
    with pytest.raises(FewShotError, match=r"dev_0\.json:2: label 'Neutral' is not a eprstmt label"):
        get_task("eprstmt").read(bad)


@pytest.mark.parametrize("task, row, needle", [
    ("bustm", {"sentence1": "好", "label": "1"}, "no field 'sentence2'"),
    ("bustm", {"sentence1": "好", "sentence2": "好", "label": "2"}, "label '2' is not a bustm label (0, 1)"),
    ("cluewsc", {"text": "他来了", "target": {"span1_text": "他"}, "label": "true"}, "no field 'target.span2_text'"),
    ("chid", {"content": "没有空格", "candidates": ["一心一意"] * 7, "answer": 0}, "holds the blank #idiom# 0 times"),
    ("chid", {"content": "#idiom#", "candidates": ["一心一意"] * 6 + ["一心一意了"], "answer": 0},
     "candidate '一心一意了' has 5 characters, the blank takes 4"),
    ("chid", {"content": "#idiom#", "candidates": ["一心一意"] * 7, "answer": 7}, "label '7' is not a chid label"),
    ("iflytek", {"sentence": "打车软件", "label": 119}, "label '119' is not a iflytek label (119 labels)"),
])
def test_bad_rows_are_one_line_errors_with_file_and_line(task, row, needle, tmp_path):
    good = {"bustm": {"sentence1": "好", "sentence2": "好", "label": "1"}}.get(task)
    path = write_lines(tmp_path / "train_0.json", ([good] if good else []) + [row])
    with pytest.raises(FewShotError) as e:
        get_task(task).read(path)
    message = str(e.value)
    assert message.startswith(f"{path}:{2 if good else 1}: ") and needle in message and "\n" not in message


def test_ocnli_rows_without_gold_label_are_skipped_and_counted(tmp_path):
    rows = [{"sentence1": "甲", "sentence2": "乙", "label": lab} for lab in ("entailment", "-", "neutral", "-")]
    with pytest.warns(UserWarning, match=r"skipped 2 row\(s\) without a gold label \('-'\) at line 2, 4"):
        kept = get_task("ocnli").read(write_lines(tmp_path / "dev_0.json", rows))
    assert [label for _, label in kept] == ["entailment", "neutral"]


def test_run_config_takes_the_task_defaults_and_explicit_options_override():
    from few_shot import run
    folder = fewclue_dir("bustm")
    config = RunConfig(data=folder, task="bustm", fewclue_fold="0")
    assert config.resolved_pattern() == get_task("bustm").ptuning_pattern
    assert config.replace(method="zeroshot").resolved_pattern() == get_task("bustm").zero_shot_pattern
    inputs = run.prepare(config.replace(max_test=5))
    assert len(inputs.train) == 32 and len(inputs.test) == 5 and inputs.verbalizer.mapping == {"0": "不", "1": "相"}
    assert isinstance(inputs.train[0][0], dict)
    own = run.prepare(config.replace(pattern="[u1][MASK]{sentence2}", verbalizer="0:否,1:是", max_test=5))
    assert own.pattern.template == "[u1][MASK]{sentence2}" and own.verbalizer.mapping == {"0": "否", "1": "是"}
    for bad, needle in ((dict(task="nope"), "choose one of"), (dict(fewclue_fold=None), "add --fewclue-fold")):
        with pytest.raises(FewShotError, match=needle):
            config.replace(**bad).check()


def test_every_registered_task_has_a_module():
    assert sorted(TASK_NAMES) == sorted(SHIPPED + ("eprstmt",))
    for name in TASK_NAMES:
        task = get_task(name)
        assert task.name == name and Pattern(task.ptuning_pattern).prompt_tokens
        assert not Pattern(task.zero_shot_pattern).prompt_tokens


def test_classical_reference_reads_dict_rows():
    from few_shot.baselines import row_text
    assert row_text({"text": "他来了", "target": {"span1_text": "张三", "span2_text": "他"}}) == "张三 [SEP] 他 [SEP] 他来了"
    assert row_text({"abst": "摘要", "keyword": ["a", "b"]}) == "摘要 [SEP] a，b"


# -- scripts ----------------------------------------------------------------------------------

def run_script(*args, script="fewclue.py"):
    return subprocess.run([sys.executable, os.path.join(REPO_ROOT, "scripts", script), *args], capture_output=True,
                          text=True, cwd=REPO_ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=900)


def test_bad_task_is_a_one_line_error_before_tensorflow(tmp_path):
    result = run_script("--tasks", "bustm,nope", "--output", str(tmp_path / "o"))
    assert result.returncode == 2 and "--task 'nope': choose one of" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "o").exists()
    alias = run_script("--tasks", "chid", script="tnews.py")
    assert alias.returncode == 2 and "tnews only" in alias.stderr


@pytest.mark.slow
def test_fewclue_script_two_tasks_end_to_end_and_resume(tmp_path):
    fewclue_dir("bustm")
    fewclue_dir("chid")
    out = tmp_path / "fc"
    args = ["--tasks", "bustm,chid", "--methods", "zeroshot,ptuning", "--folds", "0", "--epochs", "1",
            "--passes-per-epoch", "1", "--max-test", "20", "--max-valid", "20", "--maxlen", "64",
            "--output", str(out)]
    first = run_script(*args)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    got = {(r["task"], r["method"]) for r in results["runs"]}
    assert got == {(t, m) for t in ("bustm", "chid") for m in ("zeroshot", "ptuning", "tfidf-lr")}
    assert all(0.0 <= r["test_acc"] <= 1.0 for r in results["runs"])
    table = (out / "results.md").read_text(encoding="utf-8")
    assert "| method | Score | bustm | chid |" in table and "| ptuning |" in table and "| tfidf-lr |" in table
    metrics = json.loads((out / "runs" / "chid" / "ptuning_f0" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["config"]["task"] == "chid" and metrics["config"]["pattern"] == get_task("chid").ptuning_pattern
    again = run_script(*args)
    assert again.returncode == 0 and again.stdout.count("reused") + again.stderr.count("reused") == 4
