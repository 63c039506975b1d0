"""few_shot.datasets: tsv/csv/json-lines readers, FewCLUE folders, sampling; bad files name file and line."""
import json
import os
import sys
import warnings

import pytest

from few_shot import FewShotError
from few_shot import datasets as ds

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return str(path)


def test_tsv_reader_keeps_tabs_in_text_and_strips(tmp_path):
    path = write(tmp_path / "a.tsv", "很好\t1\n有\t制表符\t0\r\n\n  太差 \t0\n")
    assert ds.read_examples(path) == [("很好", "1"), ("有\t制表符", "0"), ("太差", "0")]


def test_csv_reader_with_default_and_named_fields(tmp_path):
    path = write(tmp_path / "a.csv", 'id,sentence,label\n1,"好,很好",1\n2,差,0\n')
    assert ds.read_examples(path) == [("好,很好", "1"), ("差", "0")]
    path = write(tmp_path / "b.csv", "review,y\n不错,1\n")
    assert ds.read_examples(path, text_field="review", label_field="y") == [("不错", "1")]
    with pytest.raises(FewShotError, match=r"b\.csv:1: no text field 'text' .*--text-field"):
        ds.read_examples(path, text_field="text", label_field="y")
    with pytest.raises(FewShotError, match=r"b\.csv:1: no text field among review, y; name it with --text-field"):
        ds.read_examples(path)


def test_jsonl_reader_fewclue_style(tmp_path):
    rows = [{"label": 102, "label_desc": "news_entertainment", "sentence": "明星新片", "keywords": ""},
            {"label": 103, "label_desc": "news_sports", "sentence": "球队夺冠", "keywords": "x"}]
    path = write(tmp_path / "a.json", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    assert ds.read_examples(path) == [("明星新片", "102"), ("球队夺冠", "103")]
    assert ds.read_examples(path, label_field="label_desc")[1] == ("球队夺冠", "news_sports")
    assert ds.read_examples(path, text_field="keywords", label_field="label") == [("x", "103")]  # empty skipped


def test_empty_and_duplicate_texts_warn_with_line_numbers(tmp_path):
    path = write(tmp_path / "a.tsv", "好\t1\n\t0\n好\t1\n差\t0\n差\t1\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = ds.read_examples(path)
    assert rows == [("好", "1"), ("好", "1"), ("差", "0"), ("差", "1")]
    messages = [str(w.message) for w in caught if issubclass(w.category, ds.DataWarning)]
    assert any("skipped 1 empty text(s) at line 2" in m and "a.tsv" in m for m in messages), messages
    assert any("2 duplicate text(s) at line 3, 5" in m for m in messages), messages


@pytest.mark.parametrize("name,content,needle", [
    ("a.tsv", "好\t1\n没有制表符\n", "a.tsv:2: no tab"),
    ("a.tsv", "好\t1\n差\t\n", "a.tsv:2: empty label"),
    ("a.json", '{"text": "好", "label": 1}\n{"text": "差", "label": 0\n', "a.json:2: not a JSON object"),
    ("a.json", '{"text": "好", "label": 1}\n[1, 2]\n', "a.json:2: not a JSON object"),
    ("a.json", '{"text": "好", "label": 1}\n{"txt": "差", "label": 0}\n', "a.json:2: no text field"),
    ("a.csv", "text,label\n好,1\n差\n", "a.csv:3: 1 columns, the header has 2"),
    ("a.tsv", "", "a.tsv: no labelled rows"),
])
def test_bad_rows_name_file_and_line(tmp_path, name, content, needle):
    path = write(tmp_path / name, content)
    with pytest.raises(FewShotError) as e:
        ds.read_examples(path)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_non_utf8_names_the_lines(tmp_path):
    path = write(tmp_path / "gbk.tsv", "好\t1\n".encode() + "很差\t0\n".encode("gbk") + "行\t1\n".encode())
    with pytest.raises(FewShotError, match=r"gbk\.tsv: line 2 not UTF-8.*iconv"):
        ds.read_examples(path)


def make_fewclue(folder, folds=(0,)):
    folder.mkdir()
    line = lambda i, label: json.dumps({"label": label, "sentence": f"新闻{i}", "id": i}, ensure_ascii=False)  # noqa
    for fold in folds:
        write(folder / f"train_{fold}.json", "".join(line(i + 100 * fold, 100 + i % 3) + "\n" for i in range(9)))
        write(folder / f"dev_{fold}.json", "".join(line(i + 50, 100 + i % 3) + "\n" for i in range(6)))
    write(folder / "test_public.json", "".join(line(i + 70, 100 + i % 3) + "\n" for i in range(12)))
    write(folder / "test.json", "".join(json.dumps({"sentence": "无标签", "id": i}) + "\n" for i in range(3)))
    return str(folder)


def test_load_fewclue_fold(tmp_path):
    folder = make_fewclue(tmp_path / "tnews", folds=(0, 1))
    splits = ds.load_fewclue(folder, 1)
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [9, 6, 12]
    assert splits["train"][0] == ("新闻100", "100") and ds.label_counts(splits["train"]) == {"100": 3, "101": 3,
                                                                                             "102": 3}
    with pytest.raises(FewShotError, match=r"train_3\.json: not found.*fold 0-4 or all"):
        ds.load_fewclue(folder, 3)
    with pytest.raises(FewShotError, match="no such folder"):
        ds.load_fewclue(str(tmp_path / "nope"), 0)


def test_load_task_layouts(tmp_path):
    for split in ("train", "dev", "test"):
        write(tmp_path / f"{split}.csv", "text,label\n好,1\n差,0\n")
    assert {k: len(v) for k, v in ds.load_task(str(tmp_path)).items()} == {"train": 2, "valid": 2, "test": 2}
    write(tmp_path / "train.tsv", "好\t1\n")
    with pytest.raises(FewShotError, match="several train files"):
        ds.load_task(str(tmp_path))


def test_stratified_sample_is_balanced_and_deterministic():
    rows = [(f"t{i}", str(i % 3)) for i in range(30)] + [("rare", "3")]
    a = ds.stratified_sample(rows, 10, seed=1)
    assert a == ds.stratified_sample(rows, 10, seed=1)
    assert a != ds.stratified_sample(rows, 10, seed=2)
    counts = ds.label_counts(a)
    assert sum(counts.values()) == 10 and len(set(a)) == 10
    assert counts == {"0": 3, "1": 3, "2": 3, "3": 1}  # the rare label gives its share to the others
    for seed in range(20):  # labels with enough rows never differ by more than one
        for k in (5, 7, 10, 13):
            full = [n for label, n in ds.label_counts(ds.stratified_sample(rows, k, seed)).items() if label != "3"]
            assert max(full) - min(full) <= 1, (seed, k)
    assert sorted(ds.label_counts(ds.stratified_sample(rows, 12, seed=0)).values()) == [1, 3, 4, 4]
    for k in (0, 32):
        with pytest.raises(FewShotError, match=f"--k {k}: must be between 1 and the 31"):
            ds.stratified_sample(rows, k, seed=0)


def test_first_fraction_is_168_rows_of_bundled_sentiment(sentiment_rows):
    rows = ds.read_examples(os.path.join(REPO, "data", "sentiment", "sentiment.train.data"))
    assert len(rows) == 16883
    first = ds.first_fraction(rows, 0.01)
    assert len(first) == 168 and first == rows[:168]
    assert first == [(text.strip(), label) for text, label in sentiment_rows("train")[:168]]  # texts stripped
    with pytest.raises(FewShotError, match="0 rows"):
        ds.first_fraction(rows[:50], 0.01)


@pytest.mark.parametrize("content,needle", [
    ("好\t1\n坏的一行\n", "train.tsv:2: no tab"),
    ("好\t1\n差\t7\n", "labels ['7'] are not in the verbalizer"),
])
def test_main_script_reports_bad_data_in_one_line(tmp_path, monkeypatch, capsys, content, needle):
    sys.path.insert(0, REPO)
    import few_shot_ptuning
    data = tmp_path / "data"
    data.mkdir()
    write(data / "train.tsv", content)
    write(data / "valid.tsv", "好\t1\n")
    write(data / "test.tsv", "差\t0\n")
    monkeypatch.setattr(sys, "argv", ["few_shot_ptuning.py", "--data", str(data), "--k", "1",
                                      "--output", str(tmp_path / "o")])
    with pytest.raises(SystemExit) as e:
        few_shot_ptuning.main()
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert str(data) in err[0]


def test_fewclue_through_the_main_script_options(tmp_path):
    """--fewclue-fold with the tnews verbalizer: labels are checked against the 15 tnews ids."""
    from few_shot.config import RunConfig
    from few_shot.tasks import load_splits, make_verbalizer
    folder = make_fewclue(tmp_path / "tnews")
    config = RunConfig(data=folder, fewclue_fold="0", seed=1, max_test=5)
    train, valid, test = load_splits(config, make_verbalizer("tnews"))
    assert (len(train), len(valid), len(test)) == (9, 6, 5)
    three = load_splits(config.replace(k=3), make_verbalizer("tnews"))[0]
    assert ds.label_counts(three) == {"100": 1, "101": 1, "102": 1}


def test_max_test_warns_when_the_cut_loses_labels():
    from few_shot.datasets import first_rows
    rows = [(f"t{i}", str(i // 10)) for i in range(30)]  # ordered by label, as FewCLUE test_public
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert first_rows(rows, 10, "--max-test") == rows[:10]
        assert first_rows(rows, None, "--max-test") == rows
    messages = [str(w.message) for w in caught if issubclass(w.category, ds.DataWarning)]
    assert messages == ["--max-test 10 keeps 1 of the 3 labels (the file is ordered by label?); "
                        "evaluate on more rows or all of them"]
