"""CPU per request, stage by stage, for one 20-word POST /classify end to end, and the floor of the same stack.

    python -m bench.stages [--models-dir models] [--model sst2-dan-lowrank] [--duration 5]
                           [--out docs/bench-serve.md]

The table replaces its own section of `--out` (between `<!-- bench.stages:start -->` and `:end -->`), or is
appended; `make bench-serve` keeps such sections when it rewrites the rest.

Two views of the same request, in one run:
- **End to end**: a real `python -m service` (one worker, SLIMTEXT_ENABLE_BENCH) driven by wrk at c = 8; the
  server process's CPU time (user + system, from /proc) over the requests it answered. Three targets: the
  model (`/classify`), the same stack answering a constant (`/bench/raw`: protocol, admission, dispatch, a
  raw ASGI endpoint) and FastAPI answering a constant (`/bench/constant`).
- **Stage by stage**: each stage alone, in this process, many times (CPU µs per call): uvicorn's HTTP layer
  (the hardened httptools protocol parsing the request and writing the reply to an in-memory transport, with
  a constant app), admission control, the dispatch, JSON parse + validation, tokenize, onnxruntime,
  serialize, metrics, and the socket syscalls (one send + one recv of a reply-sized message on a socketpair).

The difference between the end-to-end figure and the sum of the stages is what no stage names: the kernel's
TCP work, epoll and the event loop's scheduling.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import tempfile
import time
from pathlib import Path

import orjson

from bench.serve import SENTENCE, cpu_us, lua_script, wrk
from bench.server import ROOT, UvicornServer

TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def end_to_end(models_dir: Path, model: str, duration: int) -> dict[str, dict[str, float]]:
    """CPU µs per request of the server process for each target, under wrk at c = 8."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp, UvicornServer(models_dir, env={"SLIMTEXT_ENABLE_BENCH": "true"}) as srv:
        scripts = {"/classify": lua_script({"texts": [SENTENCE], "model": model}, Path(tmp), "one"),
                   "/bench/raw": lua_script({"texts": [SENTENCE]}, Path(tmp), "raw"),
                   "/bench/constant": lua_script({"texts": [SENTENCE]}, Path(tmp), "constant")}
        for path, script in scripts.items():
            wrk(srv.url + path, script, 8, 1)  # warm-up
            cpu0 = process_cpu_s(srv.proc.pid)
            result = wrk(srv.url + path, script, 8, duration)
            cpu = process_cpu_s(srv.proc.pid) - cpu0
            out[path] = {"rps": result.rps, "requests": result.requests, "cpu_us": cpu / result.requests * 1e6,
                         "p99_ms": result.p99_ms}
    return out


class _Transport(asyncio.Transport):
    """An in-memory socket: what the protocol writes is counted and dropped."""

    def __init__(self):
        super().__init__()
        self.written, self.closed = 0, False

    def write(self, data) -> None:
        self.written += len(data)

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 9), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


def http_layer_us(raw_request: bytes, app, n: int = 5000) -> float:
    """The hardened httptools protocol: parse `raw_request`, run `app`, write its reply (keep-alive)."""
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from service.protocol import HardenedHttpToolsProtocol

    loop = asyncio.new_event_loop()
    config = Config(app=app, lifespan="off", access_log=False, log_level="warning")
    config.load()
    state = ServerState()
    protocol = HardenedHttpToolsProtocol(config=config, server_state=state, app_state={}, _loop=loop)
    transport = _Transport()
    protocol.connection_made(transport)

    def one():
        before = transport.written
        protocol.data_received(raw_request)
        while transport.written == before:  # the app's task runs on the loop
            loop.run_until_complete(asyncio.sleep(0))

    result = cpu_us(one, n)
    protocol.connection_lost(None)
    loop.close()
    return result


def syscalls_us(reply_bytes: int, n: int = 20_000) -> float:
    """One send() and one recv() of a reply-sized message on a connected socketpair."""
    a, b = socket.socketpair()
    data = b"x" * reply_bytes
    try:
        return cpu_us(lambda: (a.send(data), b.recv(65536)), n)
    finally:
        a.close()
        b.close()


def stages(models_dir: Path, model: str) -> list[tuple[str, float]]:
    from service.admission import Admission
    from service.config import Settings
    from service.edges import Endpoints
    from service.main import create_app
    from service.routes.classify import build_predictions
    from service.routes.metrics import raw_constant
    from service.schemas import ClassifyRequest

    body = orjson.dumps({"texts": [SENTENCE], "model": model})
    raw = (b"POST /classify HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: application/json\r\n"
           b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    outer = create_app(Settings(models_dir=models_dir, enable_bench=True))
    inner = outer
    while not hasattr(inner, "router"):
        inner = inner.app
    loop = asyncio.new_event_loop()
    lifespan = inner.router.lifespan_context(inner)
    loop.run_until_complete(lifespan.__aenter__())
    clf = inner.state.classifier
    m = clf.registry.models[model].classifier
    ids, lengths = m.tokenizer.encode_batch([SENTENCE])
    probs = m.probabilities(ids, lengths)
    reply = orjson.dumps({"model": model, "version": "1",
                          "predictions": build_predictions(probs, lengths, m.labels, None)})
    scope = {"type": "http", "method": "POST", "path": "/classify", "raw_path": b"/classify", "query_string": b"",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
             "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 9),
             "root_path": ""}

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(_message):
        return None

    def asgi(app, path: str = "/classify"):
        s = {**scope, "path": path, "raw_path": path.encode()}
        return lambda: loop.run_until_complete(app(s, receive, send))

    async def noop(_scope, _receive, _send):
        return None

    admission = Admission(noop, 64, 16 << 20, 1, 1 << 20)
    endpoints = Endpoints(noop, {("POST", "/classify"): noop})
    empty = cpu_us(asgi(noop), 20_000)  # the event-loop round trip every in-process call below pays once
    rows = [
        ("HTTP layer: httptools parse + uvicorn's request cycle + reply written (constant app)",
         http_layer_us(raw, raw_constant)),
        ("admission control (body cap check, in-flight slot)", cpu_us(asgi(admission), 20_000) - empty),
        ("dispatch to the raw endpoint", cpu_us(asgi(endpoints), 20_000) - empty),
        ("JSON parse + validate (pydantic-core from bytes)", cpu_us(lambda: ClassifyRequest.model_validate_json(body))),
        ("tokenize (regex, vocabulary lookup, numpy ids)", cpu_us(lambda: m.tokenizer.encode_batch([SENTENCE]))),
        ("onnxruntime run (softmax in the graph)", cpu_us(lambda: m.probabilities(ids, lengths))),
        ("serialize (predictions + orjson)", cpu_us(lambda: orjson.dumps(build_predictions(probs, lengths, m.labels,
                                                                                            None)))),
        ("metrics (3 stage histograms + a counter)", cpu_us(lambda: (
            clf.metrics.observe_stages(model, 1e-5, 2e-5, 5e-5), clf.metrics.count(model, "classify", 200)))),
        ("socket syscalls: one send + one recv of the reply", syscalls_us(len(reply) + 150)),
    ]
    whole = [("whole /classify ASGI call in process (every app layer)", cpu_us(asgi(outer), 5000) - empty),
             ("whole /bench/raw ASGI call in process (same edges, constant)", cpu_us(asgi(outer, "/bench/raw"),
                                                                                   5000) - empty)]
    loop.run_until_complete(lifespan.__aexit__(None, None, None))
    loop.close()
    return rows + whole


def render(e2e: dict, rows: list[tuple[str, float]], model: str, duration: int) -> str:
    parts, whole = rows[:-2], rows[-2:]
    total = sum(max(us, 0.0) for _, us in parts)
    lines = [
        "## CPU per request, stage by stage (issue 26)", "",
        f"Generated by `python -m bench.stages` ({platform.machine()}, {os.cpu_count()} logical CPUs, shared). "
        f"One 20-word sentence, model `{model}`. End to end: one `python -m service` worker driven by wrk at c = 8 "
        f"for {duration} s per target; its CPU time (user + system, /proc) over the requests answered. Stages: "
        "each alone in one process, CPU µs per call (median machine noise ±10-20%).", "",
        "| end to end (server process) | req/s | CPU µs / request | p99 ms |", "|---|---:|---:|---:|"]
    for path, r in e2e.items():
        what = {"/classify": "POST /classify (the model)", "/bench/raw": "POST /bench/raw (same stack, constant)",
                "/bench/constant": "POST /bench/constant (FastAPI, constant)"}[path]
        lines.append(f"| {what} | {r['rps']:,.0f} | {r['cpu_us']:.1f} | {r['p99_ms']:.2f} |")
    cls, raw = e2e["/classify"]["cpu_us"], e2e["/bench/raw"]["cpu_us"]
    lines += ["", "| stage | CPU µs |", "|---|---:|"]
    lines += [f"| {name} | {us:.1f} |" if us >= 0.5 else f"| {name} | < 1 (within the noise) |" for name, us in parts]
    lines += [f"| **sum of the stages** | **{total:.1f}** |",
              f"| not in any stage (kernel TCP, epoll, loop scheduling): end to end - sum | {cls - total:.1f} |",
              *[f"| ({name}) | {us:.1f} |" for name, us in whole]]
    lines += ["", f"The floor: the same stack answering a constant costs {raw:.1f} µs of server CPU per request end "
              f"to end, the model's request {cls:.1f} µs: the model's own work (parse, tokenize, onnxruntime, "
              f"serialize, metrics) is {cls - raw:.1f} µs ({(cls - raw) / cls:.0%}); the rest is the HTTP stack "
              "and the kernel, which a constant reply pays too."]
    return "\n".join(lines) + "\n"


START, END = "<!-- bench.stages:start -->", "<!-- bench.stages:end -->"


def splice(path: Path, section: str, start: str = START, end: str = END) -> None:
    """Replace the part of `path` between the markers `start` and `end` with `section` (appended if absent)."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{start}\n{section.rstrip()}\n{end}"
    if start in old and end in old:
        head, rest = old.split(start, 1)
        path.write_text(head + block + rest.split(end, 1)[1], encoding="utf-8")
    else:
        path.write_text(old.rstrip() + "\n\n" + block + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__.splitlines()[0])
    p.add_argument("--models-dir", type=Path, default=ROOT / "models")
    p.add_argument("--model", default="sst2-dan-lowrank")
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "bench-serve.md", help="splice the table in here")
    args = p.parse_args(argv)
    e2e = end_to_end(args.models_dir, args.model, args.duration)
    time.sleep(0.5)
    text = render(e2e, stages(args.models_dir, args.model), args.model, args.duration)
    print(text)
    splice(args.out, text)


if __name__ == "__main__":
    main()
