"""The app factory. Run: python -m service (or uvicorn --factory service.main:create_app)"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import errors
from service.classify import Classifier
from service.config import Settings
from service.fastpath import ClassifyFastPath
from service.metrics import Metrics
from service.registry import ModelRegistry
from service.routes import classify, health, metrics, models, v2


async def start_grpc(get_classifier, settings: Settings):
    from service import grpc_server  # grpcio is imported only when the gRPC port is on

    return await grpc_server.start(get_classifier, settings.grpc_host, settings.grpc_port, settings.max_body_bytes)


def create_app(settings: Settings | None = None) -> ClassifyFastPath:
    """The FastAPI app wrapped by the /classify fast path (an ASGI app; `.app` is the FastAPI one)."""
    settings = settings or Settings()  # reads SLIMTEXT_* now: a bad value fails before serving
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        registry = ModelRegistry.load(settings.models_dir, settings.default_model, settings.intra_op_threads,
                                      settings.strict)
        for m in registry.models.values():
            man = m.classifier.manifest
            app.state.metrics.describe_model(m.name, man.kind, man.onnx_bytes, man.params.total,
                                             man.embedding_compression, m.rss_growth_bytes)
        app.state.classifier = Classifier(settings, registry, app.state.metrics)
        grpc = await start_grpc(lambda: app.state.classifier, settings) if settings.grpc_port else None
        yield
        if grpc is not None:
            await grpc.stop(grace=5)
        app.state.classifier = None

    app = FastAPI(title="slimtext", version="0.1.0", lifespan=lifespan,
                  description="Text classification with low-rank compressed embeddings, served by onnxruntime.")
    app.state.metrics = Metrics()
    app.state.classifier = None
    errors.install(app)
    for module in (classify, models, health, v2, metrics):
        app.include_router(module.router)
    return ClassifyFastPath(app)
