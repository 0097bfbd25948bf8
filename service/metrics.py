"""Prometheus metrics for the service, rendered by prometheus-client at scrape time.

The hot path only bumps plain Python numbers: every update happens on the event loop's thread, so
no locks are needed, and an observation costs a bisect and two additions (about 0.3 us) instead of
prometheus-client's locked `.labels(...).observe()` (about 3 us). A collector turns them into
standard counter / histogram / gauge families when /metrics is scraped. One registry per app, so
several apps in one process never collide; the process collector adds resident memory and CPU.

With several uvicorn workers (`--workers N`) each process keeps its own numbers: `python -m service`
then sets SLIMTEXT_METRICS_DIR to a fresh folder (`prepare_multiprocess`), every worker writes a
snapshot of its numbers there once per `SLIMTEXT_METRICS_FLUSH_S` (and right before it answers a
scrape), and whichever worker answers /metrics sums every snapshot: counters and histograms over all
workers (those of a worker that has exited too, so totals never go back), in-flight requests over
live workers, plus each worker's resident memory. The hot path stays plain additions.

Latency buckets run from 25 us to 2.5 s: the model's own work is tens of microseconds, and the
default buckets (5 ms and up) would put everything into the first one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import orjson
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: N811 - re-exported name
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

LATENCY_BUCKETS = (25e-6, 50e-6, 100e-6, 200e-6, 350e-6, 500e-6, 750e-6, 1e-3, 1.5e-3, 2.5e-3, 5e-3, 1e-2,
                   2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
log = logging.getLogger("slimtext.requests")


class Histogram:
    """Counts per bucket (the last one is +Inf) and a running sum."""

    __slots__ = ("upper", "counts", "sum")

    def __init__(self, upper: tuple[float, ...]):
        self.upper = upper
        self.counts = [0] * (len(upper) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.upper, value)] += 1  # first bucket whose bound is >= value
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for bound, n in zip((*map(str, self.upper), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


class Metrics:
    def __init__(self, multiprocess_dir: Path | None = None, flush_s: float = 1.0) -> None:
        self.latency: dict[tuple[str, str], Histogram] = defaultdict(lambda: Histogram(LATENCY_BUCKETS))
        self.batches: dict[str, Histogram] = defaultdict(lambda: Histogram(BATCH_BUCKETS))
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.in_flight = 0
        self.client_aborts = 0
        self.models: dict[str, dict] = {}
        self.figure_sources: list[tuple[dict[str, tuple[str, str]], Callable[[], dict[str, float]]]] = []
        self.multiprocess_dir, self.flush_s = multiprocess_dir, flush_s
        self._flusher: asyncio.Task | None = None
        self.registry = CollectorRegistry()
        if multiprocess_dir is None:  # several workers: each one's memory is exported from the snapshots
            ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, process_cpu_seconds_total
        self.registry.register(self)

    # --- hot path ---------------------------------------------------------------------------
    def observe_stages(self, model: str, tokenize: float, inference: float, total: float) -> None:
        self.latency[(model, "tokenize")].observe(tokenize)
        self.latency[(model, "inference")].observe(inference)
        self.latency[(model, "total")].observe(total)

    def count(self, model: str, endpoint: str, status: int) -> None:
        self.requests[(model, endpoint, str(status))] += 1

    def observe_batch(self, model: str, texts: int) -> None:
        self.batches[model].observe(texts)

    def client_aborted(self, where: str) -> None:
        """A client hung up before its request body was read: counted, one INFO line, no traceback."""
        self.client_aborts += 1
        log.info("client closed the connection before its request was read (%s)", where)

    # --- at start-up ------------------------------------------------------------------------
    def describe_model(self, name: str, kind: str, onnx_bytes: int, params: int, compression: float,
                       rss_growth: int) -> None:
        self.models[name] = {"kind": kind, "onnx_bytes": onnx_bytes, "params": params,
                             "compression": compression, "rss": rss_growth}

    def describe_loaded(self, model) -> None:
        """A model (service.registry.LoadedModel) was loaded: its gauges, RSS growth measured at this load."""
        man = model.classifier.manifest
        self.describe_model(model.name, man.kind, man.onnx_bytes, man.params.total, man.embedding_compression,
                            model.rss_growth_bytes)

    def add_figures(self, spec: dict[str, tuple[str, str]], read: Callable[[], dict[str, float]]) -> None:
        """More numbers for /metrics, `spec` name -> ("counter" | "gauge", help): `read()` is taken into every
        snapshot, so with several workers they are summed like the rest (gauges over live workers only)."""
        self.figure_sources.append((spec, read))

    # --- several workers ----------------------------------------------------------------------
    def snapshot(self) -> dict:
        from service.memory import rss_bytes

        return {"pid": os.getpid(), "rss": rss_bytes(), "in_flight": self.in_flight, "aborts": self.client_aborts,
                "requests": [[*k, n] for k, n in list(self.requests.items())],
                "latency": [[*k, h.counts, h.sum] for k, h in list(self.latency.items())],
                "batches": [[k, h.counts, h.sum] for k, h in list(self.batches.items())],
                "figures": {k: v for _, read in self.figure_sources for k, v in read().items()}}

    def flush(self) -> None:
        """Write this worker's snapshot (atomically: a reader never sees half a file)."""
        if self.multiprocess_dir is None:
            return
        path = self.multiprocess_dir / f"worker-{os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(self.snapshot()))
        os.replace(tmp, path)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            try:
                self.flush()
            except OSError as e:  # a full or vanished folder must not stop serving
                log.warning("metrics snapshot not written: %s", e)

    def start(self) -> None:
        if self.multiprocess_dir is not None and self._flusher is None:
            self.flush()
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
            with contextlib.suppress(OSError):
                self.flush()

    def _snapshots(self) -> list[dict]:
        if self.multiprocess_dir is None:
            return [self.snapshot()]
        own = self.snapshot()
        with contextlib.suppress(OSError):
            self.flush()
        out = [own]
        for path in sorted(self.multiprocess_dir.glob("worker-*.json")):
            try:
                snap = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue
            if snap.get("pid") != own["pid"]:
                snap["live"] = _alive(snap.get("pid", 0))
                out.append(snap)
        return out

    # --- at scrape time ---------------------------------------------------------------------
    def collect(self):
        snaps = self._snapshots()
        requests_sum: dict[tuple, int] = defaultdict(int)
        latency_sum: dict[tuple, Histogram] = defaultdict(lambda: Histogram(LATENCY_BUCKETS))
        batches_sum: dict[str, Histogram] = defaultdict(lambda: Histogram(BATCH_BUCKETS))
        for snap in snaps:
            for *labels, n in snap["requests"]:
                requests_sum[tuple(labels)] += n
            for model, stage, counts, total in snap["latency"]:
                _add(latency_sum[(model, stage)], counts, total)
            for model, counts, total in snap["batches"]:
                _add(batches_sum[model], counts, total)
        requests = CounterMetricFamily("slimtext_requests", "Classification requests by model, endpoint and status",
                                       labels=["model", "endpoint", "status"])
        for labels, n in requests_sum.items():
            requests.add_metric(list(labels), n)
        yield requests
        latency = HistogramMetricFamily("slimtext_stage_seconds", "Time per request stage",
                                        labels=["model", "stage"])
        for labels, h in latency_sum.items():
            latency.add_metric(list(labels), h.cumulative(), h.sum)
        yield latency
        batches = HistogramMetricFamily("slimtext_batch_texts", "Texts per onnxruntime run", labels=["model"])
        for model, h in batches_sum.items():
            batches.add_metric([model], h.cumulative(), h.sum)
        yield batches
        live = [s for s in snaps if s.get("live", True)]
        yield GaugeMetricFamily("slimtext_in_flight_requests", "Classification requests being served",
                                value=sum(s["in_flight"] for s in live))
        yield CounterMetricFamily("slimtext_client_aborts", "Clients that closed the connection before their "
                                  "request body was read", value=sum(s.get("aborts", 0) for s in snaps))
        for spec, _ in self.figure_sources:
            for name, (kind, doc) in spec.items():
                counted = snaps if kind == "counter" else live
                family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                yield family(f"slimtext_{name}", doc, value=sum(s.get("figures", {}).get(name, 0) for s in counted))
        if self.multiprocess_dir is not None:
            yield GaugeMetricFamily("slimtext_workers", "Live worker processes whose numbers are summed here",
                                    value=len(live))
            rss = GaugeMetricFamily("slimtext_worker_resident_memory_bytes", "Resident memory per live worker",
                                    labels=["pid"])
            for s in live:
                rss.add_metric([str(s["pid"])], s["rss"])
            yield rss
        gauges = {
            "onnx_bytes": GaugeMetricFamily("slimtext_model_onnx_bytes", "ONNX file size", labels=["model", "kind"]),
            "params": GaugeMetricFamily("slimtext_model_parameters", "Parameters in the model", labels=["model"]),
            "compression": GaugeMetricFamily("slimtext_model_embedding_compression",
                                             "1 - embedding bytes / full |V|xd float32 bytes", labels=["model"]),
            "rss": GaugeMetricFamily("slimtext_model_load_rss_bytes", "Process RSS growth while loading the model",
                                     labels=["model"]),
        }
        for name, info in self.models.items():
            for key, family in gauges.items():
                family.add_metric([name, info["kind"]] if key == "onnx_bytes" else [name], info[key])
        yield from gauges.values()
    def render(self) -> bytes:
        return generate_latest(self.registry)


def _add(h: Histogram, counts: list[int], total: float) -> None:
    if len(counts) == len(h.counts):
        h.counts = [a + b for a, b in zip(h.counts, counts, strict=True)]
        h.sum += total


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


def worker_count(args: list[str]) -> int:
    """uvicorn's worker count from its command line (`--workers N`, `--workers=N`) or WEB_CONCURRENCY."""
    workers = os.environ.get("WEB_CONCURRENCY", "1")
    for i, arg in enumerate(args):
        if arg == "--workers" and i + 1 < len(args):
            workers = args[i + 1]
        elif arg.startswith("--workers="):
            workers = arg.split("=", 1)[1]
    return int(workers) if workers.isdigit() else 1


def prepare_multiprocess(args: list[str]) -> Path | None:
    """Called by `python -m service` before uvicorn starts: with `--workers N` (or WEB_CONCURRENCY) above 1,
    give the workers a shared folder for their metric snapshots through SLIMTEXT_METRICS_DIR (a fresh
    temporary one, removed at exit, unless that variable is already set; then stale snapshots in it are
    removed). Returns the folder, or None for one worker."""
    import atexit
    import shutil
    import tempfile

    if worker_count(args) <= 1:
        return None
    given = os.environ.get("SLIMTEXT_METRICS_DIR")
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("worker-*.json"):
            stale.unlink(missing_ok=True)
    else:
        folder = Path(tempfile.mkdtemp(prefix="slimtext-metrics-"))
        os.environ["SLIMTEXT_METRICS_DIR"] = str(folder)
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


__all__ = ["Metrics", "Histogram", "CONTENT_TYPE", "prepare_multiprocess"]
