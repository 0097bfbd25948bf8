"""`make bench-peers`: slimtext against the servers a user would pick instead, side by side in one run.

    python -m bench.peers [--models-dir models] [--models sst2-dan-lowrank sst2-dan-full] [--peers ...]
                          [--venvs .venv-peers] [--rounds 3] [--duration 3] [--out docs/bench-peers.md]

For each model folder and each round, every peer in turn is started (onnxruntime intra-op threads 1, 127.0.0.1;
one worker, or two for the `-2workers` / `-2replicas` rows that use each framework's own worker knob; `slimtext`
itself runs with the production default worker count, `slimtext-1worker` with one), its answers on 100 SST-2
test sentences (one per request, then in 32-text requests) are checked against slimtext's, and wrk drives it: one
text per request at concurrency 1, 8 and 64, then 32 texts per request at concurrency 8. Its memory (RSS and PSS
summed over its process tree) is read after the load. The peer order rotates every round and the load average is
recorded per round; the median of the rounds is reported.
A peer whose answers differ, or that cannot start, gets no numbers: the reason is written instead. The goals of
issue 26 (`judge_goals`) compare slimtext's production default with the best of all the other peers' rows.
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
                        if peer.startup and not entry.get("startup"):
                            entry["startup"] = srv.log_line(peer.startup)
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

# issue 26: per load, slimtext's production default against the best of every other peer's rows (1 and 2 workers)
RPS_GOAL, TEXTS_GOAL = 1.5, 1.2  # × the best peer's req/s for 1 text at c=1, 8, 64; texts/s for 32 texts at c=8
GOALS = ((scenario_key("1 text", 1), "rps", RPS_GOAL), (scenario_key("1 text", 8), "rps", RPS_GOAL),
         (scenario_key("1 text", 64), "rps", RPS_GOAL), (scenario_key("32 texts", 8), "texts_s", TEXTS_GOAL))
UNITS = {"rps": "req/s", "texts_s": "texts/s"}


@dataclass(frozen=True)
class Goal:
    """One load's verdict: throughput ≥ `target` × the best peer's, p99 ≤ the lowest p99 any peer reached."""
    load: str
    field: str  # "rps" or "texts_s"
    target: float
    ours: Run
    best: str  # the peer with the most throughput at this load
    best_run: Run
    lowest: str  # the peer with the lowest p99 at this load
    lowest_p99_ms: float

    @property
    def unit(self) -> str:
        return UNITS[self.field]

    @property
    def ratio(self) -> float:
        theirs = getattr(self.best_run, self.field)
        return getattr(self.ours, self.field) / theirs if theirs > 0 else float("inf")

    @property
    def throughput_met(self) -> bool:
        return self.ratio >= self.target

    @property
    def p99_met(self) -> bool:
        return self.ours.p99_ms <= self.lowest_p99_ms

    @property
    def met(self) -> bool:  # and no failed request of slimtext's: a goal met while dropping requests is not met
        return self.throughput_met and self.p99_met and self.ours.errors == 0


def judge_goals(peers: dict[str, dict], ours: str = "slimtext") -> list[Goal] | None:
    """Issue 26's goals for one model from `bench_model`'s "peers" (name -> entry with a "median" {load: Run} when
    measured): `ours` against every measured peer whose name does not start with "slimtext". None when `ours` or
    every other peer has no numbers."""
    mine = peers.get(ours, {}).get("median")
    others = {n: e["median"] for n, e in peers.items() if not n.startswith("slimtext") and e.get("median")}
    if not mine or not others:
        return None
    out = []
    for load, fld, target in GOALS:
        best = max(others, key=lambda n: getattr(others[n][load], fld))
        lowest = min(others, key=lambda n: others[n][load].p99_ms)
        out.append(Goal(load, fld, target, mine[load], best, others[best][load], lowest, others[lowest][load].p99_ms))
    return out


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def goal_lines(name: str, goals: list[Goal] | None) -> list[str]:
    """One line per load: the ratio to the best peer, the lowest peer p99 and who had it, met / NOT met per part."""
    if goals is None:
        return [f"- {name}: not enough peers measured to judge the goal"]
    lines = []
    for g in goals:
        line = (f"- {name}, {g.load}: slimtext {getattr(g.ours, g.field):,.0f} {g.unit} = **{g.ratio:.2f}×** the best "
                f"peer ({g.best}, {getattr(g.best_run, g.field):,.0f} {g.unit}): ≥ {g.target:g}× "
                f"{_met(g.throughput_met)}; p99 {g.ours.p99_ms:.1f} ms vs the lowest peer p99 {g.lowest_p99_ms:.1f} ms "
                f"({g.lowest}): p99 no worse {_met(g.p99_met)}")
        if g.ours.errors:
            line += f"; slimtext had {g.ours.errors} failed requests: NOT met"
        lines.append(line)
    return lines


def goal_table(results: dict[str, list[Goal] | None]) -> list[str]:
    """The goals of every model as one compact markdown table (model name -> `judge_goals`'s answer)."""
    lines = ["| model | load | slimtext | best peer | ratio (goal) | slimtext p99 ms | lowest peer p99 ms | met? |",
             "|---|---|---:|---|---:|---:|---|---|"]
    for name, goals in results.items():
        if goals is None:
            lines.append(f"| {name} | | | not enough peers measured | | | | |")
            continue
        for g in goals:
            missed = [why for why, ok in (("ratio", g.throughput_met), ("p99", g.p99_met),
                                           (f"{g.ours.errors} errors", not g.ours.errors)) if not ok]
            lines.append(f"| {name} | {g.load} | {getattr(g.ours, g.field):,.0f} {g.unit} | {g.best} "
                         f"({getattr(g.best_run, g.field):,.0f}) | {g.ratio:.2f}× (≥ {g.target:g}×) | "
                         f"{g.ours.p99_ms:.1f} | {g.lowest_p99_ms:.1f} ({g.lowest}) | "
                         f"{'yes' if g.met else 'no: ' + ', '.join(missed)} |")
    return lines


def render(results: dict[str, dict], settings: dict[str, str], chart: str | None) -> str:
    lines = ["# Serving benchmark against peers", "",
             "Generated by `make bench-peers` (`python -m bench.peers`). The same exported model folder served by "
             "slimtext and by the servers a user would pick instead, each with the project's tokenizer and "
             "onnxruntime runtime (`bench/peers/model.py`), onnxruntime intra-op threads 1, on 127.0.0.1: every "
             "framework with one worker and, in the `-2workers` / `-2replicas` rows, with two (its own worker "
             "knob); `slimtext` with the production default worker count (no `--workers` flag). One client "
             "for all (wrk, one Lua script per request format). A peer's numbers count "
             f"only after its answers on {CHECK_TEXTS} SST-2 test sentences (1 and 32 per request) equal "
             f"slimtext's (same labels, probabilities within {TOLERANCE:g}). Client and servers share the "
             "machine's CPUs: compare within a table, not with other machines.", "",
             *[f"- {k}: {v}" for k, v in settings.items()], "",
             "| peer | batching | how it runs |", "|---|---|---|"]
    for p in PEERS.values():
        started = sorted({r["peers"][p.name].get("startup") or "" for r in results.values() if p.name in r["peers"]})
        if started:
            said = "; ".join(f"`{line}`" for line in started if line)
            lines.append(f"| {p.name} | {p.batching} | {p.note}{f' (this run: {said})' if said else ''} |")
    goals = {name: judge_goals(res["peers"]) for name, res in results.items()}
    lines += ["", "## Goal (issue 26)", "",
              f"slimtext (production default) against the best of every other peer's rows, 1 and 2 workers: "
              f"req/s ≥ {RPS_GOAL:g}× the best peer's for 1 text per request at c = 1, 8 and 64, texts/s ≥ "
              f"{TEXTS_GOAL:g}× for 32 texts per request at c = 8, and at every load p99 ≤ the lowest p99 any peer "
              "reaches there (and no failed request).", "", *goal_table(goals), ""]
    for name in results:
        lines += goal_lines(name, goals[name])
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

    colors = plt.get_cmap("tab20")  # 20 distinct colours: 14 peers do not repeat one
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
                ax.bar(xs, [getattr(med[k], field) for k in keys], width, label=peer, color=colors(i % 20))
            ax.set_xticks(range(len(keys)), keys)
            ax.set_ylabel(unit)
            ax.set_title(f"{name}: {title}", fontsize=10)
            ax.grid(axis="y", alpha=0.3)
        row[2].set_yscale("log")
    handles, labels = axes[0][0].get_legend_handles_labels()
    ncol = min(len(labels), 7)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=9)
    fig.tight_layout(rect=(0, 0.05 * -(-len(labels) // ncol) / len(results), 1, 1))
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


def cpu_quota() -> str:
    """", cgroup CPU quota Q" when this process's cgroup (v2) caps its CPU time, else ""."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return "" if quota == "max" else f", cgroup CPU quota {int(quota) / int(period):g}"
    except (OSError, ValueError):
        return ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", type=Path, default=ROOT / "models")
    p.add_argument("--models", nargs="+", default=["sst2-dan-lowrank", "sst2-dan-full"])
    p.add_argument("--peers", nargs="+", default=list(PEERS), choices=list(PEERS),
                   help="default: all of them (slimtext first: every other peer's answers are checked against it)")
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
    settings = {"machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs, {len(os.sched_getaffinity(0))} "
                           f"usable by this process{cpu_quota()}; client and servers share them",
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
    print("\n".join(goal_table({name: judge_goals(res["peers"]) for name, res in results.items()})))
    print(f"wrote {args.out}")
    return 0
