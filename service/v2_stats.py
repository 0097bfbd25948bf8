"""What the Open Inference Protocol reports about a model, for REST and gRPC alike: its metadata
(`GET /v2/models/{name}`, gRPC ModelMetadata) and its statistics in the shape Triton reports them
(`GET /v2/models/{name}/stats`, gRPC ModelStatistics).

Read from the counters the service already keeps (service/metrics.py), so nothing is added to the hot
path: every successful request (any endpoint) is one `success`, its tokenizing is `compute_input`, the
onnxruntime run `compute_infer` and the rest (parsing, writing the reply) `compute_output`; `fail` counts
the requests that named the model and got an error. Durations are cumulative nanoseconds.
"""

from __future__ import annotations

from service.metrics import Metrics
from service.registry import LoadedModel, ModelRegistry


def model_metadata(registry: ModelRegistry, model: LoadedModel) -> dict:
    """name, versions, platform and the tensors: `text` (BYTES [N]) in; `label` and `probabilities` out."""
    entry = registry.entries.get(model.name)
    versions = sorted(entry.versions, key=int) if entry is not None else [model.version]
    return {"name": model.name, "versions": versions, "platform": "onnxruntime_onnx",
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
            "outputs": [{"name": "label", "datatype": "BYTES", "shape": [-1]},
                        {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(model.classifier.labels)]}]}


def _duration(count: int, seconds: float) -> dict:
    return {"count": count, "ns": int(seconds * 1e9)}


def model_stats(metrics: Metrics, name: str) -> dict:
    lat = metrics.latency
    total, tok, inf = (lat.get((name, stage)) for stage in ("total", "tokenize", "inference"))
    n = sum(total.counts) if total else 0
    total_s, tok_s, inf_s = (h.sum if h else 0.0 for h in (total, tok, inf))
    fails = sum(c for (model, _, status), c in list(metrics.requests.items()) if model == name and status != "200")
    batches = metrics.batches.get(name)
    return {
        "name": name, "version": "1", "last_inference": 0,
        "inference_count": int(batches.sum) if batches else 0,
        "execution_count": sum(batches.counts) if batches else 0,
        "inference_stats": {
            "success": _duration(n, total_s),
            "fail": _duration(fails, 0.0),
            "queue": _duration(n, 0.0),
            "compute_input": _duration(n, tok_s),
            "compute_infer": _duration(n, inf_s),
            "compute_output": _duration(n, max(total_s - tok_s - inf_s, 0.0)),
            "cache_hit": _duration(0, 0.0),
            "cache_miss": _duration(0, 0.0),
        },
        "batch_stats": [],
    }
