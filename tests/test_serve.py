"""The multi-task server (few_shot/serve.py, `few_shot_ptuning.py --serve`) in a subprocess on a free loopback
port: TF Serving's REST predict protocol, the probabilities of the single-task model, micro-batches mixing
tasks, the 4xx answers, and SIGTERM finishing the requests in flight."""
import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import BUNDLED_MODEL_DIR, REPO_ROOT

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

TEXTS = ["这家酒店很好", "服务太差了，房间还很吵", "还可以吧", "Wi-Fi 很慢，早餐 ok", "一般般" * 60, "好"]
PAIRS = [{"sentence1": "怎么还款", "sentence2": "如何还钱"}, {"sentence1": "今天天气", "sentence2": "我要借钱"},
         {"sentence1": "额度多少", "sentence2": "能借多少钱"}]
TASKS = {  # name: (pattern, verbalizer)
    "sentiment": ("[u1][u2][u3][u4][MASK][u5][u6][u7][u8]{text}", {"0": "不", "1": "很"}),
    "topics": ("[u1][u2][u3][u4]这是[MASK][MASK]新闻：{text}", {"sports": "体育", "money": "财经", "fun": "娱乐"}),
    "bustm": ("[u1][u2][u3][u4][MASK]{sentence1}[SEP]{sentence2}", {"0": "不", "1": "相"}),
}


def rows_of(task):
    return PAIRS if task == "bustm" else TEXTS


@pytest.fixture(scope="module")
def prompts(tmp_path_factory, bundled_mlm):
    """Prompt files of three tasks on the bundled MLM (random prompt rows: serving needs no training)."""
    from few_shot import build_model, save_portable_prompt
    from few_shot.preprocessor import PromptPreprocessor
    folder = tmp_path_factory.mktemp("serve_prompts")
    files = {}
    for seed, (name, (pattern, verbalizer)) in enumerate(TASKS.items()):
        model = build_model("prompt", bundled_mlm, PromptPreprocessor(bundled_mlm.tokenizer, pattern, verbalizer, 64))
        rows = model.prompt_encoder.weights[0].numpy()
        noise = np.random.default_rng(seed).normal(0, 0.5, rows.shape).astype("float32")
        model.prompt_encoder.set_initial_embeddings(rows + noise)
        files[name] = save_portable_prompt(model, str(folder / f"{name}.safetensors"), model_ref=BUNDLED_MODEL_DIR)
    return files


@pytest.fixture(scope="module")
def expected(prompts, bundled_mlm):
    """What the single-task --predict path gives for every task's rows."""
    from few_shot.classifier import PromptClassifier
    return {name: PromptClassifier.load(path, bundled_mlm).predict_proba(rows_of(name))
            for name, path in prompts.items()}


@pytest.fixture(scope="module")
def server(prompts):
    """`--serve` in a subprocess on a free port (--port 0); rows wait up to 400 ms for others."""
    args = [sys.executable, "few_shot_ptuning.py", "--serve", *[f"{n}={p}" for n, p in prompts.items()],
            "--port", "0", "--max-wait-ms", "400", "--max-batch-size", "64", "--max-instances", "50"]
    proc = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(240)
    if not lines or "serving" not in lines[0]:
        proc.kill()
        pytest.fail(f"the server did not start: {lines} {proc.stderr.read()[-3000:]}")
    port = int(lines[0].split("http://127.0.0.1:")[1].split(":")[0])
    yield proc, f"http://127.0.0.1:{port}"
    if proc.poll() is None:
        proc.kill()
        proc.wait(30)


def post(url, body, **kwargs):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(url, content=data, headers={"content-type": "application/json"}, timeout=60, **kwargs)


def test_predictions_equal_the_single_task_model(server, expected):
    _, url = server
    for task, want in expected.items():
        answer = post(f"{url}/v1/models/{task}:predict", {"instances": rows_of(task)})
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        labels = list(TASKS[task][1])
        assert [p["labels"] for p in predictions] == [labels] * len(want)
        got = np.asarray([p["probabilities"] for p in predictions])
        assert np.abs(got - want).max() < 1e-5, task
        assert [p["label"] for p in predictions] == [labels[i] for i in want.argmax(-1)]
    # the columnar form, the version path and objects with the field name: the same numbers
    fields = {"text": TEXTS}
    answer = post(f"{url}/v1/models/sentiment/versions/1:predict", {"inputs": fields})
    assert np.abs(np.asarray(answer.json()["outputs"]["probabilities"]) - expected["sentiment"]).max() < 1e-5
    answer = post(f"{url}/v1/models/sentiment:predict", {"instances": [{"text": t} for t in TEXTS],
                                                         "signature_name": "serving_default"})
    got = np.asarray([p["probabilities"] for p in answer.json()["predictions"]])
    assert np.abs(got - expected["sentiment"]).max() < 1e-5
    status = httpx.get(f"{url}/v1/models/topics").json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    models = httpx.get(f"{url}/v1/models").json()["models"]
    assert [(m["name"], m["fields"]) for m in models] == [("sentiment", ["text"]), ("topics", ["text"]),
                                                          ("bustm", ["sentence1", "sentence2"])]
    assert httpx.get(f"{url}/v1/models/bustm/metadata").json()["metadata"]["labels"] == ["0", "1"]
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"


def test_a_concurrent_mixed_burst_equals_the_per_task_results(server, expected):
    _, url = server
    before = httpx.get(f"{url}/healthz").json()
    jobs = [(task, k) for k in range(len(TEXTS)) for task in TASKS if k < len(rows_of(task))] * 2

    def call(job):
        task, k = job
        answer = post(f"{url}/v1/models/{task}:predict", {"instances": [rows_of(task)[k]]})
        return answer.status_code, answer.json()
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(call, jobs))
    for (task, k), (code, body) in zip(jobs, answers):
        assert code == 200, body
        assert np.abs(np.asarray(body["predictions"][0]["probabilities"]) - expected[task][k]).max() < 1e-5
    after = httpx.get(f"{url}/healthz").json()
    rows, batches = after["rows"] - before["rows"], after["batches"] - before["batches"]
    assert rows == len(jobs) and batches < rows / 4, (rows, batches)  # micro-batched ...
    assert after["mixed"] > before["mixed"]                             # ... across tasks


@pytest.mark.parametrize("path, body, status, needle", [
    ("/v1/models/nope:predict", {"instances": ["好"]}, 404, "task 'nope' is not served here; tasks: sentiment"),
    ("/v1/models/sentiment:predict", b"{not json", 400, "not JSON"),
    ("/v1/models/sentiment:predict", {"instances": [""]}, 400, "instance 1: field 'text' is empty"),
    ("/v1/models/sentiment:predict", {"instances": ["好", "  "]}, 400, "instance 2: field 'text' is empty"),
    ("/v1/models/sentiment:predict", {"instances": [3]}, 400, "instance 1 is a number"),
    ("/v1/models/sentiment:predict", {"instances": [{"text": None}]}, 400, "'text' is null, not a string"),
    ("/v1/models/sentiment:predict", {"instances": [{"txt": "好"}]}, 400, "unknown field 'txt'"),
    ("/v1/models/sentiment:predict", {"instances": []}, 400, "no instances"),
    ("/v1/models/sentiment:predict", {"instances": "好"}, 400, "\"instances\" is a string"),
    ("/v1/models/sentiment:predict", {"text": ["好"]}, 400, "unknown key 'text'"),
    ("/v1/models/sentiment:predict", {"instances": ["好"] * 51}, 413, "51 instances; at most 50"),
    ("/v1/models/sentiment:predict", {"inputs": {"text": ["好"] * 51}}, 413, "51 instances"),
    ("/v1/models/sentiment:predict", {"instances": ["a" * 5_000_000]}, 413, "bytes"),
    ("/v1/models/bustm:predict", {"instances": ["好"]}, 400, "reads the fields sentence1, sentence2"),
    ("/v1/models/bustm:predict", {"inputs": {"sentence1": ["a"], "sentence2": []}}, 400, "different lengths"),
    ("/v1/models/sentiment/versions/2:predict", {"instances": ["好"]}, 404, "one version, 1"),
    ("/v1/models/sentiment:predict", [1, 2], 400, "the body is a list"),
    ("/v1/models/sentiment:predict", {"instances": ["好"], "signature_name": "other"}, 400, "signature_name"),
])
def test_bad_requests_get_a_4xx_naming_the_problem(server, path, body, status, needle):
    _, url = server
    answer = post(url + path, body)
    assert answer.status_code == status, answer.text
    assert needle in answer.json()["error"]
    assert httpx.get(f"{url}/healthz").status_code == 200  # and the server goes on


def test_other_methods_and_paths_get_json_errors(server):
    _, url = server
    assert httpx.get(f"{url}/v1/models/nope").status_code == 404
    answer = httpx.get(f"{url}/v1/models/sentiment:predict")
    assert answer.status_code in (404, 405) and "error" in answer.json()
    answer = httpx.get(f"{url}/elsewhere")
    assert answer.status_code == 404 and "error" in answer.json()
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as s:  # not HTTP at all
        s.sendall(b"\x00\x01garbage\r\n\r\n")
        s.recv(100)
    assert httpx.get(f"{url}/healthz").status_code == 200


def test_command_line_errors_are_one_line_before_tensorflow(prompts):
    from test_scripts import assert_one_line_error, run
    assert_one_line_error(run("few_shot_ptuning.py", "--serve", "sentiment"), "NAME=TARGET")
    assert_one_line_error(run("few_shot_ptuning.py", "--serve", "a=/no/such/file"), "task a", "no such")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        assert_one_line_error(run("few_shot_ptuning.py", "--serve", f"a={prompts['sentiment']}", "--port", port),
                              "cannot listen there")


def test_sigterm_finishes_the_requests_in_flight_and_exits_0(server, expected):
    proc, url = server
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        calls = [pool.submit(post, f"{url}/v1/models/sentiment:predict", {"instances": TEXTS}) for _ in range(4)]
        time.sleep(0.2)  # the rows now wait (up to 400 ms) for a batch
        proc.send_signal(signal.SIGTERM)
        answers = [c.result() for c in calls]
    for answer in answers:
        assert answer.status_code == 200
        got = np.asarray([p["probabilities"] for p in answer.json()["predictions"]])
        assert np.abs(got - expected["sentiment"]).max() < 1e-5
    assert proc.wait(60) == 0, proc.stderr.read()[-3000:]
    assert "stopped" in proc.stderr.read()


@pytest.mark.slow
def test_load_test_script_runs_bounded_and_writes_the_table_json(tmp_path):
    out = tmp_path / "load.json"
    done = subprocess.run([sys.executable, "scripts/load_test.py", "--setups", "multi,loop-scorer", "--concurrency",
                           "1,4", "--seconds", "1", "--max-requests", "30", "--json", str(out)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    table = json.loads(out.read_text(encoding="utf-8"))
    assert {"title", "command", "source", "protocol", "columns", "rows"} <= set(table)
    assert [(r[0].split(" (")[0], r[1]) for r in table["rows"]] == [
        ("multi-task server", 1), ("multi-task server", 4), ("Scorer loop", 1), ("Scorer loop", 4)]
    assert all(0 < r[2] <= 30 and r[3] == 0 for r in table["rows"])  # bounded, no errors
    assert all(len(r) == len(table["columns"]) for r in table["rows"])
