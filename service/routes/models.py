"""GET /models and GET /models/{name}: manifests plus measured memory."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from service.auth import is_admin
from service.deps import get_registry
from service.errors import ApiError
from service.registry import LoadedModel, ModelRegistry
from service.schemas import ErrorResponse, ModelInfo, ModelsResponse
from slimtext.manifest import NAME_PATTERN

router = APIRouter(tags=["models"])
Registry = Annotated[ModelRegistry, Depends(get_registry)]


PRIVATE_FIELDS = {"training": {}, "versions": {}}  # training config/history and library versions


def _info(m: LoadedModel, registry: ModelRegistry, admin: bool) -> ModelInfo:
    """The public view leaves out the training config and history and the library versions; a caller
    with an admin key (SLIMTEXT_ADMIN_KEYS) gets the whole manifest."""
    manifest = m.classifier.manifest
    return ModelInfo(manifest=manifest if admin else manifest.model_copy(update=PRIVATE_FIELDS),
                     default=m.name == registry.default, rss_growth_bytes=m.rss_growth_bytes)


@router.get("/models", response_model=ModelsResponse, summary="Served models, sizes and memory")
async def list_models(request: Request, registry: Registry) -> ModelsResponse:
    admin = is_admin(request.scope)
    return ModelsResponse(default=registry.default, errors=registry.errors if admin else registry.public_errors(),
                          models=[_info(m, registry, admin) for m in registry.models.values()])


@router.get("/models/{name}", response_model=ModelInfo, responses={404: {"model": ErrorResponse}})
async def get_model(request: Request, name: Annotated[str, Path(pattern=NAME_PATTERN)],
                    registry: Registry) -> ModelInfo:
    model = registry.models.get(name)
    if model is None:
        raise ApiError(404, "unknown_model", f"no model named {name!r}")
    return _info(model, registry, is_admin(request.scope))
