#!/usr/bin/env python
"""Load test of the multi-task server (few_shot_ptuning.py --serve) on loopback, bounded in time and requests:

    python scripts/load_test.py                                  # 3 demo tasks on the bundled MLM, 15 s per setting
    python scripts/load_test.py --seconds 5 --json /tmp/load.json
    python scripts/load_test.py --task sentiment=runs/p1 --task tnews=runs/t1/prompt.safetensors

Every request carries one row of a task drawn at random (a fixed seed), texts from the sentiment test set
(a pair task gets two of them). Setups, each at concurrency 1, 8 and 32 (--concurrency):

    multi        one --serve process with every task: rows of all tasks micro-batched into one MLM pass
    per-task     one --serve process per task (the same server code, one task each); a request goes to its task's
    loop         PromptClassifier(task).predict_proba([row]) per request in one process (the single-task Python
                 API, one MLM shared by the classifiers; threads for concurrency)
    loop-scorer  the same with one Scorer per task kept between calls (no tf.function per call)

Per setting: requests, errors (non-200, a wrong number of predictions, an exception), throughput, p50/p95/p99
latency, rows per MLM pass (the servers' /healthz counters), and the resident memory of the serving processes
(VmRSS from /proc; summed over the per-task servers). Each setting runs --seconds after a warm-up, or until
--max-requests; every server is started here (127.0.0.1, a free port) and stopped with SIGTERM at the end.
Results: --json (default docs/results/serving_load.json, the schema of scripts/docs_tables.py).
"""
import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SETUPS = ("multi", "per-task", "loop", "loop-scorer")
HOST = "127.0.0.1"  # loopback only
DEMO = {  # name: (pattern, verbalizer) of the demo tasks (random prompt rows: serving speed needs no training)
    "sentiment": ("[u1][u2][u3][u4][MASK][u5][u6][u7][u8]{text}", {"0": "不", "1": "很"}),
    "tnews": ("[u1][u2][u3][u4][MASK][u5][u6][u7][u8]{sentence}", "tnews"),
    "bustm": ("[u1][u2][u3][u4][MASK][u5][u6][u7][u8]{sentence1}[SEP]{sentence2}", {"0": "不", "1": "相"}),
}


def rss_mb(pid):
    """Resident memory of a process in MB (psutil if installed, else /proc/PID/status)."""
    try:
        import psutil
        return psutil.Process(pid).memory_info().rss / 2 ** 20
    except ImportError:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def make_demo_tasks(folder, model_dir):
    """The demo tasks as prompt files in `folder` -> {name: path}."""
    import numpy as np

    from few_shot import build_model, load_mlm, save_portable_prompt
    from few_shot.preprocessor import PromptPreprocessor
    from few_shot.tasks import make_verbalizer
    mlm = load_mlm(model_dir)
    files = {}
    for seed, (name, (pattern, verbalizer)) in enumerate(DEMO.items()):
        verbalizer = make_verbalizer(verbalizer).mapping if isinstance(verbalizer, str) else verbalizer
        model = build_model("prompt", mlm, PromptPreprocessor(mlm.tokenizer, pattern, verbalizer, 128))
        rows = model.prompt_encoder.weights[0].numpy()
        model.prompt_encoder.set_initial_embeddings(rows + np.random.default_rng(seed).normal(0, 0.5, rows.shape))
        files[name] = save_portable_prompt(model, os.path.join(folder, f"{name}.safetensors"), model_ref=model_dir)
    return files


def task_fields(target):
    """The pattern's fields of a task, read without TensorFlow (a prompt file's header, a run's model.keras)."""
    from few_shot.pattern import Pattern
    if os.path.isfile(target):
        from few_shot.portable import FORMAT, read_tensors
        return list(Pattern(read_tensors(target, FORMAT, "prompt.safetensors")[1]["pattern"]).fields)
    import zipfile
    with zipfile.ZipFile(os.path.join(target, "model.keras")) as z:
        config = json.loads(z.read("config.json"))["config"]
    return list(Pattern(config["preprocessor"]["config"]["pattern"]).fields)


def request_plan(tasks, n, seed):
    """n (task, row) pairs: tasks at random, texts from the sentiment test set (a field each)."""
    from few_shot.paths import DEFAULT_DATA
    with open(os.path.join(DEFAULT_DATA, "sentiment.test.data"), encoding="utf-8") as f:
        texts = [line.rsplit("\t", 1)[0] for line in f if line.strip()]
    rng = random.Random(seed)
    fields = {name: task_fields(target) for name, target in tasks.items()}
    names = list(tasks)
    plan = []
    for _ in range(n):
        name = rng.choice(names)
        plan.append((name, {f: rng.choice(texts) for f in fields[name]}))
    return plan


# -- the servers ---------------------------------------------------------------------------------------------

def start_servers(groups, args, timeout=600):
    """One --serve process per group ({name: target}) on a free port -> [(Popen, base url)], all started."""
    procs = []
    for group in groups:
        cmd = [sys.executable, os.path.join(ROOT, "few_shot_ptuning.py"), "--serve",
               *[f"{n}={t}" for n, t in group.items()], "--host", HOST, "--port", "0",
               "--max-batch-size", str(args.max_batch_size), "--max-wait-ms", str(args.max_wait_ms),
               "--workers", str(args.workers)]
        if args.model:
            cmd += ["--model", args.model]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}))
    servers = []
    for proc in procs:
        line = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not line or f"http://{HOST}:" not in line[0]:
            stop_servers([(p, None) for p in procs])
            raise SystemExit(f"error: a server did not start within {timeout} s (exit status {proc.poll()})")
        servers.append((proc, f"http://{HOST}:{int(line[0].split(HOST + ':')[1].split(':')[0])}"))
    return servers


def stop_servers(servers):
    for proc, _ in servers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc, _ in servers:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def counters(servers):
    import httpx
    total = {"batches": 0, "rows": 0}
    for _, url in servers:
        health = httpx.get(f"{url}/healthz", timeout=30).json()
        for k in total:
            total[k] += health[k]
    return total


async def http_load(route, plan, concurrency, seconds, max_requests):
    """`concurrency` clients sending plan's requests one after another -> (latencies s, errors, wall s)."""
    import httpx
    latencies, errors, issued = [], [0], [0]
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def worker():
            while time.perf_counter() < deadline and issued[0] < max_requests:
                task, row = plan[issued[0] % len(plan)]
                issued[0] += 1
                t = time.perf_counter()
                try:
                    answer = await client.post(f"{route[task]}/v1/models/{task}:predict", json={"instances": [row]})
                    ok = answer.status_code == 200 and len(answer.json()["predictions"]) == 1
                except Exception:  # noqa: BLE001  (counted, the test goes on)
                    ok = False
                latencies.append(time.perf_counter() - t)
                errors[0] += not ok
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, errors[0], time.perf_counter() - start


def server_setup(setup, tasks, plan, args):
    groups = [tasks] if setup == "multi" else [{n: t} for n, t in tasks.items()]
    servers = start_servers(groups, args)
    route = {n: url for group, (_, url) in zip(groups, servers) for n in group}
    results = []
    try:
        asyncio.run(http_load(route, plan[:10 * len(tasks)], 4, 60, 10 * len(tasks)))  # warm-up, not counted
        for c in args.concurrency:
            before = counters(servers)
            latencies, errors, wall = asyncio.run(http_load(route, plan, c, args.seconds, args.max_requests))
            after = counters(servers)
            rows_per_pass = (after["rows"] - before["rows"]) / max(1, after["batches"] - before["batches"])
            memory = sum(rss_mb(p.pid) for p, _ in servers)
            results.append(summary(setup, c, latencies, errors, wall, memory, rows_per_pass, len(servers)))
            print(json.dumps(results[-1]), flush=True)
    finally:
        stop_servers(servers)
    return results


# -- the single-task Python loop (in a child process, so that its memory is its own) -------------------------

def loop_child(spec):
    """--loop-child: load the classifiers, run the settings, print one JSON summary per setting."""
    from few_shot.quiet import start_tensorflow
    start_tensorflow()
    from concurrent.futures import ThreadPoolExecutor

    from few_shot.classifier import PromptClassifier
    from few_shot.loading import load_mlm
    from few_shot.training import Scorer
    tasks, plan = spec["tasks"], [tuple(p) for p in spec["plan"]]
    mlm = load_mlm(spec["model"]) if spec["model"] else None
    if mlm is None:  # the MLM the first task names, shared by all (as the multi-task server does)
        from few_shot.multitask import load_task
        mlm = load_mlm(load_task(*next(iter(tasks.items()))).meta["model"])
    classifiers = {n: PromptClassifier.load(t, mlm) for n, t in tasks.items()}
    scorers = {n: Scorer(c.model) for n, c in classifiers.items()}

    def call(task, row):
        c = classifiers[task]
        if spec["setup"] == "loop":
            return c.predict_proba([row])
        return scorers[task].scores(c.preprocessor.encode_texts([row]))

    for task, row in plan[:10 * len(tasks)]:
        call(task, row)  # warm-up
    for c in spec["concurrency"]:
        latencies, errors, issued = [], [0], [0]
        lock = threading.Lock()
        start = time.perf_counter()
        deadline = start + spec["seconds"]

        def worker():
            while True:
                with lock:
                    if time.perf_counter() >= deadline or issued[0] >= spec["max_requests"]:
                        return
                    task, row = plan[issued[0] % len(plan)]
                    issued[0] += 1
                t = time.perf_counter()
                try:
                    ok = len(call(task, row)) == 1
                except Exception:  # noqa: BLE001
                    ok = False
                with lock:
                    latencies.append(time.perf_counter() - t)
                    errors[0] += not ok
        with ThreadPoolExecutor(c) as pool:
            for f in [pool.submit(worker) for _ in range(c)]:
                f.result()
        wall = time.perf_counter() - start
        print(json.dumps(summary(spec["setup"], c, latencies, errors[0], wall, rss_mb(os.getpid()), 1.0, 1)),
              flush=True)


def loop_setup(setup, tasks, plan, args):
    spec = {"setup": setup, "tasks": tasks, "plan": plan, "model": args.model, "concurrency": args.concurrency,
            "seconds": args.seconds, "max_requests": args.max_requests}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f, ensure_ascii=False)
    try:
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--loop-child", f.name], cwd=ROOT, text=True,
                             capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                             timeout=600 + len(args.concurrency) * args.seconds * 3)
    finally:
        os.unlink(f.name)
    results = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or len(results) != len(args.concurrency):
        raise SystemExit(f"error: the {setup} setup failed: {out.stderr[-2000:]}")
    for r in results:
        print(json.dumps(r), flush=True)
    return results


def summary(setup, concurrency, latencies, errors, wall, memory, rows_per_pass, processes):
    ms = sorted(1000 * x for x in latencies) or [float("nan")]

    def pct(q):
        return ms[min(len(ms) - 1, int(round(q * (len(ms) - 1))))]
    return {"setup": setup, "concurrency": concurrency, "requests": len(latencies), "errors": errors,
            "throughput": len(latencies) / wall, "p50_ms": pct(0.5), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
            "rows_per_pass": rows_per_pass, "rss_mb": memory, "processes": processes}


# -- main --------------------------------------------------------------------------------------------------------

def results_json(results, args, tasks, command):
    names = {"multi": "multi-task server (1 process)", "per-task": f"one server per task ({len(tasks)} processes)",
             "loop": "predict_proba loop (1 process)", "loop-scorer": "Scorer loop (1 process)"}
    rows = [[names[r["setup"]], r["concurrency"], r["requests"], r["errors"], r["throughput"], r["p50_ms"],
             r["p95_ms"], r["p99_ms"], r["rows_per_pass"], r["rss_mb"]] for r in results]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "title": f"Serving {len(tasks)} tasks on one CPU machine: one multi-task server vs one server per task vs a "
                 f"Python loop",
        "command": command,
        "source": "written by scripts/load_test.py",
        "protocol": (f"{cores} CPU cores shared with other jobs (the load test at nice 10), the client in its own "
                     f"process (asyncio + httpx, keep-alive, loopback). Tasks: {', '.join(tasks)} (prompt files on "
                     f"the bundled zh-bert-mini; sentiment 2 labels, tnews 15 two-character labels, bustm a sentence "
                     f"pair). One row per request, tasks drawn at random (seed {args.seed}), texts from the sentiment "
                     f"test set. Each setting: a warm-up, then {args.seconds:g} s or {args.max_requests} requests. "
                     f"Servers: --max-batch-size {args.max_batch_size} --max-wait-ms {args.max_wait_ms:g} --workers "
                     f"{args.workers}. Rows per "
                     f"pass: rows scored per pass of the MLM (the servers' /healthz counters). RSS: resident memory "
                     f"of the serving processes after the setting, summed over processes; the loop setups share one "
                     f"MLM between the classifiers."),
        "columns": [{"name": "setup", "align": "left"}, {"name": "concurrency", "align": "right"},
                    {"name": "requests", "align": "right"}, {"name": "errors", "align": "right"},
                    {"name": "throughput", "align": "right", "fmt": ".1f", "unit": "req/s"},
                    {"name": "p50", "align": "right", "fmt": ".0f", "unit": "ms"},
                    {"name": "p95", "align": "right", "fmt": ".0f", "unit": "ms"},
                    {"name": "p99", "align": "right", "fmt": ".0f", "unit": "ms"},
                    {"name": "rows per pass", "align": "right", "fmt": ".1f"},
                    {"name": "server RSS", "align": "right", "fmt": ".0f", "unit": "MB"}],
        "rows": rows,
    }


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--loop-child"]:
        with open(argv[1], encoding="utf-8") as f:
            return loop_child(json.load(f))
    from few_shot.argtypes import non_negative_float, positive_float, positive_int
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", action="append", metavar="NAME=TARGET", help="a task to serve (default: 3 demo tasks "
                   "made on --model or the bundled MLM)")
    p.add_argument("--model", help="the MLM folder (default: the one the tasks name; the bundled one for the demo)")
    p.add_argument("--setups", default=",".join(SETUPS), help=f"comma-separated, of {', '.join(SETUPS)}")
    p.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts (default 1,8,32)")
    p.add_argument("--seconds", type=positive_float, default=15.0, help="per setting (default 15; at most 300)")
    p.add_argument("--max-requests", type=positive_int, default=20000, help="per setting (default 20000)")
    p.add_argument("--max-batch-size", type=positive_int, default=32)
    p.add_argument("--max-wait-ms", type=non_negative_float, default=5.0)
    p.add_argument("--workers", type=positive_int, default=2, help="the servers' --workers (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=os.path.join(ROOT, "docs", "results", "serving_load.json"))
    args = p.parse_args(argv)
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    try:
        args.concurrency = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        p.error(f"--concurrency {args.concurrency!r}: comma-separated integers, e.g. 1,8,32")
    if any(s not in SETUPS for s in setups) or not setups:
        p.error(f"--setups {args.setups!r}: choose from {', '.join(SETUPS)}")
    if args.seconds > 300 or not all(1 <= c <= 256 for c in args.concurrency):
        p.error("--seconds is at most 300 and each concurrency 1-256: the test is bounded")
    from few_shot.errors import user_errors
    from few_shot.serving_targets import check_task_target, parse_task_specs
    with user_errors(), tempfile.TemporaryDirectory() as work:
        if args.task:
            tasks = parse_task_specs(args.task, "--task")
            for name, target in tasks.items():
                check_task_target(name, target)
        else:
            from few_shot.paths import DEFAULT_MODEL
            args.model = args.model or DEFAULT_MODEL
            from few_shot.quiet import start_tensorflow
            start_tensorflow()
            tasks = make_demo_tasks(work, args.model)
        plan = request_plan(tasks, 5000, args.seed)
        results = []
        for setup in setups:
            print(f"-- {setup}", file=sys.stderr, flush=True)
            run = server_setup if setup in ("multi", "per-task") else loop_setup
            results += run(setup, tasks, plan, args)
    command = "python scripts/load_test.py " + " ".join(argv) if argv else "python scripts/load_test.py"
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(results_json(results, args, tasks, command.strip()), f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
