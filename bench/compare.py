"""Compare exported models side by side in one run: size, memory, latency, throughput, accuracy.

    python -m bench.compare [FOLDER ...] [--reference NAME] [--out docs/compare.md]

Default folders: models/sst2-dan-{lowrank,int8,full}. For each: ONNX bytes, RSS growth at load (a fresh
process per load), onnxruntime p50/p99 at batch 1 and 32 (1 intra-op thread), HTTP requests/s and
p50/p99 through a real uvicorn on loopback (bounded async httpx client), test accuracy and prediction
agreement with the reference (default: the `full` model). Prints the table and writes a markdown
file and a PNG bar chart next to it.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime

from bench import measure
from bench.report import Row, chart, markdown, table
from bench.server import ROOT, UvicornServer
from slimtext.data import datasets_root, read_examples, split_path
from slimtext.runtime import OnnxClassifier

DEFAULT_MODELS = ("sst2-dan-lowrank", "sst2-dan-int8", "sst2-dan-full")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="*", type=Path, help="model folders (two or more)")
    ap.add_argument("--models-dir", type=Path, default=ROOT / "models", help="where the default folders live")
    ap.add_argument("--reference", help="model name to measure agreement against (default: the full model)")
    ap.add_argument("--dataset", default="sst2")
    ap.add_argument("--data-root", help="dataset root (default: slimtext.data.datasets_root())")
    ap.add_argument("--b1-iters", type=int, default=3000, help="onnxruntime runs per model at batch 1")
    ap.add_argument("--b32-iters", type=int, default=600, help="onnxruntime runs per model at batch 32")
    ap.add_argument("--http-requests", type=int, default=2000, help="HTTP requests per model")
    ap.add_argument("--concurrency", type=int, default=8, help="HTTP requests in flight")
    ap.add_argument("--rss-repeats", type=int, default=3, help="fresh-process loads per model (median)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "compare.md", help="markdown; the PNG goes next to it")
    args = ap.parse_args(argv)
    args.folders = args.folders or [args.models_dir / name for name in DEFAULT_MODELS]
    if len(args.folders) < 2:
        ap.error("give two or more model folders")
    for f in args.folders:
        if not (f / "manifest.json").is_file():
            ap.error(f"{f}: not a model folder (run `make models` for the defaults)")
    return args


def pick_reference(classifiers: dict[str, OnnxClassifier], requested: str | None) -> str:
    if requested:
        if requested not in classifiers:
            raise SystemExit(f"--reference {requested!r} is not among {sorted(classifiers)}")
        return requested
    full = [n for n, c in classifiers.items() if c.manifest.kind == "full"]
    return (full or list(classifiers))[0]


def serve_dir(folders: list[Path], tmp: Path) -> Path:
    """A models folder holding exactly the compared folders (copies: the service follows no symlink)."""
    for f in folders:
        shutil.copytree(f, tmp / f.name)
    return tmp


def run(args: argparse.Namespace) -> tuple[list[Row], str]:
    test = read_examples(split_path(datasets_root(args.data_root) / args.dataset, "test"))
    classifiers = {}
    for f in args.folders:
        clf = OnnxClassifier(f, intra_op_threads=1)
        classifiers[clf.manifest.name] = clf
    reference = pick_reference(classifiers, args.reference)
    names = list(classifiers)

    print(f"[1/4] RSS growth: {args.rss_repeats} fresh-process loads per model", flush=True)
    rss = {n: measure.rss_growth(c.folder, args.rss_repeats) for n, c in classifiers.items()}
    print("[2/4] onnxruntime latency at batch 1 and 32", flush=True)
    b1 = measure.ort_latency(classifiers, test.texts, 1, args.b1_iters)
    b32 = measure.ort_latency(classifiers, test.texts, 32, args.b32_iters)
    print("[3/4] accuracy and agreement on the test split", flush=True)
    preds = {n: np.array(c.labels)[measure.predictions(c, test.texts)] for n, c in classifiers.items()}
    gold = np.array(test.labels)
    print(f"[4/4] HTTP: {args.http_requests} requests per model, {args.concurrency} in flight", flush=True)
    with tempfile.TemporaryDirectory() as tmp, UvicornServer(serve_dir(args.folders, Path(tmp))) as srv:
        http = measure.http_throughput(srv.url, names, test.texts, args.http_requests, args.concurrency)

    rows = [Row(model=n, kind=c.manifest.kind, onnx_bytes=measure.onnx_bytes(c.folder), rss_growth_bytes=rss[n].first,
                rss_marginal_bytes=rss[n].marginal,
                ort_b1_p50_us=b1[n].p50, ort_b1_p99_us=b1[n].p99, ort_b32_p50_us=b32[n].p50,
                ort_b32_p99_us=b32[n].p99, http_rps=http[n].requests_per_s, http_p50_ms=http[n].latency_ms.p50,
                http_p99_ms=http[n].latency_ms.p99, http_failures=http[n].failures,
                accuracy=float((preds[n] == gold).mean()), agreement=float((preds[n] == preds[reference]).mean()))
            for n, c in classifiers.items()]
    return rows, reference


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.monotonic()
    load_before = os.getloadavg()[0]
    rows, reference = run(args)
    png = args.out.with_suffix(".png")
    settings = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs reported, Python {platform.python_version()}, "
                   f"onnxruntime {onnxruntime.__version__}; 1-min load average {load_before:.1f} before the run, "
                   f"{os.getloadavg()[0]:.1f} after (other work on the machine shares the CPU)",
        "models": ", ".join(str(f) for f in args.folders),
        "test split": f"{args.dataset} test",
        "onnxruntime": f"1 intra-op thread; batch 1: {args.b1_iters} runs, batch 32: {args.b32_iters} runs per model, "
                       "models taking turns",
        "RSS": f"median over {args.rss_repeats} fresh processes (imports done before measuring); 'at load' "
               "includes onnxruntime's one-time set-up, 'per extra copy' is a second load in the same process",
        "HTTP": f"one uvicorn worker on 127.0.0.1 serving all models; {args.http_requests} single-text requests "
                f"per model, {args.concurrency} in flight (httpx async client on the same machine)",
    }
    chart(rows, reference, png)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(rows, reference, settings, png.name))
    print(table(rows, reference))
    print(f"wrote {args.out} and {png} in {time.monotonic() - t0:.0f} s")
    return 1 if any(r.http_failures for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
