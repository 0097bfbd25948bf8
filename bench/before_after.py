"""What a change costs on the hot path: this checkout against another one, side by side in one run.

    python -m bench.before_after --before-repo /tmp/wt-before [--models-dir models] [--rounds 3] [--out FILE]

Starts `python -m service` from each checkout (1 worker, defaults, same models folder) on free loopback
ports and drives POST /classify (one 20-word sentence, the default model) with wrk at concurrency 1, 8
and 64, the two servers interleaved round by round so a load change on the machine hits both alike; the
median of the rounds is kept. Prints (and with --out writes) a markdown table: req/s and p99 before -> after.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from bench.serve import CONCURRENCY, SENTENCE, WrkResult, lua_script, median_result, wrk
from bench.server import ROOT, UvicornServer


def run(before: Path, models_dir: Path, rounds: int, duration_s: int) -> dict[str, dict[int, WrkResult]]:
    py = before / ".venv" / "bin" / "python"
    servers = {"before": UvicornServer(models_dir, python=str(py) if py.exists() else sys.executable, cwd=before),
               "after": UvicornServer(models_dir)}
    runs: dict[str, dict[int, list[WrkResult]]] = {k: {c: [] for c in CONCURRENCY} for k in servers}
    with tempfile.TemporaryDirectory() as tmp, servers["before"], servers["after"]:
        script = lua_script({"texts": [SENTENCE]}, Path(tmp), "one")
        for _ in range(rounds):
            for c in CONCURRENCY:
                for name, srv in servers.items():
                    runs[name][c].append(wrk(srv.url + "/classify", script, c, duration_s))
    return {k: {c: median_result(r) for c, r in by_c.items()} for k, by_c in runs.items()}


def render(result: dict[str, dict[int, WrkResult]], rounds: int, duration_s: int) -> str:
    rows = ["| concurrency | req/s before | req/s after | after / before | p99 ms before | p99 ms after |",
            "|---:|---:|---:|---:|---:|---:|"]
    for c in CONCURRENCY:
        b, a = result["before"][c], result["after"][c]
        rows.append(f"| {c} | {b.rps:,.0f} | {a.rps:,.0f} | {a.rps / b.rps:.2f} | {b.p99_ms:.2f} | {a.p99_ms:.2f} |")
    return "\n".join([
        f"POST /classify, one 20-word sentence, default model; wrk -t1, {duration_s} s per run, {rounds} rounds "
        f"interleaved (median); one uvicorn worker each; {platform.machine()}, client and servers on one "
        "machine.", "", *rows, ""])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.before_after", description=__doc__.splitlines()[0])
    p.add_argument("--before-repo", type=Path, required=True)
    p.add_argument("--models-dir", type=Path, default=ROOT / "models")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    p.add_argument("--out", type=Path, help="also write the table here")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        print("needs wrk: apt-get install wrk", file=sys.stderr)
        return 1
    table = render(run(args.before_repo.resolve(), args.models_dir, args.rounds, args.duration), args.rounds,
                   args.duration)
    print(table)
    if args.out:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
