"""The app factory. Run: python -m service (or uvicorn --factory service.main:create_app)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from service import docs as offline_docs
from service import errors
from service.admission import Admission
from service.auth import ApiKeys, AuthGuard
from service.classify import Classifier
from service.config import Settings
from service.edges import Edge, Endpoints, compose
from service.metrics import Metrics
from service.offload import Offloader
from service.protocol import LIMITS_STATE, Limits
from service.registry import ModelRegistry, RegistryConfig
from service.routes import classify, health, models, ui, v2
from service.routes import metrics as metrics_routes
from slimtext import __version__


async def start_grpc(get_classifier, settings: Settings, guard: AuthGuard, admission: Admission):
    from service import grpc_server  # grpcio is imported only when the gRPC port is on

    return await grpc_server.start(get_classifier, settings.grpc_host, settings.grpc_port, settings.max_body_bytes,
                                   guard, admission, settings.grpc_max_streams)


def create_app(settings: Settings | None = None):
    """FastAPI behind the edges declared below (ASGI apps; each wrapper's `.app` is the one inside, the
    innermost is FastAPI). Everything is built here; the lifespan only loads the models and starts the
    background parts."""
    settings = settings or Settings()  # reads SLIMTEXT_* now: a bad value fails before serving
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    metrics = Metrics(settings.metrics_dir, settings.metrics_flush_s)
    offloader = Offloader(settings.offload_queue, switch_interval_s=settings.gil_switch_interval_us / 1e6)
    guard = AuthGuard(settings.api_keys, settings.admin_keys, docs_public=settings.enable_docs,
                      metrics_public=settings.metrics_public)
    limits = Limits(settings.header_max_bytes, settings.header_timeout_s, settings.body_timeout_s,
                    settings.drain_idle_s, settings.max_body_bytes)
    admission: Admission | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        registry = await asyncio.to_thread(  # blocking file reads and onnxruntime loads: off the event loop
            ModelRegistry.load, RegistryConfig.from_settings(settings), metrics.describe_loaded)
        metrics.add_figures(registry.FIGURES, registry.figures)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):  # SIGHUP: rescan the folder
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(registry.rescan("SIGHUP")))
        app.state.classifier = Classifier(settings, registry, metrics, offloader)  # from now on: ready
        metrics.start()
        grpc = await start_grpc(lambda: app.state.classifier, settings, guard, admission) \
            if settings.grpc_port else None
        yield {LIMITS_STATE: limits}  # read by each connection's protocol (service/protocol.py)
        if grpc is not None:
            await grpc.stop(grace=5)
        await metrics.stop()
        offloader.close()
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
            loop.remove_signal_handler(signal.SIGHUP)
        registry.close()
        app.state.classifier = None

    docs = settings.enable_docs  # off by default: production exposes no schema or docs UI
    app = FastAPI(title="slimtext", version=__version__, lifespan=lifespan,
                  description="Text classification with low-rank compressed embeddings, served by onnxruntime.",
                  docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None,
                  openapi_url="/openapi.json" if docs else None)
    app.state.metrics, app.state.classifier = metrics, None
    errors.install(app)
    for module in (models, health, v2, metrics_routes):
        app.include_router(module.router)
    if settings.enable_bench:
        app.include_router(metrics_routes.bench_router)
    app.include_router(ui.router)  # GET /stats: the data of the model page (needs a key like /models)
    app.include_router(ui.page_router)  # GET / (the model page) and /static/*: public, no data in them
    app.openapi = lambda: _openapi(app)
    offline_docs.install(app)  # /docs, /redoc with Swagger UI / ReDoc from the installed package; no-op when off

    def make_admission(inner) -> Admission:
        nonlocal admission
        admission = Admission(inner, settings.max_in_flight, settings.max_body_bytes_in_flight,
                              settings.retry_after_s, settings.max_body_bytes, settings.max_control_body_bytes,
                              offloader)
        metrics.add_figures(admission.FIGURES, admission.figures)
        return admission

    edges: list[Edge] = [  # outermost first
        make_admission,  # body caps per route, POSTs and body bytes in flight (503 beyond), before a byte is read
        *([lambda inner: ApiKeys(inner, guard)] if guard.active else []),  # 401/403 before any route
        lambda inner: Endpoints(inner, {  # raw ASGI endpoints, served without FastAPI's layers
            ("POST", classify.PATH): classify.ClassifyEndpoint(lambda: app.state.classifier),
            **({("POST", metrics_routes.RAW_PATH): metrics_routes.raw_constant} if settings.enable_bench else {})}),
    ]
    return compose(edges, app)


def _openapi(app: FastAPI) -> dict:
    """FastAPI's schema plus the raw endpoints' declared routes (POST /classify)."""
    if app.openapi_schema is None:
        app.openapi_schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                         routes=[*classify.doc_router.routes, *app.routes])
    return app.openapi_schema
