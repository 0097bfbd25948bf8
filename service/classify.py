"""The classification core, free of any transport: texts in, a typed `Classification` out.

`/classify`, `/v2` REST and gRPC are adapters around it (service/routes/classify.py, service/routes/v2.py,
service/grpc_server.py): each parses its own wire format into a `Texts`, calls `Classifier.classify`, and
renders the result or the typed error (service/domain.py) with its own table. Limits, model lookup, the
worker thread, micro-batching and the per-stage metrics live here, once.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from service.batching import MicroBatcher
from service.config import Settings
from service.domain import (
    BadInput,
    Classification,
    DomainError,
    Overloaded,
    Timing,
    TooLarge,
    Unsupported,
    too_many_texts,
)
from service.metrics import Metrics
from service.offload import Offloader, QueueFull, Watch
from service.registry import LoadedModel, ModelRegistry

JSON = "application/json"
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, eq=False)
class Texts:
    """What every transport hands the core: the texts and the model (None: the default) and version."""

    texts: list[str]
    model: str | None = None
    version: str | None = None


def parse_json(schema: type[M], body: bytes, content_type: str = JSON) -> M:
    """A JSON body validated by pydantic-core straight from bytes; BadInput (with pydantic's first errors)."""
    if not content_type.startswith(JSON):
        raise Unsupported(f"content type {content_type[:100]!r}; send {JSON}")
    try:
        return schema.model_validate_json(body)
    except ValidationError as e:
        raise BadInput.from_validation(e) from e


class Classifier:
    """Holds what a request needs: settings, models, metrics and (optionally) one batcher per model."""

    def __init__(self, settings: Settings, registry: ModelRegistry, metrics: Metrics,
                 offloader: Offloader | None = None):
        self.settings, self.registry, self.metrics = settings, registry, metrics
        self.offloader = offloader or Offloader(settings.offload_queue,
                                                   switch_interval_s=settings.gil_switch_interval_us / 1e6)

    def check(self, texts: list[str]) -> None:
        """The per-request limits, before any work: TooLarge naming the limit."""
        limit = self.settings.max_texts
        if len(texts) > limit:
            raise too_many_texts(len(texts), limit)
        too_long = [i for i, t in enumerate(texts) if len(t) > self.settings.max_chars]
        if too_long:
            raise TooLarge(f"text(s) at index {too_long[:10]} over max_chars={self.settings.max_chars}",
                           code="text_too_long")

    async def model(self, name: str | None, version: str | None = None) -> LoadedModel:
        """The model a request names (loaded on first use); UnknownModel naming an unknown model or version."""
        return self.registry.get(name, version) or await self.registry.acquire(name, version)

    async def offload(self, job: Callable[[], T], watch: Watch | None = None) -> T:
        """`job()` in the worker thread (skipped if the client left meanwhile); Overloaded when its queue is full."""
        try:
            return await self.offloader.run(job, watch.start() if watch else None)
        except QueueFull as e:
            raise Overloaded("the worker queue is full; retry later") from e

    async def parse(self, job: Callable[[], T], size: int, watch: Watch | None = None) -> T:
        """A transport's parser: on the event loop for a small body, in the worker thread for a large one."""
        if size >= self.settings.offload_min_body_bytes:
            return await self.offload(job, watch)
        return job()

    async def classify(self, request: Texts, watch: Watch | None = None) -> Classification:
        """Check, look up the model, tokenize and run. Texts under both offload thresholds (fewer than
        `offload_min_texts`, fewer than `offload_min_chars` characters in all: at most about 2 ms of CPU,
        bench/loop_bound.py) run on the event loop, micro-batched when on; more run in the worker thread. A
        DomainError raised after the model is known carries its name in `.model` (the metrics' label)."""
        t0 = time.perf_counter()
        self.metrics.in_flight += 1
        name = "-"
        try:
            texts = request.texts
            self.check(texts)
            model, load_s = self.registry.get(request.model, request.version), 0.0
            if model is None:  # not loaded: wait for its load (Server-Timing then says how long)
                t_load = time.perf_counter()
                model = await self.registry.acquire(request.model, request.version)
                load_s = time.perf_counter() - t_load
            name = model.name
            if len(texts) >= self.settings.offload_min_texts or \
                    sum(map(len, texts)) >= self.settings.offload_min_chars:
                probs, lengths, t1, t2 = await self.offload(functools.partial(self._run, model, texts), watch)
            else:
                probs, lengths, t1, t2 = await self._run_async(model, texts)
        except DomainError as e:
            e.model = name
            raise
        finally:
            self.metrics.in_flight -= 1
        t3 = time.perf_counter()
        timing = Timing(load=load_s, tokenize=t2 - t1, inference=t3 - t2, total=t3 - t0)
        self.metrics.observe_stages(name, timing.tokenize, timing.inference, timing.total)
        return Classification(name, model.version, tuple(model.classifier.labels), probs, lengths, timing)

    def count(self, model: str, endpoint: str, status: int) -> None:
        self.metrics.count(model, endpoint, status)

    # --- running (worker thread or event loop) -----------------------------------------------------
    def _run(self, model: LoadedModel, texts: list[str]) -> tuple[np.ndarray, np.ndarray, float, float]:
        """Tokenize and run in one go (the worker thread; no micro-batching here)."""
        t1 = time.perf_counter()
        if model.classifier.takes_text:  # a string-only folder (model.text.onnx): it tokenizes inside its graph
            return (*self._text_graph(model, texts), t1, t1)
        ids, lengths = model.classifier.tokenizer.encode_batch(texts)
        t2 = time.perf_counter()
        self.metrics.observe_batch(model.name, len(lengths))
        return model.classifier.probabilities(ids, lengths), lengths, t1, t2

    async def _run_async(self, model: LoadedModel, texts: list[str]) -> tuple[np.ndarray, np.ndarray, float, float]:
        t1 = time.perf_counter()
        if model.classifier.takes_text:
            return (*self._text_graph(model, texts), t1, t1)
        ids, lengths = model.classifier.tokenizer.encode_batch(texts)
        t2 = time.perf_counter()
        return await self._probabilities(model, ids, lengths), lengths, t1, t2

    def _text_graph(self, model: LoadedModel, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Strings in, probabilities out, in one onnxruntime call (no micro-batching: no token ids to pad)."""
        pred = model.classifier.predict(texts)
        self.metrics.observe_batch(model.name, len(pred.lengths))
        return pred.probs, pred.lengths

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


def server_timing(timing: Timing) -> str:
    """The Server-Timing header of a classification (HTTP transports)."""
    value = (f"tokenize;dur={timing.tokenize * 1e3:.3f}, inference;dur={timing.inference * 1e3:.3f}, "
             f"total;dur={timing.total * 1e3:.3f}")
    if timing.load:  # the request waited for its model to load (first use, or after an eviction)
        value = f"load;dur={timing.load * 1e3:.3f}, {value}"
    return value
