"""Liveness (the process answers) and readiness (models are loaded)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.errors import ApiError

router = APIRouter(tags=["health"])


@router.get("/health/live", summary="The process is up")
async def live() -> dict:
    return {"status": "live"}


@router.get("/health/ready", summary="Models are loaded and requests will be served",
            responses={503: {"description": "not ready"}})
async def ready(request: Request) -> dict:
    classifier = getattr(request.app.state, "classifier", None)
    if classifier is None:
        raise ApiError(503, "not_ready", "models are not loaded")
    return {"status": "ready"}  # public: names no model (GET /models, with a key, lists them)
