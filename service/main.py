"""The app factory. Run: python -m service (or uvicorn --factory service.main:create_app)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import docs as offline_docs
from service import errors, protocol
from service.admission import Admission
from service.auth import ApiKeys, AuthGuard
from service.classify import Classifier
from service.config import Settings
from service.fastpath import ClassifyFastPath
from service.metrics import Metrics
from service.registry import ModelRegistry
from service.routes import classify, health, metrics, models, ui, v2
from slimtext import __version__


async def start_grpc(get_classifier, settings: Settings, guard: AuthGuard, admission: Admission):
    from service import grpc_server  # grpcio is imported only when the gRPC port is on

    return await grpc_server.start(get_classifier, settings.grpc_host, settings.grpc_port, settings.max_body_bytes,
                                   guard, admission, settings.grpc_max_streams)


def create_app(settings: Settings | None = None) -> Admission:
    """The FastAPI app wrapped by the /classify fast path, the API-key check (when keys are set) and admission
    control (ASGI apps; each wrapper's `.app` is the one inside, the innermost is FastAPI)."""
    settings = settings or Settings()  # reads SLIMTEXT_* now: a bad value fails before serving
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        registry = await asyncio.to_thread(  # blocking file reads and onnxruntime loads: off the event loop
            ModelRegistry.load, settings.models_dir, settings.default_model, settings.intra_op_threads,
            settings.strict, settings.file_limits, settings.memory_budget_bytes, settings.pinned_models,
            settings.ort_cpu_arena)
        for m in registry.models.values():
            app.state.metrics.describe_loaded(m)
        registry.on_loaded = app.state.metrics.describe_loaded
        app.state.metrics.add_figures(registry.FIGURES, registry.figures)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):  # SIGHUP: rescan the folder
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(registry.rescan("SIGHUP")))
        app.state.classifier = Classifier(settings, registry, app.state.metrics)
        admission.offloader = app.state.classifier.offloader
        app.state.metrics.start()
        grpc = None
        if settings.grpc_port:
            grpc = await start_grpc(lambda: app.state.classifier, settings, guard, admission)
        yield
        if grpc is not None:
            await grpc.stop(grace=5)
        await app.state.metrics.stop()
        app.state.classifier.offloader.close()
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
            loop.remove_signal_handler(signal.SIGHUP)
        registry.close()
        app.state.classifier = None

    docs = settings.enable_docs  # off by default: production exposes no schema or docs UI
    app = FastAPI(title="slimtext", version=__version__, lifespan=lifespan,
                  description="Text classification with low-rank compressed embeddings, served by onnxruntime.",
                  docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None,
                  openapi_url="/openapi.json" if docs else None)
    app.state.metrics = Metrics(settings.metrics_dir, settings.metrics_flush_s)
    app.state.classifier = None
    errors.install(app)
    for module in (classify, models, health, v2, metrics):
        app.include_router(module.router)
    if settings.enable_bench:
        app.include_router(metrics.bench_router)
    app.include_router(ui.router)  # GET /stats: the data of the model page (needs a key like /models)
    app.include_router(ui.page_router)  # GET / (the model page) and /static/*: public, no data in them
    offline_docs.install(app)  # /docs, /redoc with Swagger UI / ReDoc from the installed package; no-op when off
    protocol.configure(protocol.Limits(settings.header_max_bytes, settings.header_timeout_s,
                                       settings.body_timeout_s, settings.drain_idle_s, settings.max_body_bytes))
    guard = AuthGuard(settings.api_keys, settings.admin_keys, docs_public=docs, metrics_public=settings.metrics_public)
    # the edges, outermost first: admission control (body caps, in-flight slots), API keys (when set), the
    # /classify fast path, FastAPI
    inner = ClassifyFastPath(app)
    admission = Admission(ApiKeys(inner, guard) if guard.active else inner, settings.max_in_flight,
                          settings.max_body_bytes_in_flight, settings.retry_after_s, settings.max_body_bytes,
                          settings.max_control_body_bytes)
    app.state.metrics.add_figures(admission.FIGURES, admission.figures)
    return admission
