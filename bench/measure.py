"""The measurements behind `python -m bench.compare`, one function per column group."""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from bench.server import ROOT
from slimtext.manifest import MODEL_FILE
from slimtext.runtime import OnnxClassifier


def onnx_bytes(folder: Path) -> int:
    """The model file plus any external-data file next to it."""
    return sum(p.stat().st_size for p in folder.glob(f"{MODEL_FILE}*") if p.is_file())


@dataclass
class RssGrowth:
    first: int  # growth at the first load in a fresh process
    marginal: int  # growth when a second copy is loaded into the same process
    first_range: tuple[int, int] = (0, 0)  # min and max of `first` over the fresh processes (run-to-run spread)


def rss_growth(folder: Path, repeats: int) -> RssGrowth:
    """Median RSS growths over `repeats` runs of bench.rss_probe, each in a fresh interpreter."""
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-m", "bench.rss_probe", str(folder)], cwd=ROOT, check=True,
                             capture_output=True, text=True, timeout=120).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    growths = [r["growth"] for r in runs]
    return RssGrowth(int(statistics.median(growths)), int(statistics.median(r["marginal"] for r in runs)),
                     (min(growths), max(growths)))


@dataclass
class Latency:
    p50: float
    p99: float
    p50_range: tuple[float, float] | None = None  # min and max of the per-round p50s (run-to-run spread)

    @classmethod
    def of(cls, seconds: Sequence[float], scale: float, rounds: Sequence[Sequence[float]] = ()) -> Latency:
        a = np.asarray(seconds) * scale
        per_round = [float(np.percentile(np.asarray(r) * scale, 50)) for r in rounds if len(r)]
        spread = (min(per_round), max(per_round)) if per_round else None
        return cls(float(np.percentile(a, 50)), float(np.percentile(a, 99)), spread)


def ort_latency(classifiers: dict[str, OnnxClassifier], texts: Sequence[str], batch: int, iters: int,
                rounds: int = 5) -> dict[str, Latency]:
    """session.run latency in µs; models take turns in `rounds` so drift in CPU share hits all alike."""
    batches = [list(texts[i: i + batch]) for i in range(0, len(texts) - batch + 1, batch)]
    encoded = {name: [clf.tokenizer.encode_batch(b) for b in batches] for name, clf in classifiers.items()}
    times: dict[str, list[float]] = {name: [] for name in classifiers}
    by_round: dict[str, list[list[float]]] = {name: [] for name in classifiers}
    per_round = max(1, iters // rounds)
    for name, clf in classifiers.items():  # warm-up
        for ids, lengths in encoded[name][:20]:
            clf.logits(ids, lengths)
    for r in range(rounds):
        for name, clf in classifiers.items():
            inputs = encoded[name]
            by_round[name].append([])
            for i in range(per_round):
                ids, lengths = inputs[(r * per_round + i) % len(inputs)]
                t0 = time.perf_counter()
                clf.logits(ids, lengths)
                times[name].append(time.perf_counter() - t0)
                by_round[name][-1].append(times[name][-1])
    return {name: Latency.of(t, 1e6, by_round[name]) for name, t in times.items()}


@dataclass
class HttpResult:
    requests_per_s: float
    latency_ms: Latency
    failures: int
    rps_range: tuple[float, float] | None = None  # min and max of the per-round requests/s (run-to-run spread)


async def _http_round(client: httpx.AsyncClient, model: str, texts: Sequence[str], n: int, concurrency: int,
                      offset: int) -> tuple[list[float], float, int]:
    latencies: list[float] = []
    failures = 0
    counter = iter(range(n))

    async def worker() -> None:
        nonlocal failures
        for i in counter:
            body = {"texts": [texts[(offset + i) % len(texts)]], "model": model}
            t0 = time.perf_counter()
            r = await client.post("/classify", json=body)
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 200:
                failures += 1
                if failures == 1:
                    print(f"  {model}: HTTP {r.status_code}: {r.text[:300]}", file=sys.stderr)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - t0, failures


async def _http_all(url: str, models: Sequence[str], texts: Sequence[str], requests: int, concurrency: int,
                    rounds: int) -> dict[str, HttpResult]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    lat: dict[str, list[float]] = {m: [] for m in models}
    busy = dict.fromkeys(models, 0.0)
    fails = dict.fromkeys(models, 0)
    rps: dict[str, list[float]] = {m: [] for m in models}
    rounds_lat: dict[str, list[list[float]]] = {m: [] for m in models}
    per_round = max(concurrency, requests // rounds)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10.0) as client:
        for m in models:  # warm-up: connections, caches
            await _http_round(client, m, texts, 2 * concurrency, concurrency, 0)
        for r in range(rounds):
            for m in models:
                l_, elapsed, f = await _http_round(client, m, texts, per_round, concurrency, r * per_round)
                lat[m] += l_
                rounds_lat[m].append(l_)
                rps[m].append(len(l_) / elapsed)
                busy[m] += elapsed
                fails[m] += f
    return {m: HttpResult(len(lat[m]) / busy[m], Latency.of(lat[m], 1e3, rounds_lat[m]), fails[m],
                          (min(rps[m]), max(rps[m]))) for m in models}


def http_throughput(url: str, models: Sequence[str], texts: Sequence[str], requests: int, concurrency: int,
                    rounds: int = 4) -> dict[str, HttpResult]:
    """`requests` single-text POST /classify per model, `concurrency` in flight, models taking turns."""
    return asyncio.run(_http_all(url, models, texts, requests, concurrency, rounds))


def predictions(clf: OnnxClassifier, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    return np.concatenate([clf.predict(list(texts[i: i + batch_size])).probs.argmax(1)
                           for i in range(0, len(texts), batch_size)])
