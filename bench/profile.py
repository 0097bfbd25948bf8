"""Where a loaded server's CPU goes: py-spy samples of a real `python -m service` worker under wrk, sorted into
the stages of a request, next to the CPU time per request measured from /proc in the same window.

    python -m bench.profile [--models-dir models] [--concurrency 64] [--duration 10] [--texts 1] [--out FILE]
                            [--env KEY=VALUE ...]

py-spy (`pip install py-spy`, in the `bench` extra) samples the running Python threads of the worker process at
`--rate` Hz (a thread waiting, e.g. the event loop in its poll, is not sampled), so the shares say where its
CPU goes. A sample is given to the first stage whose marker appears in its stack, innermost frame first (table
`STAGES`); uvloop and the kernel's socket work show up under the Python frame that called into them (the loop's
`run_forever`, a transport's write).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from bench.serve import SENTENCE, lua_script, wrk
from bench.server import ROOT, UvicornServer
from bench.stages import process_cpu_s

# (stage, markers): a frame whose "function (file)" text contains a marker belongs to the stage; the innermost
# matching frame of a stack decides
STAGES = [
    ("onnxruntime run", ("onnxruntime_inference_collection", "onnxruntime_pybind11")),
    ("tokenize", ("slimtext/tokenizer.py",)),
    ("JSON parse + validate", ("model_validate_json", "parse_json")),
    ("serialize (predictions + orjson)", ("build_predictions", "render (service/routes/classify.py)")),
    ("metrics", ("service/metrics.py",)),
    ("micro-batching", ("service/batching.py",)),
    ("worker-thread hand-off", ("service/offload.py", "concurrent/futures", "run_in_executor")),
    ("core (model lookup, limits, timing)", ("service/classify.py", "service/registry")),
    ("/classify endpoint (body read, reply)", ("service/routes/classify.py", "service/body.py")),
    ("admission + dispatch", ("service/admission.py", "service/edges.py", "service/auth.py")),
    ("HTTP protocol (httptools, uvicorn's cycle, socket writes)", ("service/protocol.py", "uvicorn/protocols",
                                                                   "httptools")),
    ("event loop (uvloop/asyncio: poll, callbacks)", ("run_forever", "asyncio/", "uvloop", "_run_once")),
]


def stage_of(stack: str) -> str:
    frames = stack.split(";")[::-1]  # innermost first
    for frame in frames:
        for stage, markers in STAGES:
            if any(m in frame for m in markers):
                return stage
    return "other"


def parse_raw(path: Path) -> tuple[collections.Counter, collections.Counter, collections.Counter]:
    """py-spy's raw output with --threads ("thread (tid): name;frame;... count") -> samples per stage, per
    innermost function and per thread name."""
    stages, functions, threads = collections.Counter(), collections.Counter(), collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        head, _, frames = stack.partition(";")
        threads[head.split(": ", 1)[-1]] += n
        stages[stage_of(frames)] += n
        functions[frames.split(";")[-1]] += n
    return stages, functions, threads


def profile(models_dir: Path, concurrency: int, duration: int, texts: int, rate: int,
            env: dict[str, str]) -> dict:
    py_spy = shutil.which("py-spy") or str(Path(os.sys.executable).parent / "py-spy")
    with tempfile.TemporaryDirectory() as tmp, UvicornServer(models_dir, env=env) as srv:
        script = lua_script({"texts": [SENTENCE] * texts}, Path(tmp), "req")
        wrk(srv.url + "/classify", script, concurrency, 2)  # warm-up
        raw = Path(tmp) / "profile.txt"
        spy = subprocess.Popen([py_spy, "record", "--pid", str(srv.proc.pid), "--rate", str(rate), "--duration",
                                str(duration), "--threads", "--format", "raw", "--output", str(raw), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        result: dict = {}
        cpu0 = process_cpu_s(srv.proc.pid)

        def load():
            result["wrk"] = wrk(srv.url + "/classify", script, concurrency, duration)

        t = threading.Thread(target=load)
        t.start()
        t.join()
        cpu = process_cpu_s(srv.proc.pid) - cpu0
        spy.wait(timeout=60)
        if not raw.exists():
            raise RuntimeError(f"py-spy wrote nothing: {spy.stderr.read()[-500:]}")
        stages, functions, threads = parse_raw(raw)
    w = result["wrk"]
    return {"rps": w.rps, "p50_ms": w.p50_ms, "p99_ms": w.p99_ms, "requests": w.requests,
            "cpu_us": cpu / max(w.requests, 1) * 1e6, "cpu_share": cpu / duration, "stages": stages,
            "functions": functions, "threads": threads, "samples": sum(stages.values()),
            "possible": rate * duration}


def render(r: dict, concurrency: int, texts: int, env: dict[str, str]) -> str:
    settings = "".join(f", {k}={v}" for k, v in env.items())
    running = ", ".join(f"{name} {n / r['possible']:.0%}" for name, n in r["threads"].most_common())
    lines = [f"### c = {concurrency}, {texts} text(s) per request{settings}", "",
             f"{r['rps']:,.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms; the worker process used "
             f"{r['cpu_share']:.0%} of a core, {r['cpu_us']:.0f} CPU µs per request. Threads running, share of the "
             f"samples' time: {running}.", "",
             "| stage | share of samples | ≈ CPU µs / request |", "|---|---:|---:|"]
    for stage, n in r["stages"].most_common():
        share = n / max(r["samples"], 1)
        lines.append(f"| {stage} | {share:.1%} | {share * r['cpu_us']:.0f} |")
    lines += ["", "Top functions (innermost frame, share of samples):", "", "| function | share |", "|---|---:|"]
    for fn, n in r["functions"].most_common(10):
        lines.append(f"| `{fn[:110]}` | {n / max(r['samples'], 1):.1%} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    p.add_argument("--models-dir", type=Path, default=ROOT / "models")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--texts", type=int, default=1)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--env", nargs="*", default=[], help="SLIMTEXT_* settings for the server, KEY=VALUE")
    p.add_argument("--out", type=Path, help="append the table to this file")
    args = p.parse_args(argv)
    env = dict(kv.split("=", 1) for kv in args.env)
    text = render(profile(args.models_dir, args.concurrency, args.duration, args.texts, args.rate, env),
                  args.concurrency, args.texts, env)
    print(text)
    if args.out:
        with args.out.open("a", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
