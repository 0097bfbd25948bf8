"""GET /models and GET /models/{name}: manifests plus measured memory."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from service.deps import get_registry
from service.errors import ApiError
from service.registry import LoadedModel, ModelRegistry
from service.schemas import ErrorResponse, ModelInfo, ModelsResponse
from slimtext.manifest import NAME_PATTERN

router = APIRouter(tags=["models"])
Registry = Annotated[ModelRegistry, Depends(get_registry)]


def _info(m: LoadedModel, registry: ModelRegistry) -> ModelInfo:
    return ModelInfo(manifest=m.classifier.manifest, default=m.name == registry.default,
                     rss_growth_bytes=m.rss_growth_bytes)


@router.get("/models", response_model=ModelsResponse, summary="Served models, sizes and memory")
async def list_models(registry: Registry) -> ModelsResponse:
    return ModelsResponse(default=registry.default, errors=registry.errors,
                          models=[_info(m, registry) for m in registry.models.values()])


@router.get("/models/{name}", response_model=ModelInfo, responses={404: {"model": ErrorResponse}})
async def get_model(name: Annotated[str, Path(pattern=NAME_PATTERN)], registry: Registry) -> ModelInfo:
    model = registry.models.get(name)
    if model is None:
        raise ApiError(404, "unknown_model", f"no model named {name!r}")
    return _info(model, registry)
