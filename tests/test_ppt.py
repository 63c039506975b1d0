"""Pre-trained prompt tuning (PPT, issue 25): the self-supervised formats, the prompt pretraining command
end to end on a tiny random model (test texts removed, interrupted and resumed to the same prompt), and
a run that starts from a pre-trained prompt file."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from few_shot import FewShotError
from few_shot.prompt_pretraining.formats import ExampleStream, SentenceBank, as_choice, pattern_of, split_sentences

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["今天天气很好。我们去公园散步！公园里人很多。孩子们在放风筝。",
        "这家酒店的服务很周到。房间干净整洁。早餐也不错。下次还会再来。",
        "手机收到了，包装完好。屏幕很清晰。电池续航一般。总体还算满意。",
        "会议推迟到下周一。请大家提前准备材料。有问题随时联系我。"]


def test_sentences_and_examples_are_what_their_labels_say():
    assert split_sentences("天气很好。我们去公园！短。") == ["天气很好。", "我们去公园！"]
    bank = SentenceBank(DOCS)
    rng = np.random.default_rng(0)
    where = {s: (d, i) for d, doc in enumerate(bank.documents) for i, s in enumerate(doc)}
    for _ in range(200):
        row, label = bank.pair(rng)
        (d1, i1), (d2, i2) = where[row["s1"]], where[row["s2"]]
        assert {"next": d1 == d2 and i2 == i1 + 1, "same": d1 == d2 and i2 > i1 + 1, "other": d1 != d2}[label]
        row, label = bank.choice(rng)
        first = row["question"].replace("接下来是哪句？", "")
        d, i = where[first]
        options = row["options"].split("、")[1:]
        assert options[int(label)].rstrip("一二三四") == bank.documents[d][i + 1]
    stream = ExampleStream("unified", bank, 8, seed=3, pseudo=[("房间干净整洁。", "positive")])
    assert stream.batch(5) == stream.batch(5) and stream.batch(5) != stream.batch(6)  # a function of the step
    question, label = as_choice("single", {"text": "好"}, "negative")
    assert label == "1" and "不满意" in question["options"]
    pattern, words = pattern_of("pair", 8)
    assert pattern.startswith("[u1]") and pattern.count("[u") == 8 and set(words.values()) == {"是的", "可能", "不是"}


def test_a_corpus_without_document_breaks_is_refused():
    with pytest.raises(FewShotError, match="one document per line"):
        SentenceBank(["".join(DOCS)])
    with pytest.raises(FewShotError, match="two sentences"):
        SentenceBank(["天气很好", "我们去公园"])


def ppt(*args, cwd):
    return subprocess.Popen([sys.executable, os.path.join(REPO, "scripts", "pretrain_prompts.py"), *args], cwd=cwd,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def tiny_mlm(tmp_path_factory, bundled_vocab_path):
    """A random 2-layer, hidden-32 BERT over the real vocabulary (its label words and corpus characters)."""
    from conftest import build_tiny_bert
    return build_tiny_bert(str(tmp_path_factory.mktemp("ppt_mlm") / "mlm"), bundled_vocab_path, arch="masked_lm",
                           max_position_embeddings=128)


@pytest.fixture(scope="module")
def corpus_and_tests(tmp_path_factory):
    """200 corpus documents (the bundled sentiment train texts, two or three per line) and a FewCLUE folder
    whose test texts include one of those documents' texts."""
    root = tmp_path_factory.mktemp("ppt_data")
    with open(os.path.join(REPO, "data", "sentiment", "sentiment.train.data"), encoding="utf-8") as f:
        texts = [line.rsplit("\t", 1)[0].strip().rstrip("。") + "。" for _, line in zip(range(600), f)]
    docs = ["".join(texts[i:i + 3]) for i in range(0, 600, 3)]
    (root / "corpus.txt").write_text("\n".join(docs) + "\n", encoding="utf-8")
    from few_shot.evaluation_texts import TEST_FIELDS
    for task, fields in TEST_FIELDS.items():
        (root / "fewclue" / task).mkdir(parents=True)
        row = {field: (texts[0] if task == "tnews" else "无关的测试文本内容") for field in fields}
        (root / "fewclue" / task / "test_public.json").write_text(json.dumps(row, ensure_ascii=False) + "\n",
                                                                  encoding="utf-8")
    return str(root / "corpus.txt"), str(root / "fewclue")


@pytest.mark.slow
def test_prompt_pretraining_resumes_to_the_same_prompt(tmp_path, tiny_mlm, corpus_and_tests):
    corpus, fewclue = corpus_and_tests
    common = ["--corpus", corpus, "--model", tiny_mlm, "--fewclue-root", fewclue, "--formats", "pair,single",
              "--steps", "12", "--save-every", "2", "--batch-size", "4", "--maxlen", "64", "--pseudo-labels", "60",
              "--no-progress", "--progress-every", "0.01"]
    whole = ppt(*common, "--output", str(tmp_path / "whole"), cwd=tmp_path)
    out, err = whole.communicate(timeout=600)
    assert whole.returncode == 0, err[-3000:]
    log = json.loads((tmp_path / "whole" / "ppt_log.json").read_text())
    removed = log["removed_test_documents"]
    assert removed["fewclue/tnews/test_public.json"] == 1  # the document holding the tnews test text
    assert removed["fewclue/bustm/test_public.json"] == 0
    assert f"test-text documents removed: {sum(removed.values())}" in out  # (sentiment valid/test texts too)
    assert log["documents_used"] < 200
    assert set(log["formats"]) == {"pair", "single"}
    assert log["formats"]["pair"]["tokens"] > 0 and log["formats"]["pair"]["tokens_per_second"] > 0

    cut = ppt(*common, "--output", str(tmp_path / "cut"), cwd=tmp_path)
    for line in cut.stderr:  # interrupt the pair format after its checkpoint at step 4
        if line.startswith("ppt pair step 5/"):
            cut.send_signal(signal.SIGINT)
            break
    _, err = cut.communicate(timeout=600)
    assert cut.returncode == 130 and "continue with --resume" in err, err[-3000:]
    state = json.loads((tmp_path / "cut" / "checkpoint" / "pair" / "state.json").read_text())
    assert 5 <= state["step"] < 12
    resumed = ppt(*common, "--output", str(tmp_path / "cut"), "--resume", cwd=tmp_path)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0 and "resuming at step" in err, err[-3000:]
    from few_shot.portable import read_portable_prompt
    for fmt in ("pair", "single"):
        a, meta = read_portable_prompt(str(tmp_path / "whole" / f"{fmt}.safetensors"))
        b, _ = read_portable_prompt(str(tmp_path / "cut" / f"{fmt}.safetensors"))
        assert a.shape == (8, 32) and np.allclose(a, b, atol=1e-5), fmt
        assert os.path.realpath(meta["model"]) == os.path.realpath(tiny_mlm)


def test_a_run_starts_from_exactly_the_pretrained_rows(tmp_path):
    from conftest import TinyMLM, tiny_bert, tiny_preprocessor
    from few_shot import RunConfig, build_model
    from few_shot.portable import save_portable_prompt
    backbone, pre = tiny_bert(), tiny_preprocessor()
    source = build_model("prompt", backbone, pre, RunConfig(method="prompt", init="random", seed=7))
    path = save_portable_prompt(source, str(tmp_path / "pair.safetensors"), "tiny")
    expected = np.asarray(source.prompt_embeddings())
    for method in ("prompt", "ptuning"):  # prompt tuning starts from them; P-tuning's encoder reads them
        config = RunConfig(method=method, prompt_init=path)
        model = build_model(method, TinyMLM(backbone, pre.tokenizer), pre, config)
        assert np.array_equal(np.asarray(model.prompt_encoder.embedding.embeddings), expected)
    assert np.array_equal(np.asarray(build_model("prompt", backbone, pre, RunConfig(
        method="prompt", prompt_init=path)).prompt_embeddings()), expected)
    with pytest.raises(FewShotError, match="4 soft tokens"):
        build_model("prompt", backbone, tiny_preprocessor("[u1][u2][MASK][u3][u4]{text}"),
                    RunConfig(method="prompt", prompt_init=path, prompt_length=4))
