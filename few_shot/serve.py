"""A local server for many tasks on one frozen MLM (few_shot/multitask.py), speaking TF Serving's REST predict
protocol, so that a client of it is a client of TF Serving with the exported SavedModels (few_shot/export.py):

    python few_shot_ptuning.py --serve sentiment=runs/p1 tnews=runs/tnews/prompt.safetensors --port 8501
    curl -d '{"instances": ["这家酒店很好"]}' http://127.0.0.1:8501/v1/models/sentiment:predict

Endpoints (the exact formats: docs/serving.md):

    POST /v1/models/TASK:predict          {"instances": [...]} -> {"predictions": [...]};
                                          {"inputs": ...} -> {"outputs": ...}   (TF Serving's row / columnar forms)
    POST /v1/models/TASK/versions/1:predict   the same (every task has the one version 1)
    GET  /v1/models/TASK                  {"model_version_status": [{"version": "1", "state": "AVAILABLE", ...}]}
    GET  /v1/models/TASK/metadata         labels, pattern, fields, source
    GET  /v1/models                       every task
    GET  /healthz                         {"status": "ok", ...}

Micro-batching across tasks: the rows of every request (any task) queue up; one worker takes up to
`max_batch_size` rows as soon as that many wait or the oldest has waited `max_wait_ms`, and scores them in
ONE pass of the MLM (MultiTaskModel.probabilities) on a worker thread (`workers` passes at once), while new
requests keep queueing.
A bad request gets a 4xx and {"error": "..."} naming the problem (404 unknown task, 400 not JSON or a bad
instance, 413 a body or instance list over the limits); a failure while scoring is a 500 for the requests
of that batch alone. SIGTERM / Ctrl-C: the server stops accepting connections, finishes the requests in
flight, and exits with status 0. Built on starlette (ASGI) run by uvicorn: `pip install -e '.[serve]'`.
"""
import asyncio
import collections
import json
import os
import signal
import socket
import sys

from few_shot.errors import FewShotError, user_errors
from few_shot.serve_protocol import BadRequest, read_instances, response_body

Pending = collections.namedtuple("Pending", "job index row arrived")


class Job:
    """One request's rows: their results are filled in by whichever batches score them."""

    def __init__(self, future, size):
        self.future, self.results, self.left = future, [None] * size, size


class Batcher:
    """Rows of every task wait in one queue; `run` scores them in batches of at most `max_batch_size` rows,
    each as soon as it is full or its oldest row has waited `max_wait_ms`, on up to `workers` threads at once
    (a second pass overlaps the first: on a CPU one pass of a small model does not keep every core busy)."""

    def __init__(self, model, max_batch_size=32, max_wait_ms=5.0, workers=2):
        from concurrent.futures import ThreadPoolExecutor
        self.model, self.max_batch_size, self.max_wait = model, int(max_batch_size), max(0.0, max_wait_ms) / 1000
        self.pending = collections.deque()
        self.arrived, self.full = asyncio.Event(), asyncio.Event()
        self.free = asyncio.Semaphore(workers)
        self.closing = False
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="few_shot-batcher")
        self.batches = self.rows = self.mixed = 0  # counters for /healthz (mixed: batches of several tasks)

    async def submit(self, encoded):
        """[(task index, EncodedRow)] -> their probabilities, scored with whatever else is waiting."""
        loop = asyncio.get_running_loop()
        job = Job(loop.create_future(), len(encoded))
        now = loop.time()
        self.pending.extend(Pending(job, k, row, now) for k, row in enumerate(encoded))
        self.arrived.set()
        if len(self.pending) >= self.max_batch_size:
            self.full.set()
        return await job.future

    async def run(self):
        loop = asyncio.get_running_loop()
        running = set()
        while self.pending or not self.closing:
            if not self.pending:
                self.arrived.clear()
                await self.arrived.wait()
                continue
            await self.free.acquire()  # a worker is free (rows keep arriving while all are busy)
            while len(self.pending) < self.max_batch_size and not self.closing:
                wait = self.pending[0].arrived + self.max_wait - loop.time()
                if wait <= 0:
                    break
                self.full.clear()
                try:
                    await asyncio.wait_for(self.full.wait(), wait)
                except asyncio.TimeoutError:
                    pass
            batch = [self.pending.popleft() for _ in range(min(self.max_batch_size, len(self.pending)))]
            scoring = asyncio.create_task(self.score(batch))
            running.add(scoring)
            scoring.add_done_callback(running.discard)
        await asyncio.gather(*running)

    async def score(self, batch):
        loop = asyncio.get_running_loop()
        try:
            probs = await loop.run_in_executor(self.executor, self.model.probabilities, [p.row for p in batch])
        except Exception as e:  # noqa: BLE001  (the requests of this batch get a 500; the server goes on)
            for p in batch:
                if not p.job.future.done():
                    p.job.future.set_exception(RuntimeError(f"scoring failed: {type(e).__name__}: {e}"))
            return
        finally:
            self.free.release()
        self.batches, self.rows = self.batches + 1, self.rows + len(batch)
        self.mixed += len({p.row[0] for p in batch}) > 1
        for p, prob in zip(batch, probs):
            p.job.results[p.index] = prob
            p.job.left -= 1
            if not p.job.left and not p.job.future.done():
                p.job.future.set_result(p.job.results)

    async def close(self):
        self.closing = True
        self.arrived.set()
        self.full.set()


def make_app(model, max_batch_size=32, max_wait_ms=5.0, max_instances=1024, workers=2, max_body_bytes=4 << 20):
    """The ASGI app (starlette) serving `model` (a MultiTaskModel)."""
    import contextlib

    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    state = {}

    def error(status, message):
        return JSONResponse({"error": message}, status_code=status)

    def unknown(task):
        return error(404, f"task {task!r} is not served here; tasks: {', '.join(model.task_names)} (GET /v1/models)")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        state["batcher"] = batcher = Batcher(model, max_batch_size, max_wait_ms, workers)
        worker = asyncio.create_task(batcher.run())
        yield
        await batcher.close()  # uvicorn has finished the requests in flight
        await worker
        batcher.executor.shutdown(wait=True)

    async def body_of(request):
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > max_body_bytes:
            raise BadRequest(413, f"the body is {int(size)} bytes; at most {max_body_bytes} are read (send fewer "
                                  f"instances per request)")
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > max_body_bytes:
                raise BadRequest(413, f"the body is over {max_body_bytes} bytes; send fewer instances per request")
            chunks.append(chunk)
        return b"".join(chunks)

    async def predict(request):
        task = request.path_params["task"]
        if task not in model.index:
            return unknown(task)
        if request.path_params.get("version", "1") != "1":
            return error(404, f"task {task!r} has one version, 1; not {request.path_params['version']!r}")
        try:
            body = await body_of(request)
            try:
                payload = json.loads(body)
            except ValueError as e:
                raise BadRequest(400, f"the body is not JSON ({e}); send {{\"instances\": [\"text\", ...]}}") from None
            pre = model.preprocessors[task]
            rows, columnar = read_instances(payload, pre.pattern.fields, max_instances)
            try:
                encoded = [model.encode(task, row) for row in rows]
            except FewShotError as e:
                raise BadRequest(400, str(e)) from None
        except BadRequest as e:
            return error(e.status, e.message)
        try:
            probs = await state["batcher"].submit(encoded)
        except RuntimeError as e:
            return error(500, str(e))
        return JSONResponse(response_body(probs, model.labels(task), columnar))

    def status(request):
        task = request.path_params["task"]
        if task not in model.index:
            return unknown(task)
        return JSONResponse({"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                                       "status": {"error_code": "OK", "error_message": ""}}]})

    def describe(task):
        pre = model.preprocessors[task]
        return {"name": task, "version": "1", "labels": model.labels(task), "fields": list(pre.pattern.fields),
                "pattern": pre.pattern.template, "maxlen": pre.maxlen, "source": model.sources[task]}

    def metadata(request):
        task = request.path_params["task"]
        if task not in model.index:
            return unknown(task)
        return JSONResponse({"model_spec": {"name": task, "signature_name": "serving_default", "version": "1"},
                             "metadata": describe(task)})

    def models(request):
        return JSONResponse({"models": [describe(t) for t in model.task_names]})

    def health(request):
        batcher = state.get("batcher")
        counts = {k: getattr(batcher, k, 0) for k in ("batches", "rows", "mixed")}
        return JSONResponse({"status": "ok", "tasks": list(model.task_names), "pid": os.getpid(), **counts})

    async def http_error(request, exc):
        return error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}; see GET /v1/models")

    async def server_error(request, exc):
        return error(500, f"internal error: {type(exc).__name__}: {exc}")

    routes = [Route("/v1/models/{task}:predict", predict, methods=["POST"]),
              Route("/v1/models/{task}/versions/{version}:predict", predict, methods=["POST"]),
              Route("/v1/models/{task}/metadata", metadata, methods=["GET"]),
              Route("/v1/models/{task}", status, methods=["GET"]),
              Route("/v1/models", models, methods=["GET"]),
              Route("/healthz", health, methods=["GET"])]
    return Starlette(routes=routes, lifespan=lifespan,
                     exception_handlers={HTTPException: http_error, Exception: server_error})


def bind(host, port):
    """A listening socket on host:port (port 0: a free one), before anything heavy loads."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise FewShotError(f"--host {host}: cannot be resolved ({e.strerror}); use e.g. 127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise FewShotError(f"--host {host} --port {port}: cannot listen there ({e.strerror}); pick another --port "
                           f"(0: any free one)") from None
    sock.listen(2048)
    return sock


def warm_up(model):
    """Trace the scoring function before the first request: one batch of every task, then another shape."""
    def row(task):
        fields = model.preprocessors[task].pattern.fields
        return {f: "预热" for f in fields}
    first = [model.encode(t, row(t)) for t in model.task_names]
    model.probabilities(first)
    model.probabilities(first + [model.encode(t, {f: "预热一下服务" for f in model.preprocessors[t].pattern.fields})
                                 for t in model.task_names])


def serve_command(specs, mlm=None, host="127.0.0.1", port=8501, max_batch_size=32, max_wait_ms=5.0,
                  max_instances=1024, workers=2):
    """--serve TASK=TARGET ...: check the tasks (before TensorFlow), load them on one MLM, serve until SIGTERM."""
    import importlib.util

    from few_shot.quiet import start_tensorflow
    from few_shot.serving_targets import check_task_target, parse_task_specs
    with user_errors():
        missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
        if missing:
            raise FewShotError(f"--serve needs {' and '.join(missing)}: pip install -e '.[serve]'")
        targets = parse_task_specs(specs)
        for name, target in targets.items():
            check_task_target(name, target)
        if min(max_batch_size, max_instances, workers) < 1 or not max_wait_ms >= 0:
            raise FewShotError("--max-batch-size, --max-instances and --workers must be >= 1, --max-wait-ms >= 0")
        sock = bind(host, port)
        start_tensorflow()
        from few_shot.multitask import load_tasks
        model = load_tasks(targets, mlm)
        warm_up(model)
    import uvicorn
    app = make_app(model, max_batch_size, max_wait_ms, max_instances, workers)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                           timeout_graceful_shutdown=60))
    bound = sock.getsockname()
    print(f"serving {len(targets)} task(s) ({', '.join(targets)}) on http://{host}:{bound[1]}: POST "
          f"/v1/models/TASK:predict (docs/serving.md); stop with SIGTERM or Ctrl-C", flush=True)
    # uvicorn re-raises the SIGTERM / SIGINT it caught once it has shut down: land it here, then exit 0
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda signum, frame: None)
    server.run(sockets=[sock])
    print("stopped: the requests in flight were answered", file=sys.stderr, flush=True)
