"""Dependencies: the settings and the model registry live on app.state, set by the lifespan."""

from __future__ import annotations

from fastapi import Request

from service.config import Settings
from service.errors import ApiError
from service.registry import ModelRegistry


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_registry(request: Request) -> ModelRegistry:
    registry = getattr(request.app.state, "registry", None)
    if registry is None:
        raise ApiError(503, "not_ready", "models are still loading")
    return registry
