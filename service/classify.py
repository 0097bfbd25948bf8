"""The classification core, free of any web framework: bytes in, (status, bytes, headers) out.

Both the pure-ASGI fast path (service/fastpath.py) and the FastAPI routes call it, so the two
cannot drift apart. The body is parsed by pydantic-core straight from bytes and the reply written
with orjson, skipping FastAPI's jsonable_encoder (about 0.5 ms for a 32-text reply).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import orjson
from pydantic import BaseModel, ValidationError

from service.batching import MicroBatcher
from service.config import Settings
from service.errors import ApiError, error_body, validation_details, validation_message
from service.metrics import Metrics
from service.offload import Offloader, QueueFull, Watch
from service.registry import LoadedModel, ModelRegistry
from service.schemas import ClassifyRequest, V2InferRequest

JSON = "application/json"


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def build_predictions(probs: np.ndarray, lengths: np.ndarray, labels: list[str], top_k: int | None) -> list[dict]:
    rows = probs.tolist()
    order = np.argsort(-probs, axis=1)[:, : min(top_k, len(labels))].tolist() if top_k else None
    out = []
    for i, (row, n) in enumerate(zip(rows, lengths.tolist(), strict=True)):
        b = row.index(max(row))
        pred = {"label": labels[b], "score": row[b], "probabilities": dict(zip(labels, row, strict=True)),
                "n_tokens": n}
        if order is not None:
            pred["top_k"] = [{"label": labels[j], "score": row[j]} for j in order[i]]
        out.append(pred)
    return out


def v2_response(req: V2InferRequest, model: LoadedModel, probs: np.ndarray) -> dict:
    """KServe Open Inference Protocol v2 outputs: `label` (BYTES, [N]) and `probabilities` (FP32, [N, C])."""
    labels = model.classifier.labels
    outputs = {
        "label": {"name": "label", "shape": [len(probs)], "datatype": "BYTES",
                  "data": [labels[i] for i in probs.argmax(1).tolist()]},
        "probabilities": {"name": "probabilities", "shape": list(probs.shape), "datatype": "FP32",
                          "data": probs.ravel().tolist()},
    }
    wanted = [o.name for o in req.outputs] if req.outputs else list(outputs)  # names checked by the schema
    body = {"model_name": model.name, "model_version": model.version, "outputs": [outputs[w] for w in wanted]}
    if req.id is not None:
        body["id"] = req.id
    return body


class Classifier:
    """Holds what a request needs: settings, models, metrics and (optionally) one batcher per model."""

    def __init__(self, settings: Settings, registry: ModelRegistry, metrics: Metrics):
        self.settings, self.registry, self.metrics = settings, registry, metrics
        self.offloader = Offloader(settings.offload_queue)

    # --- entry points ----------------------------------------------------------------------
    async def classify(self, content_type: str, body: bytes, watch: Watch | None = None) -> Reply:
        def render(req: ClassifyRequest, model: LoadedModel, probs: np.ndarray, lengths: np.ndarray) -> dict:
            labels = model.classifier.labels
            return {"model": model.name, "version": model.version,
                    "predictions": build_predictions(probs, lengths, labels, req.top_k)}

        return await self._serve("classify", content_type, body, ClassifyRequest, None, render, watch)

    async def v2_infer(self, model_name: str, content_type: str, body: bytes,
                       watch: Watch | None = None, version: str | None = None) -> Reply:
        def render(req: V2InferRequest, model: LoadedModel, probs: np.ndarray, lengths: np.ndarray) -> dict:
            return v2_response(req, model, probs)

        return await self._serve("v2", content_type, body, V2InferRequest, model_name, render, watch, version)

    # --- shared path -----------------------------------------------------------------------
    async def _serve(self, endpoint: str, content_type: str, body: bytes, schema: type[BaseModel],
                     model_name: str | None, render: Callable, watch: Watch | None = None,
                     version: str | None = None) -> Reply:
        """Small requests run on the event loop (tens of microseconds); a large body is parsed, tokenized
        and run in the worker thread, a request of many texts is tokenized and run there. The model is
        looked up on the event loop (a model not loaded yet is loaded in the registry's loader thread)."""
        t0 = time.perf_counter()
        label = "-"  # metric label: a served model's name only, so unknown names add no series
        self.metrics.in_flight += 1
        try:
            big = len(body) >= self.settings.offload_min_body_bytes
            if big:
                req = await self.offloader.run(functools.partial(self._parse, content_type, body, schema),
                                               watch.start() if watch else None)
            else:
                req = self._parse(content_type, body, schema)
            if model_name is None:
                model_name, version = req.model, req.version
            model, load_s = self.registry.get(model_name, version), 0.0
            if model is None:  # not loaded: wait for its load (Server-Timing then says how long)
                t_load = time.perf_counter()
                model = await self.registry.acquire(model_name, version)
                load_s = time.perf_counter() - t_load
            label = model.name
            if big or len(req.all_texts()) >= self.settings.offload_min_texts:
                reply = await self.offloader.run(functools.partial(self._compute, req, model, render, t0, load_s),
                                                 watch.start() if watch else None)
            else:
                reply = await self._compute_async(req, model, render, t0, load_s)
        except ApiError as e:
            reply = Reply(e.status, error_body(e.error, e.message, e.details))
        except QueueFull:
            reply = Reply(503, error_body("overloaded", "the worker queue is full; retry later"),
                          {"retry-after": str(self.settings.retry_after_s)})
        finally:
            self.metrics.in_flight -= 1
        self.metrics.count(label, endpoint, reply.status)
        return reply

    def _compute(self, req, model: LoadedModel, render: Callable, t0: float, load_s: float = 0.0) -> Reply:
        """Tokenize, run and render in one go (in the worker thread); no micro-batching here."""
        t1 = time.perf_counter()
        if model.classifier.takes_text:  # a string-only folder (model.text.onnx): it tokenizes inside its graph
            return self._text_graph(req, model, render, t0, t1, load_s)
        ids, lengths = model.classifier.tokenizer.encode_batch(req.all_texts())
        t2 = time.perf_counter()
        self.metrics.observe_batch(model.name, len(lengths))
        probs = model.classifier.probabilities(ids, lengths)
        return self._finish(req, model, render, probs, lengths, t0, t1, t2, load_s)

    async def _compute_async(self, req, model: LoadedModel, render: Callable, t0: float,
                             load_s: float = 0.0) -> Reply:
        t1 = time.perf_counter()
        if model.classifier.takes_text:
            return self._text_graph(req, model, render, t0, t1, load_s)
        ids, lengths = model.classifier.tokenizer.encode_batch(req.all_texts())
        t2 = time.perf_counter()
        probs = await self._probabilities(model, ids, lengths)
        return self._finish(req, model, render, probs, lengths, t0, t1, t2, load_s)

    def _text_graph(self, req, model: LoadedModel, render: Callable, t0: float, t1: float, load_s: float) -> Reply:
        """Strings in, probabilities out, in one onnxruntime call (no micro-batching: no token ids to pad)."""
        pred = model.classifier.predict(req.all_texts())
        self.metrics.observe_batch(model.name, len(pred.lengths))
        return self._finish(req, model, render, pred.probs, pred.lengths, t0, t1, t1, load_s)

    def _finish(self, req, model: LoadedModel, render: Callable, probs: np.ndarray, lengths: np.ndarray,
                t0: float, t1: float, t2: float, load_s: float = 0.0) -> Reply:
        t3 = time.perf_counter()
        out = orjson.dumps(render(req, model, probs, lengths))
        total = time.perf_counter() - t0
        self.metrics.observe_stages(model.name, t2 - t1, t3 - t2, total)
        timing = (f"tokenize;dur={(t2 - t1) * 1e3:.3f}, inference;dur={(t3 - t2) * 1e3:.3f}, "
                  f"total;dur={total * 1e3:.3f}")
        if load_s:  # the request waited for its model to load (first use, or after an eviction)
            timing = f"load;dur={load_s * 1e3:.3f}, {timing}"
        return Reply(200, out, {"server-timing": timing})

    def _parse(self, content_type: str, body: bytes, schema: type[BaseModel]):
        if not content_type.startswith(JSON):
            raise ApiError(415, "unsupported_media_type", f"content type {content_type!r}; send {JSON}")
        try:
            req = schema.model_validate_json(body)
        except ValidationError as e:
            raise ApiError(422, "invalid_request", validation_message(e.error_count()),
                           validation_details(e.errors(include_input=False, include_url=False))) from e
        texts = req.all_texts()
        limit = self.settings.max_texts
        if len(texts) > limit:
            raise ApiError(413, "too_many_texts", f"{len(texts)} texts; the limit is max_texts={limit}")
        too_long = [i for i, t in enumerate(texts) if len(t) > self.settings.max_chars]
        if too_long:
            raise ApiError(413, "text_too_long",
                           f"text(s) at index {too_long[:10]} over max_chars={self.settings.max_chars}")
        return req

    async def model(self, name: str | None, version: str | None = None) -> LoadedModel:
        """The model a request names (loaded on first use); ApiError 404 naming an unknown model or version."""
        return self.registry.get(name, version) or await self.registry.acquire(name, version)

    async def _probabilities(self, model: LoadedModel, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        if self.settings.batching and len(lengths) < self.settings.batch_max_texts:
            if model.batcher is None:  # one per loaded model object: a swapped-in version gets its own
                model.batcher = MicroBatcher(
                    model.classifier.probabilities, self.settings.batch_max_texts,
                    self.settings.batch_max_wait_us / 1e6,
                    on_batch=functools.partial(self.metrics.observe_batch, model.name))
            return await model.batcher.submit(ids, lengths)
        self.metrics.observe_batch(model.name, len(lengths))
        return model.classifier.probabilities(ids, lengths)
