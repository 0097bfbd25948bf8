"""GET /models and GET /models/{name}: manifests plus measured memory."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from service.auth import is_admin
from service.deps import get_registry
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
    entry = registry.entries.get(m.name)
    slot = entry.versions.get(m.version) if entry is not None else None
    return ModelInfo(manifest=manifest if admin else manifest.model_copy(update=PRIVATE_FIELDS),
                     default=m.name == registry.default, rss_growth_bytes=m.rss_growth_bytes, version=m.version,
                     memory_bytes=slot.memory_bytes if slot is not None else m.rss_growth_bytes,
                     pinned=entry is not None and (entry.pinned or m.name == registry.default))


@router.get("/models", response_model=ModelsResponse, summary="Served models, sizes and memory")
async def list_models(request: Request, registry: Registry) -> ModelsResponse:
    admin = is_admin(request.scope)
    return ModelsResponse(default=registry.default, default_reason=registry.default_reason,
                          errors=registry.errors if admin else registry.public_errors(),
                          models=[_info(m, registry, admin) for m in registry.models.values()],
                          repository=registry.index(), memory_budget_bytes=registry.budget_bytes,
                          memory_used_bytes=registry.used_bytes())


@router.get("/models/{name}", response_model=ModelInfo, responses={404: {"model": ErrorResponse}})
async def get_model(request: Request, name: Annotated[str, Path(pattern=NAME_PATTERN)],
                    registry: Registry) -> ModelInfo:
    model = registry.get(name) or await registry.acquire(name)  # 404 naming an unknown model
    return _info(model, registry, is_admin(request.scope))
