"""What the metrics cost per request, and per scrape, with one worker and with several.

    python -m bench.metrics_cost          # prints the table and writes docs/metrics-cost.md

Per request the service records one request counter, three stage latencies and one batch size. Compared,
each timed in a fresh process on this machine (best of 5 repeats of 20,000 requests):

- `plain` (before, one worker): service.metrics.Metrics, plain Python additions on the event loop;
- `snapshots` (after, any number of workers): the same additions, plus each worker writing its snapshot
  once per SLIMTEXT_METRICS_FLUSH_S (the write's cost spread over the requests of that second, at the
  request rate given by --rps);
- `prometheus_client multiprocess`: the library's own multi-process mode (an mmap file per process and
  metric, a lock per update), the alternative that was not chosen.

Scrape: rendering /metrics with 1 worker (before) and summing 2 workers' snapshots (after).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.server import ROOT

REQUESTS = 20_000

PLAIN = """
import json, sys, time, tempfile
from pathlib import Path
from service.metrics import Metrics
mode, n = sys.argv[1], int(sys.argv[2])
folder = Path(tempfile.mkdtemp()) if mode != "plain" else None
m = Metrics(folder)
def one(i):
    m.count("sst2-dan-lowrank", "classify", 200)
    m.observe_stages("sst2-dan-lowrank", 20e-6, 40e-6, 90e-6 + (i % 7) * 1e-6)
    m.observe_batch("sst2-dan-lowrank", 1)
best = float("inf")
for _ in range(5):
    t0 = time.perf_counter()
    for i in range(n):
        one(i)
    best = min(best, (time.perf_counter() - t0) / n)
out = {"per_request_us": best * 1e6}
if folder is not None:
    t0 = time.perf_counter()
    for _ in range(200):
        m.flush()
    out["flush_us"] = (time.perf_counter() - t0) / 200 * 1e6
    snap = m.snapshot(); snap["pid"] = 1
    (folder / "worker-1.json").write_bytes(json.dumps(snap).encode())
t0 = time.perf_counter()
for _ in range(200):
    m.render()
out["scrape_us"] = (time.perf_counter() - t0) / 200 * 1e6
print(json.dumps(out))
"""

PROM_MP = """
import json, sys, time
from prometheus_client import Counter, Histogram, CollectorRegistry, generate_latest
from prometheus_client import multiprocess
from service.metrics import LATENCY_BUCKETS, BATCH_BUCKETS
n = int(sys.argv[1])
req = Counter("slimtext_requests", "r", ["model", "endpoint", "status"])
lat = Histogram("slimtext_stage_seconds", "s", ["model", "stage"], buckets=LATENCY_BUCKETS)
bat = Histogram("slimtext_batch_texts", "b", ["model"], buckets=BATCH_BUCKETS)
def one(i):
    req.labels("sst2-dan-lowrank", "classify", "200").inc()
    lat.labels("sst2-dan-lowrank", "tokenize").observe(20e-6)
    lat.labels("sst2-dan-lowrank", "inference").observe(40e-6)
    lat.labels("sst2-dan-lowrank", "total").observe(90e-6 + (i % 7) * 1e-6)
    bat.labels("sst2-dan-lowrank").observe(1)
best = float("inf")
for _ in range(5):
    t0 = time.perf_counter()
    for i in range(n):
        one(i)
    best = min(best, (time.perf_counter() - t0) / n)
reg = CollectorRegistry()
multiprocess.MultiProcessCollector(reg)
t0 = time.perf_counter()
for _ in range(50):
    generate_latest(reg)
print(json.dumps({"per_request_us": best * 1e6, "scrape_us": (time.perf_counter() - t0) / 50 * 1e6}))
"""


def child(code: str, *argv: str, env: dict[str, str] | None = None) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **(env or {})},
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rps", type=float, default=2000, help="request rate that one flush per second is spread over")
    ap.add_argument("--flush-s", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "metrics-cost.md")
    args = ap.parse_args()
    plain = child(PLAIN, "plain", str(REQUESTS))
    snaps = child(PLAIN, "snapshots", str(REQUESTS))
    with tempfile.TemporaryDirectory() as tmp:
        prom = child(PROM_MP, str(REQUESTS), env={"PROMETHEUS_MULTIPROC_DIR": tmp})
    amortized = snaps["flush_us"] / (args.rps * args.flush_s)
    rows = [
        ("plain counters, 1 worker (before)", plain["per_request_us"], "-", plain["scrape_us"], "per process only"),
        ("snapshots, any workers (after)", snaps["per_request_us"] + amortized,
         f"{snaps['flush_us']:.0f} µs / {args.flush_s:g} s", snaps["scrape_us"], "sums all workers"),
        ("prometheus_client multiprocess", prom["per_request_us"], "-", prom["scrape_us"], "sums all workers"),
    ]
    lines = ["# Metrics cost per request and per scrape", "",
             "`python -m bench.metrics_cost` (each variant in a fresh process, best of 5 × "
             f"{REQUESTS:,} simulated requests: 1 counter, 3 stage latencies, 1 batch size). The snapshot "
             f"write is spread over {args.rps:g} requests/s. Scrape: /metrics rendered with 1 worker (before), "
             "2 workers' snapshots (after), or prometheus_client's MultiProcessCollector.", "",
             "| variant | µs per request | snapshot write | µs per scrape | with --workers N |",
             "|---|---|---|---|---|"]
    lines += [f"| {name} | {us:.2f} | {flush} | {scrape:.0f} | {note} |" for name, us, flush, scrape, note in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
