"""Many models in one process: how many fit in 1 GiB of RSS, how long a cold load takes, and /classify latency
while 1,000 models are registered and requests spread Zipf-like over them under a memory budget that holds only a
fraction. Writes docs/density.md (`make bench-density`).

For each export of the same SST-2 classifier (full, int8, lowrank, lowrank+int8: the lowrank model with every
weight stored as int8 per row, `training.onnx_export.quantize_int8_weights`), copies of the folder under
different names (hard links to model.onnx and vocab.json, a manifest of their own) are loaded by the service's
registry in a fresh process, "before" (onnxruntime's CPU arena on, a dict-of-strings vocabulary per model: the
service until this change), "compact" (arena off, a compact vocabulary per model) and "after" (arena off, one
compact vocabulary per distinct vocabulary file: the service now). Per-model memory is the RSS
growth per extra model once the first is loaded (the first one also pays the shared vocabulary and onnxruntime's
start-up); models per GiB = (1 GiB - RSS with one model loaded) / per-model memory.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from bench.server import UvicornServer

GIB = 1 << 30
VARIANTS = {"full": "sst2-dan-full", "int8": "sst2-dan-int8", "lowrank": "sst2-dan-lowrank",
            "lowrank+int8": "sst2-dan-lowrank-int8"}
TEXTS = ["a gorgeous , witty , seductive movie .", "dull , lifeless and boring .",
         "the plot is nowhere near as clever as it thinks", "an utterly charming and hilarious film ."]


def make_lowrank_int8(src: Path, dst: Path) -> Path:
    """The lowrank folder with its weights stored as int8 per row (what `training export --int8` writes for a
    lowrank run), made from the exported folder so that no training is needed."""
    from slimtext.manifest import Manifest, sha256_file
    from training.onnx_export import INT8_WEIGHTS, onnx_param_bytes_by_dtype, quantize_int8_weights

    dst.mkdir(parents=True)
    quantize_int8_weights(src / "model.onnx", dst / "model.onnx")
    shutil.copyfile(src / "vocab.json", dst / "vocab.json")
    m = Manifest.load(src)
    m = m.model_copy(update={"name": dst.name, "kind": "int8", "quantization": INT8_WEIGHTS,
                             "onnx_bytes": (dst / "model.onnx").stat().st_size,
                             "sha256": sha256_file(dst / "model.onnx"),
                             "param_bytes_by_dtype": onnx_param_bytes_by_dtype(dst / "model.onnx")})
    m.save(dst)
    return dst


def copies(src: Path, root: Path, n: int, prefix: str = "m") -> list[str]:
    """`n` copies of the model folder `src` under `root`, named prefix0000...: hard links to model.onnx and
    vocab.json (no disk space, regular files for the registry), a manifest of their own."""
    manifest = json.loads((src / "manifest.json").read_text())
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        name = f"{prefix}{i:04d}"
        d = root / name
        d.mkdir()
        for f in ("model.onnx", "vocab.json"):
            os.link(src / f, d / f)
        (d / "manifest.json").write_text(json.dumps({**manifest, "name": name}))
        names.append(name)
    return names


# --- in a fresh process: load N copies, measure RSS and load times ------------------------------------
def child(folder: Path, mode: str) -> dict:
    import gc

    from service.memory import rss_bytes
    from service.registry import ModelRegistry, RegistryConfig, _trim_heap
    from slimtext import runtime

    if mode == "before":  # one dict-of-strings tokenizer per model, as before the compact shared vocabulary
        class NoCache(dict):
            def setdefault(self, key, value):
                return value

        runtime._VOCABS = NoCache()
        runtime._parse_tokenizer = functools.partial(runtime._parse_tokenizer, compact=False)
    elif mode == "compact":  # compact, but one per model: what distinct vocabularies cost
        class NoShare(dict):
            def setdefault(self, key, value):
                return value

        runtime._VOCABS = NoShare()
    # "compact" and "after": the service's default (no arena)
    reg = ModelRegistry(RegistryConfig(folder, cpu_arena=mode == "before"))
    reg.scan()
    reg._warm_up()
    gc.collect()
    _trim_heap()  # as the registry does around every load
    base = rss_bytes()
    slots = [e.latest for e in sorted(reg.entries.values(), key=lambda e: e.name)]
    times, after_first = [], None
    for slot in slots:
        t = time.perf_counter()
        if reg._load_now(slot) is None:
            raise SystemExit(f"{slot.folder}: {reg.errors}")
        times.append(time.perf_counter() - t)
        if after_first is None:
            gc.collect()
            after_first = rss_bytes()
    gc.collect()
    end = rss_bytes()
    return {"n": len(slots), "base": base, "after_first": after_first, "end": end, "load_s": times,
            "vocabularies": runtime.shared_vocabularies() if mode == "after" else len(slots)}


def measure_density(src: Path, tmp: Path, n: int, mode: str) -> dict:
    folder = tmp / f"density-{src.name}-{mode}"
    copies(src, folder, n)
    out = subprocess.run([sys.executable, "-m", "bench.density", "--child", str(folder), "--mode", mode],
                         capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parent.parent)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    r = json.loads(out.stdout.strip().splitlines()[-1])
    shutil.rmtree(folder)
    per_model = (r["end"] - r["after_first"]) / (r["n"] - 1)
    loads = sorted(r["load_s"][1:])
    return {"per_model": per_model, "first": r["after_first"] - r["base"], "rss_one": r["after_first"],
            "per_gib": int((GIB - r["after_first"]) / per_model), "load_p50": np.percentile(loads, 50),
            "load_p99": np.percentile(loads, 99), "vocabularies": r["vocabularies"]}


# --- a server with 1,000 models registered, Zipf requests, a budget for a fraction --------------------
def zipf_run(src: Path, tmp: Path, registered: int, requests: int, budget_mb: float, charge: float,
             clients: int, seed: int = 0) -> dict:
    folder = tmp / f"zipf-{src.name}"
    names = copies(src, folder, registered)
    (folder / "aliases.json").write_text(json.dumps({"default": names[0]}))
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, registered + 1)
    p = 1.0 / ranks
    p /= p.sum()
    order = rng.permutation(registered)  # which model is popular is unrelated to its name
    picks = [names[order[i]] for i in rng.choice(registered, size=requests, p=p)]
    env = {"SLIMTEXT_MEMORY_BUDGET_MB": f"{budget_mb:.3f}", "SLIMTEXT_MAX_IN_FLIGHT": "256"}
    t0 = time.perf_counter()
    with UvicornServer(folder, env=env, ready_timeout=300, args=("--log-level", "warning")) as srv:
        start_s = time.perf_counter() - t0
        warm = [names[order[i]] for i in range(int(budget_mb * (1 << 20) // charge))]  # the most popular ones
        with httpx.Client(timeout=60) as c:
            for name in warm:  # fill the budget first: the measured requests then show the steady state
                c.post(f"{srv.url}/classify", json={"texts": [TEXTS[0]], "model": name})
        hot: list[float] = []
        cold: list[float] = []
        errors = [0]
        lock = threading.Lock()
        chunks = [picks[i::clients] for i in range(clients)]

        def client(mine: list[str]) -> None:
            with httpx.Client(timeout=60) as c:
                for k, name in enumerate(mine):
                    t = time.perf_counter()
                    r = c.post(f"{srv.url}/classify", json={"texts": [TEXTS[k % len(TEXTS)]], "model": name})
                    dt = time.perf_counter() - t
                    with lock:
                        (cold if "load;dur" in r.headers.get("server-timing", "") else hot).append(dt)
                        errors[0] += r.status_code != 200

        wall = time.perf_counter()
        threads = [threading.Thread(target=client, args=(c,)) for c in chunks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - wall
        figures = {}
        for line in httpx.get(f"{srv.url}/metrics", timeout=30).text.splitlines():
            if line.startswith(("slimtext_model_loads_total", "slimtext_model_evictions_total",
                                "slimtext_models_loaded ", "slimtext_models_memory_bytes ",
                                "process_resident_memory_bytes")):
                key, value = line.rsplit(" ", 1)
                figures[key] = float(value)
    shutil.rmtree(folder)
    lat = hot + cold
    pct = lambda xs, q: float(np.percentile(xs, q)) if xs else float("nan")  # noqa: E731
    return {"p50": pct(lat, 50), "p99": pct(lat, 99), "hot_p50": pct(hot, 50), "hot_p99": pct(hot, 99),
            "cold_p50": pct(cold, 50), "cold_p99": pct(cold, 99), "cold": len(cold), "errors": errors[0],
            "requests": requests, "warm": len(warm),
            "distinct": len(set(picks)), "loads": figures.get("slimtext_model_loads_total", 0),
            "evictions": figures.get("slimtext_model_evictions_total", 0),
            "loaded": figures.get("slimtext_models_loaded", 0), "rss": figures.get("process_resident_memory_bytes", 0),
            "charged": figures.get("slimtext_models_memory_bytes", 0), "start_s": start_s, "rps": requests / wall}


def fmt_mb(b: float) -> str:
    return f"{b / 1e6:.2f}"


def render(rows: dict, zipf: dict, args, onnx: dict[str, int], elapsed: float) -> str:
    lines = ["# Density: many models in one process", "",
             f"`make bench-density` (`python -m bench.density`), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
             f"{elapsed:.0f} s in all, on the shared 2-core machine (ratios matter, absolute times are noisy). "
             f"Exports of the same SST-2 DAN ({args.models_dir}); {args.copies} copies per export loaded by the "
             "service's registry in a fresh process.", "",
             "Three configurations of the service's registry: **before** = onnxruntime's CPU memory arena on and a "
             "dict-of-strings vocabulary per model (the service before this change); **own vocab** = arena off "
             "(`SLIMTEXT_ORT_CPU_ARENA=false`, the default now) and a compact vocabulary (numpy) per model, what "
             "models with distinct vocabularies cost; **shared vocab** = the same, with one vocabulary object per "
             "distinct vocabulary file (content hash), what copies and models trained on one vocabulary cost (the "
             "service's behaviour). Per-model memory = RSS growth per extra copy once one is loaded; models per GiB "
             "= (1 GiB − RSS with one model loaded) / per-model memory.", "",
             "| export | ONNX bytes | MB per model: before | own vocab | shared vocab | shared / ONNX bytes | "
             "models per GiB: before | own vocab | shared vocab | cold load p50 / p99 (ms): before | shared vocab |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for v, r in rows.items():
        b, c, a = r["before"], r["compact"], r["after"]
        lines.append(f"| {v} | {onnx[v]:,} | {fmt_mb(b['per_model'])} | {fmt_mb(c['per_model'])} | "
                     f"{fmt_mb(a['per_model'])} | {a['per_model'] / onnx[v]:.2f}× | {b['per_gib']:,} | "
                     f"{c['per_gib']:,} | {a['per_gib']:,} | {b['load_p50'] * 1e3:.1f} / {b['load_p99'] * 1e3:.1f} | "
                     f"{a['load_p50'] * 1e3:.1f} / {a['load_p99'] * 1e3:.1f} |")
    low = rows["lowrank"]
    lines += ["", "Shared overhead (after), paid once: RSS with one model loaded "
              f"{fmt_mb(low['after']['rss_one'])} MB (the interpreter, onnxruntime, the service's modules); the first "
              f"lowrank model costs {fmt_mb(low['after']['first'])} MB (its session plus the vocabulary that the "
              f"copies then share: {low['after']['vocabularies']} vocabulary object(s) for {args.copies} models).", ""]
    def ratio(mode: str, other: str) -> str:
        return f"{low[mode]['per_gib'] / rows[other][mode]['per_gib']:.2f}×"

    lines += [f"Goal: lowrank ≥ 4× the models per GiB of full and ≥ 1.3× of int8 → shared vocab "
              f"**{ratio('after', 'full')}** and **{ratio('after', 'int8')}**; own vocab "
              f"{ratio('compact', 'full')} and {ratio('compact', 'int8')}; "
              f"before {ratio('before', 'full')} and {ratio('before', 'int8')}.", ""]
    lines += [f"## /classify with {args.registered:,} models registered", "",
              f"A real `python -m service` (uvicorn, loopback) serving {args.registered:,} copies of one export, "
              f"`SLIMTEXT_MEMORY_BUDGET_MB` set to hold about {args.fraction:.0%} of them (budget = "
              f"{args.fraction:.0%} × {args.registered:,} × the export's per-model charge, at least its ONNX bytes), "
              "the most popular models are requested once first (filling the budget, not measured), then "
              f"{args.requests:,} single-text requests from {args.clients} client threads, model chosen Zipf-like "
              "(p ∝ 1/rank, s = 1, popularity unrelated to the name). Latency is the client's (HTTP included). "
              "A **cold** request found its model not loaded and waited for its load (its `Server-Timing` header "
              "has `load;dur=`); a **hot** one found it loaded.", "",
              "| export | budget (MB) | start-up (s) | distinct models asked | cold requests | loads | evictions | "
              "loaded at end | RSS at end (MB) | p50 / p99 all (ms) | hot p50 / p99 (ms) | cold p50 / p99 (ms) | "
              "requests/s | errors |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for v, z in zipf.items():
        lines.append(f"| {v} | {z['budget_mb']:.1f} | {z['start_s']:.1f} | {z['distinct']} | {z['cold']} | "
                     f"{z['loads']:.0f} | {z['evictions']:.0f} | {z['loaded']:.0f} | {fmt_mb(z['rss'])} | "
                     f"{z['p50'] * 1e3:.2f} / {z['p99'] * 1e3:.1f} | {z['hot_p50'] * 1e3:.2f} / "
                     f"{z['hot_p99'] * 1e3:.1f} | {z['cold_p50'] * 1e3:.1f} / {z['cold_p99'] * 1e3:.1f} | "
                     f"{z['rps']:.0f} | {z['errors']} |")
    lines += ["", "Loads include the warm-up's. A cold request costs a model load (read, sha256, vocabulary, "
              "onnxruntime session) plus the wait behind other loads (one loader thread). How many models the budget "
              "holds depends on the memory charged to each (the RSS growth measured at its load, at least its ONNX "
              "bytes: noisier under traffic than the table above); the share of cold requests follows from it and "
              "from the Zipf spread, not from the server. Hot requests slow down while loads run: onnxruntime "
              "holds the GIL while it builds a session (about 10 ms here, longer for bigger models), so the event "
              "loop waits that long (the load itself runs in the loader thread, not on the loop).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.density", description=__doc__.split("\n")[0])
    ap.add_argument("--models-dir", type=Path, default=Path("models"))
    ap.add_argument("--copies", type=int, default=30, help="copies per export loaded in one process")
    ap.add_argument("--registered", type=int, default=1000, help="models registered in the Zipf run")
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--fraction", type=float, default=0.1, help="share of the registered models the budget holds")
    ap.add_argument("--zipf-variants", default="full,int8,lowrank,lowrank+int8")
    ap.add_argument("--out", type=Path, default=Path("docs/density.md"))
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="after", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.mode)))
        return 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="slimtext-density-") as tmp_name:
        tmp = Path(tmp_name)
        srcs = {v: args.models_dir / n for v, n in VARIANTS.items() if v != "lowrank+int8"}
        srcs["lowrank+int8"] = make_lowrank_int8(srcs["lowrank"], tmp / "src" / VARIANTS["lowrank+int8"])
        onnx = {v: (s / "model.onnx").stat().st_size for v, s in srcs.items()}
        rows: dict[str, dict] = {}
        for v, src in srcs.items():
            rows[v] = {mode: measure_density(src, tmp, args.copies, mode) for mode in ("before", "compact", "after")}
            a = rows[v]["after"]
            print(f"{v}: {fmt_mb(rows[v]['before']['per_model'])} -> {fmt_mb(a['per_model'])} MB/model, "
                  f"{a['per_gib']} per GiB, load p50 {a['load_p50'] * 1e3:.1f} ms", flush=True)
        zipf = {}
        for v in [x for x in args.zipf_variants.split(",") if x]:
            charge = max(rows[v]["after"]["per_model"], onnx[v])
            budget_mb = args.fraction * args.registered * charge / (1 << 20)
            zipf[v] = {**zipf_run(srcs[v], tmp, args.registered, args.requests, budget_mb, charge, args.clients),
                       "budget_mb": budget_mb}
            z = zipf[v]
            print(f"zipf {v}: p50 {z['p50'] * 1e3:.2f} ms p99 {z['p99'] * 1e3:.1f} ms, cold {z['cold']}, "
                  f"loads {z['loads']:.0f}, errors {z['errors']}", flush=True)
    text = render(rows, zipf, args, onnx, time.perf_counter() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
