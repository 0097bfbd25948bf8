"""Dependencies: the classifier (settings, registry, metrics) lives on app.state, set by the lifespan."""

from __future__ import annotations

from fastapi import Request

from service.classify import Classifier
from service.errors import ApiError
from service.registry import ModelRegistry


def get_classifier(request: Request) -> Classifier:
    classifier = getattr(request.app.state, "classifier", None)
    if classifier is None:
        raise ApiError(503, "not_ready", "models are still loading")
    return classifier


def get_registry(request: Request) -> ModelRegistry:
    return get_classifier(request).registry
