"""`make bench-serve`: requests/s and latency of the real service, side by side in one run.

    python -m bench.serve [--models-dir models] [--duration 4] [--rounds 3] [--out docs/bench-serve.md]

Starts uvicorn (1 worker, no access log) on a free loopback port and drives it with wrk (Debian
package `wrk`) at concurrency 1, 8 and 64: POST /classify for each served model (one 20-word
sentence per request) and POST /bench/constant, a FastAPI route that returns a constant: the
framework's own per-request cost. Targets are interleaved round-robin for `rounds` rounds and the
median is kept, so a load change on the machine hits every target alike. A second server with
micro-batching on is measured at concurrency 64 against the first. Client and server share the
machine's CPU: compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.server import ROOT, UvicornServer
from slimtext.data import datasets_root, read_examples

SENTENCE = "a gorgeous , witty , seductive movie , with plenty of heart and a very clever script ."
CONCURRENCY = (1, 8, 64)
BIG = 128  # texts per request in the offload comparison
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx responses plus socket errors
    requests: int = 0


def lua_script(body: dict, folder: Path, name: str) -> Path:
    path = folder / f"{name}.lua"
    path.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    f"wrk.body = {json.dumps(json.dumps(body))}\n")
    return path


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * _UNITS[unit]


def parse_wrk(out: str, wall_s: float | None = None) -> WrkResult:
    """wrk's summary; with `wall_s`, requests/s is the completed requests over that wall time instead."""
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = requests / wall_s if wall_s else float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                    r"timeout (\d+)"):
        m = re.search(pattern, out)
        if m:
            errors += sum(int(g) for g in m.groups())
    return WrkResult(rps, p50, p99, errors, requests)


def wrk(url: str, script: Path, connections: int, duration_s: int) -> WrkResult:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 30, check=True).stdout
    return parse_wrk(out)


def median_result(results: list[WrkResult]) -> WrkResult:
    return WrkResult(statistics.median(r.rps for r in results), statistics.median(r.p50_ms for r in results),
                     statistics.median(r.p99_ms for r in results), sum(r.errors for r in results))


def measure(url: str, targets: dict[str, tuple[str, Path]], concurrency: int, duration_s: int,
            rounds: int) -> dict[str, WrkResult]:
    runs: dict[str, list[WrkResult]] = {t: [] for t in targets}
    for _ in range(rounds):
        for target, (path, script) in targets.items():
            runs[target].append(wrk(url + path, script, concurrency, duration_s))
    return {t: median_result(r) for t, r in runs.items()}


def cpu_us(fn, n: int = 20_000) -> float:
    """CPU microseconds per call (process time, so other processes on the machine matter less)."""
    for _ in range(n // 10):
        fn()
    t0 = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t0) / n * 1e6


def profile(models_dir: Path, model: str) -> list[tuple[str, float]]:
    """Where one /classify request's CPU goes inside the app, against FastAPI's constant route: each
    stage alone, then the whole ASGI call of each endpoint (driven in-process, no HTTP server)."""
    import asyncio

    import orjson

    from service.config import Settings
    from service.main import create_app
    from service.routes.classify import build_predictions
    from service.schemas import ClassifyRequest

    body = orjson.dumps({"texts": [SENTENCE], "model": model})
    app = outer = create_app(Settings(models_dir=models_dir, enable_bench=True))
    while not hasattr(app.app, "router"):  # down to the wrapper just around FastAPI
        app = app.app
    loop = asyncio.new_event_loop()
    lifespan = app.app.router.lifespan_context(app.app)
    loop.run_until_complete(lifespan.__aenter__())
    clf = app.app.state.classifier
    m = clf.registry.models[model].classifier
    ids, lengths = m.tokenizer.encode_batch([SENTENCE])
    probs = m.probabilities(ids, lengths)

    def asgi(path: str):
        scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
                 "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                 "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 8000),
                 "client": ("127.0.0.1", 9), "root_path": ""}

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(_message):
            return None

        return lambda: loop.run_until_complete(outer(scope, receive, send))

    rows = [("parse + validate the body (pydantic-core)", cpu_us(lambda: ClassifyRequest.model_validate_json(body))),
            ("tokenize (regex, vocabulary lookup, numpy ids)", cpu_us(lambda: m.tokenizer.encode_batch([SENTENCE]))),
            ("onnxruntime run (softmax in the graph)", cpu_us(lambda: m.probabilities(ids, lengths))),
            ("predictions + orjson", cpu_us(lambda: orjson.dumps(build_predictions(probs, lengths, m.labels, None)))),
            ("metrics (3 stage histograms + counter)", cpu_us(lambda: (
                clf.metrics.observe_stages(model, 1e-5, 2e-5, 5e-5), clf.metrics.count(model, "classify", 200)))),
            ("event-loop round trip (empty coroutine)", cpu_us(lambda: loop.run_until_complete(asyncio.sleep(0)))),
            ("whole /classify ASGI call (raw endpoint)", cpu_us(asgi("/classify"), 5000)),
            ("whole /bench/constant ASGI call (FastAPI)", cpu_us(asgi("/bench/constant"), 5000))]
    loop.run_until_complete(lifespan.__aexit__(None, None, None))
    loop.close()
    return rows


def served_models(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/models", timeout=10) as r:
        return json.load(r)["models"]


def render(models: list[dict], table: dict[int, dict[str, WrkResult]], batching: dict[str, WrkResult],
           offload: dict[str, WrkResult], settings: dict[str, str], prof: list[tuple[str, float]]) -> str:
    kinds = {m["manifest"]["name"]: m["manifest"]["kind"] for m in models}
    lines = ["# Serving benchmark", "",
             "Generated by `make bench-serve` (`python -m bench.serve`). One uvicorn worker on 127.0.0.1 "
             "(uvloop + httptools, no access log), wrk on the same machine, one 20-word sentence per request. "
             "`constant` is `POST /bench/constant`, a FastAPI route returning a constant dict: what the framework "
             "alone costs per request. Each figure is the median of interleaved rounds; `ratio` = the target's "
             "median requests/s over the constant endpoint's.", "",
             *[f"- {k}: {v}" for k, v in settings.items()], "",
             "| concurrency | target | kind | req/s | ratio to constant | p50 ms | p99 ms | errors |",
             "|---:|---|---|---:|---:|---:|---:|---:|"]
    for c, results in table.items():
        base = results["constant"].rps
        for target, r in results.items():
            lines.append(f"| {c} | {target} | {kinds.get(target, 'framework only')} | {r.rps:,.0f} | "
                         f"{r.rps / base:.2f} | {r.p50_ms:.3f} | {r.p99_ms:.3f} | {r.errors} |")
    lines += ["", "## Micro-batching at concurrency 64", "",
              "The same requests against a second server with `SLIMTEXT_BATCHING=true` "
              f"(max {settings['batch max texts']} texts, max wait {settings['batch max wait']}).", "",
              "| target | batching | req/s | p50 ms | p99 ms | errors |", "|---|---|---:|---:|---:|---:|"]
    for target, on in batching.items():
        off = table[64][target]
        lines.append(f"| {target} | off | {off.rps:,.0f} | {off.p50_ms:.3f} | {off.p99_ms:.3f} | {off.errors} |")
        lines.append(f"| {target} | on | {on.rps:,.0f} | {on.p50_ms:.3f} | {on.p99_ms:.3f} | {on.errors} |")
    lines += ["", f"## Large requests: onnxruntime in a worker thread or on the event loop ({BIG} texts, "
              "concurrency 8)", "", f"`{settings['full model']}`, {BIG} real SST-2 test sentences per request. "
              f"`SLIMTEXT_OFFLOAD_MIN_TEXTS` = `SLIMTEXT_OFFLOAD_MIN_CHARS` = {BIG} tokenizes and runs onnxruntime "
              "in the worker thread (service/offload.py; onnxruntime releases the GIL, so the loop reads the next "
              "request meanwhile); 100000 keeps it on the event loop (the body is under "
              "`SLIMTEXT_OFFLOAD_MIN_BODY_BYTES`).", "",
              "| onnxruntime | req/s | texts/s | p50 ms | p99 ms | errors |", "|---|---:|---:|---:|---:|---:|"]
    for mode, r in offload.items():
        lines.append(f"| {mode} | {r.rps:,.0f} | {r.rps * BIG:,.0f} | {r.p50_ms:.3f} | {r.p99_ms:.3f} | {r.errors} |")
    lines += ["", f"## Where the CPU goes (in-process, {settings['profiled model']}, one 20-word sentence)", "",
              "CPU time per call measured inside one process (no HTTP server, no client), so it isolates the app's "
              "own work from uvicorn's and wrk's. The HTTP figures above add uvicorn's parsing and socket work "
              "(the same for every target) and the client's CPU on the same cores.", "",
              "| stage | CPU us per call |", "|---|---:|"]
    lines += [f"| {name} | {us:.1f} |" for name, us in prof]
    return "\n".join(lines) + "\n"


def kept_sections(path: Path) -> str:
    """The sections other benchmarks splice into this page (`<!-- bench.X:start -->` ... `<!-- bench.X:end -->`):
    kept when bench.serve rewrites the rest."""
    old = path.read_text() if path.exists() else ""
    blocks = re.findall(r"(<!-- (bench\.[a-z_]+):start -->.*?<!-- \2:end -->)", old, re.S)
    return "".join(f"\n{block}\n" for block, _ in blocks)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", type=Path, default=ROOT / "models")
    p.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    p.add_argument("--batch-max-texts", type=int, default=64)
    p.add_argument("--batch-max-wait-us", type=int, default=300)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "bench-serve.md")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: install the Debian package `wrk` (apt-get install wrk)")

    env = {"SLIMTEXT_INTRA_OP_THREADS": "1", "SLIMTEXT_ENABLE_BENCH": "true"}  # /bench/constant is off by default
    with tempfile.TemporaryDirectory() as tmp, UvicornServer(args.models_dir, env=env) as srv:
        models = served_models(srv.url)
        scripts = Path(tmp)
        targets = {m["manifest"]["name"]: ("/classify", lua_script(
            {"texts": [SENTENCE], "model": m["manifest"]["name"]}, scripts, m["manifest"]["name"])) for m in models}
        targets["constant"] = ("/bench/constant", lua_script({"texts": [SENTENCE]}, scripts, "constant"))
        table = {}
        for c in CONCURRENCY:
            table[c] = measure(srv.url, targets, c, args.duration, args.rounds)
            print(f"concurrency {c}: " + ", ".join(f"{t} {r.rps:,.0f}/s" for t, r in table[c].items()), flush=True)
        model_targets = {t: v for t, v in targets.items() if t != "constant"}
        batch_env = {**env, "SLIMTEXT_BATCHING": "true", "SLIMTEXT_BATCH_MAX_TEXTS": str(args.batch_max_texts),
                     "SLIMTEXT_BATCH_MAX_WAIT_US": str(args.batch_max_wait_us)}
        with UvicornServer(args.models_dir, env=batch_env) as bsrv:
            batching = measure(bsrv.url, model_targets, 64, args.duration, args.rounds)
        print("batching on, concurrency 64: " + ", ".join(f"{t} {r.rps:,.0f}/s" for t, r in batching.items()))
        names = {m["manifest"]["kind"]: m["manifest"]["name"] for m in models}
        full = names.get("full", models[0]["manifest"]["name"])
        texts = read_examples(datasets_root() / "sst2" / "test.tsv").texts[:BIG]
        big = {"/classify": ("/classify", lua_script({"texts": texts, "model": full}, scripts, "big"))}
        offload = {}
        for mode, threshold in (("worker thread", BIG), ("event loop", 100_000)):
            loop_env = {"SLIMTEXT_OFFLOAD_MIN_TEXTS": str(threshold), "SLIMTEXT_OFFLOAD_MIN_CHARS": str(threshold)}
            with UvicornServer(args.models_dir, env={**env, **loop_env}) as osrv:
                offload[mode] = measure(osrv.url, big, 8, args.duration, args.rounds)["/classify"]
        print("large requests: " + ", ".join(f"{m} {r.rps:,.0f}/s" for m, r in offload.items()))

    settings = {"machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs (often ~1 core effective)",
                "wrk": "1 thread, `--latency`", "duration per run": f"{args.duration} s",
                "rounds": str(args.rounds), "onnxruntime intra-op threads": "1",
                "batch max texts": str(args.batch_max_texts), "batch max wait": f"{args.batch_max_wait_us} us"}
    lowrank = [m["manifest"]["name"] for m in models if m["manifest"]["kind"] == "lowrank"]
    settings["profiled model"] = (lowrank or [models[0]["manifest"]["name"]])[0]
    settings["full model"] = full
    text = render(models, table, batching, offload, settings, profile(args.models_dir, settings["profiled model"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + kept_sections(args.out))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
