"""`make bench-peers`: slimtext against the servers a user would pick instead, side by side in one run.

    python -m bench.peers [--models-dir models] [--models sst2-dan-lowrank sst2-dan-full] [--peers ...]
                          [--venvs .venv-peers] [--rounds 3] [--duration 3] [--out docs/bench-peers.md]

For each model folder and each round, every peer in turn is started (one worker, onnxruntime intra-op threads 1,
127.0.0.1), its answers on 100 SST-2 test sentences (one per request, then in 32-text requests) are checked
against slimtext's, and wrk drives it: one text per request at concurrency 1, 8 and 64, then 32 texts per
request at concurrency 8. Its memory (RSS and PSS summed over its process tree) is read after the load. The peer
order rotates every round and the load average is recorded per round; the median of the rounds is reported.
A peer whose answers differ, or that cannot start, gets no numbers: the reason is written instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.peers.servers import MAX_BATCH, PEERS, Answer, Peer, PeerServer, post_json, python_for
from bench.serve import WrkResult, parse_wrk
from bench.server import ROOT
from slimtext.data import datasets_root, read_examples
from slimtext.manifest import Manifest

SCENARIOS = (("1 text", 1, 1), ("1 text", 1, 8), ("1 text", 1, 64), ("32 texts", 32, 8))  # label, texts, c
CHECK_TEXTS, TOLERANCE = 100, 1e-5
WRK_TIMEOUT_S = 5
ANALYSIS = "<!-- analysis: written by hand from the run above; `make bench-peers` keeps everything below this line -->"


@dataclass
class Run:
    rps: float
    texts_s: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx responses + socket errors (timeouts included)


def scenario_key(label: str, c: int) -> str:
    return f"{label}, c={c}"


def lua_script(body: dict, path: Path) -> Path:
    path.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    f"wrk.body = {json.dumps(json.dumps(body))}\n")
    return path


def wrk(url: str, script: Path, connections: int, duration_s: int) -> WrkResult:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", f"--timeout={WRK_TIMEOUT_S}s", "--latency",
           "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60, check=True).stdout
    return parse_wrk(out)


def compare_answers(reference: list[Answer], got: list[Answer], tolerance: float = TOLERANCE) -> str | None:
    """None when every label is equal and every probability within `tolerance`, else the first difference."""
    if len(got) != len(reference):
        return f"{len(got)} answers for {len(reference)} texts"
    for i, ((ref_label, ref_probs), (label, probs)) in enumerate(zip(reference, got, strict=True)):
        if label != ref_label:
            return f"text {i}: label {label!r}, slimtext says {ref_label!r}"
        diff = max(abs(a - b) for a, b in zip(ref_probs, probs, strict=True)) if len(probs) == len(ref_probs) else 1
        if diff > tolerance:
            return f"text {i}: probabilities differ by {diff:.2e} (> {tolerance:g})"
    return None


def answers(srv: PeerServer, texts: list[str], labels: list[str], per_request: int) -> list[Answer]:
    out: list[Answer] = []
    for i in range(0, len(texts), per_request):
        chunk = texts[i: i + per_request]
        out += srv.peer.parse(post_json(srv.url, srv.peer.body(chunk)), labels)
    return out


def check(srv: PeerServer, texts: list[str], labels: list[str], reference: list[Answer]) -> str | None:
    """The peer's answers, one text per request and 32 per request, against slimtext's."""
    for per_request in (1, 32):
        diff = compare_answers(reference, answers(srv, texts, labels, per_request))
        if diff:
            return f"{per_request} text(s) per request: {diff}"
    return None


def measure(srv: PeerServer, scripts: dict[str, Path], duration: int) -> dict[str, Run]:
    wrk(srv.url, scripts["1 text"], 8, 1)  # warm-up, not counted
    runs = {}
    for label, n, c in SCENARIOS:
        r = wrk(srv.url, scripts[label], c, duration)
        runs[scenario_key(label, c)] = Run(r.rps, r.rps * n, r.p50_ms, r.p99_ms, r.errors)
    return runs


def median_run(runs: list[Run]) -> Run:
    return Run(*(statistics.median(getattr(r, f) for r in runs) for f in ("rps", "texts_s", "p50_ms", "p99_ms")),
               errors=sum(r.errors for r in runs))


def bench_model(model: Path, peers: list[Peer], venvs: Path, texts: list[str], rounds: int,
                duration: int, log=print) -> dict:
    """Every peer on one model folder: {"peers": {name: {...}}, "rounds": [{"load": ..., "order": ...}]}."""
    labels = Manifest.model_validate_json((model / "manifest.json").read_text()).labels
    with PeerServer(PEERS["slimtext"], python_for(PEERS["slimtext"], venvs), model) as ref:
        reference = answers(ref, texts, labels, 1)
    result: dict = {"peers": {p.name: {"runs": [], "memory": [], "problem": None} for p in peers}, "rounds": []}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        for r in range(rounds):
            order = peers[r % len(peers):] + peers[: r % len(peers)]
            result["rounds"].append({"load_1min": os.getloadavg()[0], "order": [p.name for p in order]})
            for peer in order:
                entry = result["peers"][peer.name]
                if entry["problem"]:
                    continue
                python = python_for(peer, venvs)
                if python is None:
                    entry["problem"] = f"not installed: no {venvs / peer.venv / 'bin/python'} (make bench-peers)"
                    continue
                scripts = {label: lua_script(peer.body(texts[:n]), Path(tmp) / f"{peer.name}-{n}.lua")
                           for label, n, _ in SCENARIOS}
                try:
                    with PeerServer(peer, python, model) as srv:
                        diff = check(srv, texts, labels, reference)
                        if diff:
                            entry["problem"] = f"answers differ from slimtext's: {diff}"
                            continue
                        entry["runs"].append(measure(srv, scripts, duration))
                        entry["memory"].append(srv.memory())
                except (RuntimeError, TimeoutError, OSError, ValueError, KeyError, TypeError,
                        subprocess.SubprocessError) as e:  # a reply it cannot read counts as a problem too
                    entry["problem"] = f"could not be measured: {e}"[:600]
                    continue
                runs = entry["runs"][-1]
                log(f"{model.name} round {r + 1} {peer.name}: " + ", ".join(
                    f"{k} {v.rps:,.0f}/s p99 {v.p99_ms:.1f} ms" for k, v in runs.items()), flush=True)
    for entry in result["peers"].values():
        if entry["runs"]:
            entry["median"] = {k: median_run([run[k] for run in entry["runs"]]) for k in entry["runs"][0]}
            entry["rss_mb"] = max(m[0] for m in entry["memory"]) / 2**20
            entry["pss_mb"] = max(m[1] for m in entry["memory"]) / 2**20
    return result


# --- report ------------------------------------------------------------------------------------------------

def goal_lines(name: str, peers: dict) -> list[str]:
    """Issue 16's goal for slimtext (production settings) against the best measured peer."""
    ours = peers.get("slimtext", {}).get("median")
    others = {n: e["median"] for n, e in peers.items() if not n.startswith("slimtext") and e.get("median")}
    if not ours or not others:
        return [f"- {name}: not enough peers measured to judge the goal"]
    lines = []
    for c in (8, 64):
        key = scenario_key("1 text", c)
        best = max(others, key=lambda n: others[n][key].rps)
        ratio = ours[key].rps / others[best][key].rps
        ok = ratio >= 1.5 and ours[key].p99_ms <= others[best][key].p99_ms
        lines.append(f"- {name}, 1 text, c={c}: slimtext {ours[key].rps:,.0f} req/s = **{ratio:.2f}×** the best "
                     f"peer ({best}, {others[best][key].rps:,.0f} req/s); p99 {ours[key].p99_ms:.1f} vs "
                     f"{others[best][key].p99_ms:.1f} ms: goal (≥ 1.5×, p99 no worse) "
                     f"{'met' if ok else 'NOT met'}")
    key = scenario_key("32 texts", 8)
    best = max(others, key=lambda n: others[n][key].texts_s)
    ratio = ours[key].texts_s / others[best][key].texts_s
    lines.append(f"- {name}, 32 texts, c=8: slimtext {ours[key].texts_s:,.0f} texts/s = **{ratio:.2f}×** the best "
                 f"peer ({best}, {others[best][key].texts_s:,.0f} texts/s): goal (≥ 1×) "
                 f"{'met' if ratio >= 1 else 'NOT met'}")
    return lines


def render(results: dict[str, dict], settings: dict[str, str], chart: str | None) -> str:
    lines = ["# Serving benchmark against peers", "",
             "Generated by `make bench-peers` (`python -m bench.peers`). The same exported model folder served by "
             "slimtext and by the servers a user would pick instead, each with the project's tokenizer and "
             "onnxruntime runtime (`bench/peers/model.py`), one worker, onnxruntime intra-op threads 1, on "
             "127.0.0.1; one client for all (wrk, one Lua script per request format). A peer's numbers count "
             f"only after its answers on {CHECK_TEXTS} SST-2 test sentences (1 and 32 per request) equal "
             f"slimtext's (same labels, probabilities within {TOLERANCE:g}). Client and servers share the "
             "machine's CPUs: compare within a table, not with other machines.", "",
             *[f"- {k}: {v}" for k, v in settings.items()], "",
             "| peer | batching | how it runs |", "|---|---|---|"]
    lines += [f"| {p.name} | {p.batching} | {p.note} |" for p in PEERS.values()
              if any(p.name in r["peers"] for r in results.values())]
    lines += ["", "## Goal (issue 16)", ""]
    for name, res in results.items():
        lines += goal_lines(name, res["peers"])
    if chart:
        lines += ["", f"![requests/s and p99 per peer]({chart})"]
    for name, res in results.items():
        lines += ["", f"## {name}", "",
                  "Median of the rounds; req/s counts every completed request, texts/s = req/s × texts per request; "
                  "errors = non-2xx responses + socket errors (timeouts after "
                  f"{WRK_TIMEOUT_S} s) summed over the rounds; memory = the most, over the rounds, of RSS "
                  "and PSS summed over the server's process tree, read after the load.", "",
                  "| load | peer | req/s | texts/s | p50 ms | p99 ms | errors | RSS MB | PSS MB |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for label, _, c in SCENARIOS:
            key = scenario_key(label, c)
            for peer, entry in res["peers"].items():
                if "median" in entry:
                    m = entry["median"][key]
                    lines.append(f"| {key} | {peer} | {m.rps:,.0f} | {m.texts_s:,.0f} | {m.p50_ms:.2f} | "
                                 f"{m.p99_ms:.2f} | {m.errors} | {entry['rss_mb']:.0f} | {entry['pss_mb']:.0f} |")
        problems = [(p, e["problem"]) for p, e in res["peers"].items() if e["problem"]]
        if problems:
            lines += ["", "Not counted:", ""] + [f"- {p}: {why}" for p, why in problems]
        lines += ["", "Rounds (1-minute load average at the start of each round, peer order):", ""]
        lines += [f"{i + 1}. load {r['load_1min']:.2f}: {', '.join(r['order'])}" for i, r in enumerate(res["rounds"])]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, dict], path: Path) -> None:
    """Per model: requests/s for one text per request, texts/s for 32-text requests, p99 for every load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    single = [scenario_key(label, c) for label, n, c in SCENARIOS if n == 1]
    batch = [scenario_key(label, c) for label, n, c in SCENARIOS if n > 1]
    fig, axes = plt.subplots(len(results), 3, figsize=(15, 4.3 * len(results)), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1.3, 4]})
    for row, (name, res) in zip(axes, results.items(), strict=True):
        peers = [p for p, e in res["peers"].items() if "median" in e]
        width = 0.8 / max(len(peers), 1)
        panels = ((row[0], single, "rps", "requests/s (1 text per request)", "1 text per request: throughput"),
                  (row[1], batch, "texts_s", "texts/s", "32 texts per request"),
                  (row[2], single + batch, "p99_ms", "p99 latency, ms (log scale)", "p99 latency (lower is better)"))
        for ax, keys, field, unit, title in panels:
            for i, peer in enumerate(peers):
                med = res["peers"][peer]["median"]
                xs = [k + (i - (len(peers) - 1) / 2) * width for k in range(len(keys))]
                ax.bar(xs, [getattr(med[k], field) for k in keys], width, label=peer, color=f"C{i}")
            ax.set_xticks(range(len(keys)), keys)
            ax.set_ylabel(unit)
            ax.set_title(f"{name}: {title}", fontsize=10)
            ax.grid(axis="y", alpha=0.3)
        row[2].set_yscale("log")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9)
    fig.tight_layout(rect=(0, 0.05 / len(results), 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def to_json(results: dict[str, dict]) -> dict:
    def conv(obj):
        if isinstance(obj, Run):
            return asdict(obj)
        if isinstance(obj, dict):
            return {k: conv(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [conv(v) for v in obj]
        return obj
    return conv(results)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", type=Path, default=ROOT / "models")
    p.add_argument("--models", nargs="+", default=["sst2-dan-lowrank", "sst2-dan-full"])
    p.add_argument("--peers", nargs="+", default=[n for n in PEERS if n != "slimtext-2workers"], choices=list(PEERS))
    p.add_argument("--venvs", type=Path, default=ROOT / ".venv-peers", help="folder of one venv per peer")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "bench-peers.md")
    p.add_argument("--no-chart", action="store_true")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: install the Debian package `wrk` (apt-get install wrk)")
    if "slimtext" not in args.peers:
        raise SystemExit("--peers must include slimtext: every other peer's answers are checked against it")
    texts = read_examples(datasets_root() / "sst2" / "test.tsv").texts[:CHECK_TEXTS]
    peers = [PEERS[name] for name in args.peers]
    results = {name: bench_model(args.models_dir / name, peers, args.venvs, texts, args.rounds, args.duration)
               for name in args.models}
    chart = None
    if not args.no_chart:
        png = args.out.with_suffix(".png")
        plot(results, png)
        chart = png.name
    settings = {"machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs (shared; often ~1 core effective)",
                "wrk": f"1 thread, `--latency`, {args.duration:g} s per run after a 1 s warm-up at c=8, "
                       f"timeout {WRK_TIMEOUT_S} s", "rounds": f"{args.rounds} (peer order rotated each round)",
                "batching knobs": f"at most {MAX_BATCH} per batch, 1 ms wait where the framework has the knob",
                "model folders": ", ".join(f"`{name}`" for name in args.models)}
    kept = ""
    if args.out.exists():
        old = args.out.read_text(encoding="utf-8")
        kept = old[old.index(ANALYSIS):] if ANALYSIS in old else ""
    args.out.write_text(render(results, settings, chart) + ("\n" + kept if kept else ""), encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(to_json(results), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0
