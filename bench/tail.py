"""Where the p99 at c = 64 comes from (issue 26): the same load against server variants, interleaved.

    python -m bench.tail [--models-dir models] [--rounds 3] [--duration 4] [--out docs/tail.md]

Each variant is a real `python -m service` on loopback; wrk drives one text per request at c = 64 and 32 texts
per request at c = 8, the variants taking turns round by round so a change of load on the machine hits all
alike (median of the rounds). Besides wrk's view (req/s, p50, p99) the table shows the server's own view of the
same requests from /metrics: the p99 of the time a request spends in the classifier core (`stage="total"`:
model lookup, tokenize, onnxruntime, render; an upper bucket bound) and the requests admission control shed. A
client p99 far above the in-app p99 is time the request waited outside the app: in the socket, for the event
loop, or for a CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.serve import SENTENCE, WrkResult, lua_script, parse_wrk
from bench.server import ROOT, UvicornServer

LOADS = (("1 text", 1, 64), ("32 texts", 32, 8))  # label, texts per request, connections
SHED = "slimtext_shed_requests"
ANALYSIS = "<!-- analysis: written by hand from the runs; `python -m bench.tail` keeps everything below this line -->"


@dataclass(frozen=True)
class Variant:
    name: str
    args: tuple[str, ...] = ("--workers", "1")
    env: dict[str, str] = field(default_factory=dict)
    server_cpus: str | None = None  # taskset CPU list for the server
    client_cpus: str | None = None  # and for wrk


VARIANTS = [
    Variant("1 worker, GIL switch 0.1 ms (the default)", env={"SLIMTEXT_GIL_SWITCH_INTERVAL_US": "100"}),
    Variant("1 worker, GIL switch 1 ms", env={"SLIMTEXT_GIL_SWITCH_INTERVAL_US": "1000"}),
    Variant("1 worker, GIL switch 5 ms (CPython's default)", env={"SLIMTEXT_GIL_SWITCH_INTERVAL_US": "5000"}),
    Variant("2 workers, GIL switch 0.1 ms (the default here: auto = 2 CPUs)", ("--workers", "2"),
            {"SLIMTEXT_GIL_SWITCH_INTERVAL_US": "100"}),
    Variant("2 workers, GIL switch 1 ms", ("--workers", "2"),
            {"SLIMTEXT_GIL_SWITCH_INTERVAL_US": "1000"}),
    Variant("1 worker, 0.1 ms, server on CPU 0 and wrk on CPU 1 (no CPU shared)",
            env={"SLIMTEXT_GIL_SWITCH_INTERVAL_US": "100"}, server_cpus="0", client_cpus="1"),
]


def metrics_text(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        return r.read().decode()


def stage_buckets(text: str, stage: str = "total") -> dict[float, float]:
    """Cumulative bucket counts of slimtext_stage_seconds{stage=...}, summed over models."""
    out: dict[float, float] = {}
    for m in re.finditer(r"^slimtext_stage_seconds_bucket\{([^}]*)\} (\S+)$", text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("stage") == stage:
            le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
            out[le] = out.get(le, 0.0) + float(m.group(2))
    return out


def counter(text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", text, re.M))


def bucket_p99(before: dict[float, float], after: dict[float, float]) -> float:
    """The upper bound (ms) of the bucket holding the 99th percentile of the requests between two scrapes."""
    delta = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = delta[-1][1] if delta else 0
    for le, n in delta:
        if total and n >= 0.99 * total:
            return le * 1e3
    return float("nan")


def wrk(url: str, script: Path, connections: int, duration: int, cpus: str | None) -> WrkResult:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    return parse_wrk(subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30, check=True).stdout)


def run(models_dir: Path, rounds: int, duration: int) -> dict[str, dict[str, list[dict]]]:
    results: dict[str, dict[str, list[dict]]] = {v.name: {label: [] for label, _, _ in LOADS} for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        scripts = {label: lua_script({"texts": [SENTENCE] * n}, Path(tmp), f"t{n}") for label, n, _ in LOADS}
        servers = {v.name: UvicornServer(models_dir, env=v.env, args=v.args) for v in VARIANTS}
        for srv in servers.values():
            srv.start()
        try:
            for v in VARIANTS:
                servers[v.name].wait_ready()
                if v.server_cpus:
                    for pid in _tree(servers[v.name].proc.pid):
                        subprocess.run(["taskset", "-apc", v.server_cpus, str(pid)], capture_output=True, check=False)
            for _ in range(rounds):
                for v in VARIANTS:
                    srv = servers[v.name]
                    for label, _n, c in LOADS:
                        wrk(srv.url + "/classify", scripts[label], c, 1, v.client_cpus)  # warm-up
                        before = metrics_text(srv.url)
                        r = wrk(srv.url + "/classify", scripts[label], c, duration, v.client_cpus)
                        if "--workers" in v.args and v.args[v.args.index("--workers") + 1] != "1":
                            time.sleep(1.5)  # the workers' metric snapshots are written once a second
                        after = metrics_text(srv.url)
                        results[v.name][label].append({
                            "rps": r.rps, "p50": r.p50_ms, "p99": r.p99_ms, "errors": r.errors,
                            "app_p99": bucket_p99(stage_buckets(before), stage_buckets(after)),
                            "shed": counter(after, SHED) - counter(before, SHED)})
        finally:
            for srv in servers.values():
                srv.stop()
    return results


def _tree(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid, *[p for c in out for p in _tree(int(c))]]


def render(results: dict, rounds: int, duration: int) -> str:
    lines = ["## Where the c = 64 tail comes from (issue 26)", "",
             f"Generated by `python -m bench.tail` ({platform.machine()}, {os.cpu_count()} logical CPUs shared by "
             f"wrk and the server; load average at the end {os.getloadavg()[0]:.2f}). {rounds} rounds of {duration} s "
             "per load, the variants interleaved; medians. `app p99` = the p99 of the time in the classifier core "
             "from /metrics (a histogram bucket's upper bound); `shed` = requests refused by admission control.", "",
             "| variant | load | req/s | texts/s | p50 ms | p99 ms | app p99 ms | shed | errors |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, by_load in results.items():
        for label, n, c in LOADS:
            runs = by_load[label]
            med = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99", "app_p99")}
            lines.append(f"| {name} | {label}, c={c} | {med['rps']:,.0f} | {med['rps'] * n:,.0f} | {med['p50']:.2f} | "
                         f"{med['p99']:.2f} | {med['app_p99']:.2f} | {sum(r['shed'] for r in runs):.0f} | "
                         f"{sum(r['errors'] for r in runs)} |")
    lines += ["", "p99 per round (ms): " + "; ".join(
        f"{name} / {label}: " + ", ".join(f"{r['p99']:.0f}" for r in by_load[label])
        for name, by_load in results.items() for label, _, _ in LOADS)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.tail", description=__doc__.splitlines()[0])
    p.add_argument("--models-dir", type=Path, default=ROOT / "models")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=4)
    p.add_argument("--out", type=Path, help="also write the table here (text below the analysis marker is kept)")
    args = p.parse_args(argv)
    text = render(run(args.models_dir, args.rounds, args.duration), args.rounds, args.duration)
    print(text)
    if args.out:
        old = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        kept = old[old.index(ANALYSIS):] if ANALYSIS in old else ""
        args.out.write_text(text + ("\n" + kept if kept else ""), encoding="utf-8")


if __name__ == "__main__":
    main()
