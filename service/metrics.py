"""Prometheus metrics, one registry per app (so several apps in one process never collide).

Per model and stage latency histograms use buckets from 25 us to 2.5 s: the model's own work is
tens of microseconds, so the default buckets (5 ms and up) would put everything in the first one.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: N811 - re-exported name
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest

LATENCY_BUCKETS = (25e-6, 50e-6, 100e-6, 200e-6, 350e-6, 500e-6, 750e-6, 1e-3, 1.5e-3, 2.5e-3, 5e-3, 1e-2,
                   2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
STAGES = ("tokenize", "inference", "total")


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        ProcessCollector(registry=r)  # process_resident_memory_bytes, process_cpu_seconds_total, ...
        self.requests = Counter("slimtext_requests_total", "Classification requests by model, endpoint and status",
                                ["model", "endpoint", "status"], registry=r)
        self.latency = Histogram("slimtext_stage_seconds", "Time per request stage", ["model", "stage"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("slimtext_batch_texts", "Texts per onnxruntime run", ["model"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.in_flight = Gauge("slimtext_in_flight_requests", "Classification requests being served", registry=r)
        self.model_bytes = Gauge("slimtext_model_onnx_bytes", "ONNX file size", ["model", "kind"], registry=r)
        self.model_params = Gauge("slimtext_model_parameters", "Parameters in the ONNX file", ["model"], registry=r)
        self.model_compression = Gauge("slimtext_model_embedding_compression",
                                       "1 - embedding bytes / full |V|xd float32 bytes", ["model"], registry=r)
        self.model_rss = Gauge("slimtext_model_load_rss_bytes", "Process RSS growth while loading the model",
                               ["model"], registry=r)
        self._children: dict[tuple, object] = {}

    def describe_model(self, name: str, kind: str, onnx_bytes: int, params: int, compression: float,
                       rss_growth: int) -> None:
        self.model_bytes.labels(name, kind).set(onnx_bytes)
        self.model_params.labels(name).set(params)
        self.model_compression.labels(name).set(compression)
        self.model_rss.labels(name).set(rss_growth)

    def _child(self, metric, *labels: str):
        """`.labels()` takes a lock and builds a key on every call: cache the labelled children."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_stages(self, model: str, tokenize: float, inference: float, total: float) -> None:
        self._child(self.latency, model, "tokenize").observe(tokenize)
        self._child(self.latency, model, "inference").observe(inference)
        self._child(self.latency, model, "total").observe(total)

    def count(self, model: str, endpoint: str, status: int) -> None:
        self._child(self.requests, model, endpoint, str(status)).inc()

    def observe_batch(self, model: str, texts: int) -> None:
        self._child(self.batch_size, model).observe(texts)

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["Metrics", "CONTENT_TYPE", "STAGES"]
