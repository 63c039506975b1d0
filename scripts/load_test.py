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


# -- the setups: each started once, then run setting after setting ------------------------------------------

def read_line(proc, timeout):
    """The next stdout line of `proc` within `timeout` seconds ("" when none came)."""
    line = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return line[0] if line else ""


class Servers:
    """--serve processes on free loopback ports: one with every task (multi) or one per task (per-task)."""

    def __init__(self, name, tasks, args):
        self.name, self.groups = name, [tasks] if name == "multi" else [{n: t} for n, t in tasks.items()]
        self.procs, self.route = [], {}
        for group in self.groups:
            cmd = [sys.executable, os.path.join(ROOT, "few_shot_ptuning.py"), "--serve",
                   *[f"{n}={t}" for n, t in group.items()], "--host", HOST, "--port", "0",
                   "--max-batch-size", str(args.max_batch_size), "--max-wait-ms", str(args.max_wait_ms),
                   "--workers", str(args.workers)] + (["--model", args.model] if args.model else [])
            self.procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                               text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}))

    def ready(self, timeout=900):
        for group, proc in zip(self.groups, self.procs):
            line = read_line(proc, timeout)
            if f"http://{HOST}:" not in line:
                raise SystemExit(f"error: a {self.name} server did not start (exit status {proc.poll()})")
            url = f"http://{HOST}:{int(line.split(HOST + ':')[1].split(':')[0])}"
            self.route.update({n: url for n in group})

    def counters(self):
        import httpx
        total = {"batches": 0, "rows": 0}
        for url in dict.fromkeys(self.route.values()):
            health = httpx.get(f"{url}/healthz", timeout=60).json()
            for k in total:
                total[k] += health[k]
        return total

    def run(self, plan, concurrency, seconds, max_requests):
        before = self.counters()
        latencies, errors, wall = asyncio.run(http_load(self.route, plan, concurrency, seconds, max_requests))
        after = self.counters()
        return {"latencies": latencies, "errors": errors, "wall": wall, "rows": after["rows"] - before["rows"],
                "batches": after["batches"] - before["batches"]}

    def rss(self):
        return sum(rss_mb(p.pid) for p in self.procs)

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


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


class Loop:
    """The single-task Python API in a child process (its memory its own), run setting by setting over stdin."""

    def __init__(self, name, tasks, args):
        self.name = name
        spec = {"setup": name, "tasks": tasks, "model": args.model}
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--loop-child", json.dumps(spec)],
                                     cwd=ROOT, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})

    def ready(self, timeout=900):
        if read_line(self.proc, timeout).strip() != "ready":
            raise SystemExit(f"error: the {self.name} process did not start (exit status {self.proc.poll()})")

    def run(self, plan, concurrency, seconds, max_requests):
        self.proc.stdin.write(json.dumps({"plan": plan, "concurrency": concurrency, "seconds": seconds,
                                          "max_requests": max_requests}, ensure_ascii=False) + "\n")
        self.proc.stdin.flush()
        line = read_line(self.proc, seconds * 20 + 600)
        if not line.startswith("{"):
            raise SystemExit(f"error: the {self.name} process failed (exit status {self.proc.poll()})")
        return {**json.loads(line), "rows": 0, "batches": 0}

    def rss(self):
        return rss_mb(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def loop_child(spec):
    """--loop-child SPEC: load the classifiers, say "ready", then run each setting read from stdin."""
    from few_shot.quiet import start_tensorflow
    start_tensorflow()
    from concurrent.futures import ThreadPoolExecutor

    from few_shot.classifier import PromptClassifier
    from few_shot.loading import load_mlm
    from few_shot.training import Scorer
    tasks = spec["tasks"]
    if spec["model"]:
        mlm = load_mlm(spec["model"])
    else:  # the MLM the first task names, shared by all the classifiers (as the multi-task server does)
        from few_shot.multitask import load_task
        mlm = load_mlm(load_task(*next(iter(tasks.items()))).meta["model"])
    classifiers = {n: PromptClassifier.load(t, mlm) for n, t in tasks.items()}
    scorers = {n: Scorer(c.model) for n, c in classifiers.items()}

    def call(task, row):
        c = classifiers[task]
        if spec["setup"] == "loop":
            return c.predict_proba([row])
        return scorers[task].scores(c.preprocessor.encode_texts([row]))

    print("ready", flush=True)
    for line in sys.stdin:
        setting = json.loads(line)
        plan = [tuple(p) for p in setting["plan"]]
        latencies, errors, issued = [], [0], [0]
        lock = threading.Lock()
        start = time.perf_counter()
        deadline = start + setting["seconds"]

        def worker():
            while True:
                with lock:
                    if time.perf_counter() >= deadline or issued[0] >= setting["max_requests"]:
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
        with ThreadPoolExecutor(setting["concurrency"]) as pool:
            for f in [pool.submit(worker) for _ in range(setting["concurrency"])]:
                f.result()
        print(json.dumps({"latencies": latencies, "errors": errors[0], "wall": time.perf_counter() - start}),
              flush=True)


def measure(setups, plan, args, tasks):
    """Warm every setup up, then run the settings interleaved: for each round and concurrency every setup in
    turn (the order rotated per round), so that the load of other jobs falls on all of them alike."""
    for s in setups.values():
        s.run(plan, 4, 60, 10 * len(tasks))  # warm-up, not counted
    pooled = {}
    for r in range(args.rounds):
        names = list(setups)[r % len(setups):] + list(setups)[:r % len(setups)]
        for c in args.concurrency:
            for name in names:
                setting = plan[r * 997 % len(plan):] + plan[:r * 997 % len(plan)]
                out = setups[name].run(setting, c, args.seconds, args.max_requests)
                acc = pooled.setdefault((name, c), {"latencies": [], "errors": 0, "wall": 0.0, "rows": 0,
                                                    "batches": 0, "rss": 0.0})
                for k in ("latencies", "errors", "wall", "rows", "batches"):
                    acc[k] += out[k]
                acc["rss"] = max(acc["rss"], setups[name].rss())
                done = len(out["latencies"])
                print(json.dumps({"round": r, "setup": name, "concurrency": c, "requests": done,
                                  "errors": out["errors"], "throughput": round(done / out["wall"], 1)}),
                      file=sys.stderr, flush=True)
    return [summary(name, c, acc) for (name, c), acc in sorted(pooled.items(), key=lambda kv: (
        list(setups).index(kv[0][0]), kv[0][1]))]


def summary(setup, concurrency, acc):
    ms = sorted(1000 * x for x in acc["latencies"]) or [float("nan")]

    def pct(q):
        return ms[min(len(ms) - 1, int(round(q * (len(ms) - 1))))]
    return {"setup": setup, "concurrency": concurrency, "requests": len(acc["latencies"]), "errors": acc["errors"],
            "throughput": len(acc["latencies"]) / acc["wall"], "p50_ms": pct(0.5), "p95_ms": pct(0.95),
            "p99_ms": pct(0.99), "rows_per_pass": acc["rows"] / acc["batches"] if acc["batches"] else 1.0,
            "rss_mb": acc["rss"]}


# -- main --------------------------------------------------------------------------------------------------------

DEMO_NOTE = ("prompt files with random rows on the bundled zh-bert-mini: sentiment 2 labels, tnews 15 two-character "
             "labels, bustm a sentence pair")


def results_json(results, args, tasks, command, demo):
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
                     f"process (asyncio + httpx, keep-alive, loopback). Tasks: {', '.join(tasks)} "
                     f"({DEMO_NOTE if demo else 'given with --task'}). One row per request, tasks drawn at random "
                     f"(seed {args.seed}), texts from the sentiment test set. Every setup's processes run at once "
                     f"(idle when not measured); after a warm-up the settings run interleaved, {args.rounds} "
                     f"round(s) of every concurrency x every setup in turn, {args.seconds:g} s (or "
                     f"{args.max_requests} requests) each, pooled per row. Servers: --max-batch-size "
                     f"{args.max_batch_size} --max-wait-ms {args.max_wait_ms:g} --workers {args.workers}. Rows per "
                     f"pass: rows scored per pass of the MLM (the servers' /healthz counters). Server RSS: resident "
                     f"memory of the serving processes, summed over processes, the largest seen after a setting; "
                     f"the loop setups share one MLM between the task classifiers."),
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
        return loop_child(json.loads(argv[1]))
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
    p.add_argument("--rounds", type=positive_int, default=1, help="rounds over every setting (default 1; the "
                   "results pool the rounds)")
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
        started = {}
        try:
            for name in setups:  # every process starts at once; each is measured alone later
                started[name] = (Servers if name in ("multi", "per-task") else Loop)(name, tasks, args)
            for s in started.values():
                s.ready()
            results = measure(started, plan, args, tasks)
        finally:
            for s in started.values():
                s.stop()
    command = "python scripts/load_test.py " + " ".join(argv) if argv else "python scripts/load_test.py"
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(results_json(results, args, tasks, command.strip(), not args.task), f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
