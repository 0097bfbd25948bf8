"""`make soak`: a bounded soak of the real service; writes docs/reliability.md.

    python -m bench.soak [--models-dir models] [--requests 100000] [--hold 60]

Phase 1 sends exactly `--requests` POST /classify requests (16 connections, wrk stops itself at the
count) rotating over every served model, single texts and 8-text batches of real SST-2 test
sentences, and samples the server's RSS. Phase 2 holds 64 concurrent connections for `--hold`
seconds. Both count errors (non-2xx, socket errors) from wrk and cross-check the server's own
request counters. Loopback only; every phase is bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench.redteam import keep_section
from bench.serve import WrkResult, parse_wrk
from bench.server import ROOT, UvicornServer
from slimtext.data import datasets_root, read_examples

RSS_LIMIT_MB = 20.0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) / 1024


def lua_script(bodies: list[str], stop_after: int, folder: Path) -> Path:
    """Rotates over the bodies; with stop_after > 0 each wrk thread stops after that many responses."""
    items = ",\n".join(json.dumps(b) for b in bodies)
    path = folder / "soak.lua"
    path.write_text(f"""local bodies = {{
{items}
}}
local i, done, limit = 0, 0, {stop_after}
local headers = {{["Content-Type"] = "application/json"}}
request = function()
  i = i + 1
  return wrk.format("POST", "/classify", headers, bodies[(i % #bodies) + 1])
end
response = function(status, hdrs, body)
  done = done + 1
  if limit > 0 and done >= limit then wrk.thread:stop() end
end
""")
    return path


def wrk_command(url: str, script: Path, connections: int, duration_s: int) -> list[str]:
    return ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", "--timeout", "10s", "-s", str(script),
            url + "/classify"]


def run_for(url: str, script: Path, connections: int, duration_s: int) -> WrkResult:
    out = subprocess.run(wrk_command(url, script, connections, duration_s), capture_output=True, text=True,
                         timeout=duration_s + 60, check=True).stdout
    return parse_wrk(out)


def run_count(url: str, script: Path, connections: int, count: int, max_s: int) -> tuple[WrkResult, float]:
    """wrk stops sending after `count` responses (see lua_script) but idles until its duration ends; so
    wait until the server has answered them all, then SIGINT it, which makes wrk print its summary."""
    base = sum(server_counts(url).values())
    t0 = time.monotonic()
    proc = subprocess.Popen(wrk_command(url, script, connections, max_s), stdout=subprocess.PIPE, text=True)
    while proc.poll() is None and sum(server_counts(url).values()) - base < count:
        time.sleep(0.25)
    wall = time.monotonic() - t0
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    return parse_wrk(out, wall), wall


def server_counts(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    counts: dict[str, float] = {}
    for m in re.finditer(r'slimtext_requests_total\{[^}]*status="(\d+)"[^}]*\} ([\d.e+]+)', text):
        counts[m.group(1)] = counts.get(m.group(1), 0) + float(m.group(2))
    return counts


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every_s: float = 1.0):
        super().__init__(daemon=True)
        self.pid, self.every_s, self.samples = pid, every_s, []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append(rss_mb(self.pid))
            self._halt.wait(self.every_s)

    def stop(self) -> list[float]:
        self._halt.set()
        self.join()
        return self.samples


def row(phase: str, connections: int, r: WrkResult, wall: str) -> str:
    return (f"| {phase} | {connections} | {r.requests:,} | {r.errors} | {r.rps:,.0f} | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {wall} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", type=Path, default=ROOT / "models")
    p.add_argument("--requests", type=int, default=100_000)
    p.add_argument("--hold", type=int, default=60, help="seconds of 64 concurrent connections")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: install the Debian package `wrk` (apt-get install wrk)")

    sentences = read_examples(datasets_root() / "sst2" / "test.tsv").texts
    with tempfile.TemporaryDirectory() as tmp, UvicornServer(args.models_dir) as srv:
        with urllib.request.urlopen(f"{srv.url}/models", timeout=10) as r:
            models = [m["manifest"]["name"] for m in json.load(r)["models"]]
        bodies = [json.dumps({"texts": [s], "model": m}) for m in models for s in sentences[:50]]
        bodies += [json.dumps({"texts": sentences[i: i + 8], "model": m}) for m in models for i in range(0, 400, 8)]
        warm, _ = run_count(srv.url, lua_script(bodies, 2000, Path(tmp)), 16, 2000, 120)
        rss_start = rss_mb(srv.proc.pid)
        sampler = RssSampler(srv.proc.pid)
        sampler.start()
        phase1, phase1_s = run_count(srv.url, lua_script(bodies, args.requests, Path(tmp)), 16, args.requests, 900)
        rss_after1 = rss_mb(srv.proc.pid)
        phase2 = run_for(srv.url, lua_script(bodies, 0, Path(tmp)), 64, args.hold)
        samples = sampler.stop()
        rss_end = rss_mb(srv.proc.pid)
        counts = server_counts(srv.url)
        alive = urllib.request.urlopen(f"{srv.url}/health/ready", timeout=10).status == 200

    errors1, errors2 = phase1.errors, phase2.errors
    server_errors = sum(n for status, n in counts.items() if status != "200")
    growth = rss_after1 - rss_start
    ok = errors1 == 0 and errors2 == 0 and server_errors == 0 and growth < RSS_LIMIT_MB and alive \
        and phase1.requests >= args.requests
    text = f"""# Reliability: soak

Generated by `make soak` (`python -m bench.soak`): one uvicorn worker (`python -m service`) on 127.0.0.1
serving {", ".join(models)}; wrk on the same machine ({platform.machine()}, {os.cpu_count()} logical CPUs,
often ~1 core effective). Requests rotate over every model, single texts and 8-text batches of real SST-2
test sentences. Result: **{"PASSED" if ok else "FAILED"}**.

| phase | connections | requests | errors (non-2xx + socket) | req/s | p50 ms | p99 ms | wall s |
|---|---:|---:|---:|---:|---:|---:|---:|
{row("warm-up", 16, warm, "-")}
{row(f"1: {args.requests:,} requests", 16, phase1, f"{phase1_s:.0f}")}
{row(f"2: hold {args.hold} s", 64, phase2, str(args.hold))}

Server RSS (MB): {rss_start:.1f} after warm-up, {rss_after1:.1f} after phase 1 (growth **{growth:+.1f} MB**,
limit {RSS_LIMIT_MB:.0f} MB), {rss_end:.1f} after phase 2; min {min(samples):.1f} / max {max(samples):.1f} over
{len(samples)} one-second samples.

The server's own counters (`slimtext_requests_total` by status) after both phases: {dict(sorted(counts.items()))};
responses other than 200: {server_errors:.0f}. Ready afterwards: {alive}.

## Checked on every `make test` (tests/test_reliability.py, real uvicorn on loopback)

- schemathesis against the live OpenAPI schema (all checks: no 5xx, response schemas, status codes,
  content types, schema-valid data accepted, invalid data rejected), seeded and bounded.
- A battery of malformed, mistyped, oversized and hostile requests (malformed / truncated / deeply nested
  JSON, invalid UTF-8, wrong content types, wrong types, missing / extra fields, empty list, `../x` model
  names, zero / negative / huge / string `top_k`, a 1 MB text, 10,000 texts, a 2 MB body): each gets a 4xx
  with a JSON error naming the problem; the service stays ready and classifies correctly afterwards.
- Odd but valid text (NUL and other control characters, emoji, Arabic and Hebrew, bidi overrides) is
  classified (200). A text with no tokens (empty, whitespace) gets `n_tokens: 0` and the model's prior answer.
- Model faults at start-up (corrupt ONNX, missing manifest, sha256 mismatch, label count or vocabulary size
  that disagrees with the graph): an ERROR log line naming the file and the reason, that model not served,
  the others served; `SLIMTEXT_STRICT=true` makes any fault fatal.
- SIGTERM with requests in flight: all complete with 200, new connections are refused, exit status 0.
- Every byte bounded (tests/test_bounds.py, raw sockets and raw gRPC calls): 60 KB trailer fields on POST
  /classify, GET /health/live and the repository index, and a chunk extension growing past the head cap, are cut
  with 431 or a close before 12 MB are read; small trailers are accepted and dropped; a chunked body over the
  inference cap gets 413; every
  non-inference route refuses a 300 KB body (Content-Length or chunked) with 413, also behind
  `Expect: 100-continue`; a 1 MiB list of 500k integers is one 422 under 4 KB; a binary tensor of 262k
  empty texts gets 413 `too_many_texts`; `/health/ready` names no model; `/metrics` needs a key when only API
  keys are set; gRPC refuses 50k inputs, 262k texts and bytes that do not parse, and sheds with
  RESOURCE_EXHAUSTED when HTTP holds every admission slot.
- No pickle anywhere in the serving or training code; model names match `^[a-z0-9][a-z0-9._-]{{0,63}}$`
  before any lookup; request limits on by default; the image runs as uid 10001.
"""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + keep_section(args.out))  # the red-team section (bench.redteam) stays
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
