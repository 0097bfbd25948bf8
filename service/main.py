"""The app factory. Run: uvicorn --factory service.main:create_app"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import errors
from service.config import Settings
from service.registry import ModelRegistry
from service.routes import classify, health, models


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # reads SLIMTEXT_* now: a bad value fails before serving

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.registry = ModelRegistry.load(settings.models_dir, settings.default_model,
                                                settings.intra_op_threads, settings.strict)
        yield
        app.state.registry = None

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = FastAPI(title="slimtext", version="0.1.0", lifespan=lifespan,
                  description="Text classification with low-rank compressed embeddings, served by onnxruntime.")
    app.state.settings = settings
    app.state.registry = None
    errors.install(app)
    for module in (classify, models, health):
        app.include_router(module.router)
    return app
