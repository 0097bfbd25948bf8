"""KServe Open Inference Protocol v2, beside the native API.

Texts go in as one BYTES tensor; `label` (BYTES) and `probabilities` (FP32, [N, C]) come out.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from service.deps import get_classifier
from service.errors import ApiError
from service.registry import LoadedModel
from service.routes.classify import ERRORS, reply_from
from service.schemas import V2InferRequest, V2InferResponse, V2ModelMetadata, V2TensorMetadata, inline_schema
from slimtext.manifest import NAME_PATTERN

router = APIRouter(prefix="/v2", tags=["kserve-v2"])
ModelName = Annotated[str, Path(pattern=NAME_PATTERN)]


def _model(request: Request, name: str) -> LoadedModel:
    model = get_classifier(request).registry.models.get(name)
    if model is None:
        raise ApiError(404, "unknown_model", f"no model named {name!r}")
    return model


@router.get("", summary="Server metadata")
async def server_metadata() -> dict:
    return {"name": "slimtext", "version": "0.1.0", "extensions": []}


@router.get("/health/live")
async def live() -> dict:
    return {"live": True}


@router.get("/health/ready", responses={503: {"description": "not ready"}})
async def ready(request: Request) -> dict:
    get_classifier(request)
    return {"ready": True}


@router.get("/models/{name}", response_model=V2ModelMetadata, responses=ERRORS)
async def model_metadata(request: Request, name: ModelName) -> V2ModelMetadata:
    model = _model(request, name)
    n_labels = len(model.classifier.labels)
    return V2ModelMetadata(
        name=model.name, versions=["1"], platform="onnxruntime_onnx",
        inputs=[V2TensorMetadata(name="text", datatype="BYTES", shape=[-1])],
        outputs=[V2TensorMetadata(name="label", datatype="BYTES", shape=[-1]),
                 V2TensorMetadata(name="probabilities", datatype="FP32", shape=[-1, n_labels])])


@router.get("/models/{name}/ready", responses=ERRORS)
async def model_ready(request: Request, name: ModelName) -> dict:
    return {"name": _model(request, name).name, "ready": True}


@router.post(
    "/models/{name}/infer", response_model=V2InferResponse, responses=ERRORS, summary="Classify a BYTES tensor",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": inline_schema(V2InferRequest)}}}},
)
async def infer(request: Request, name: ModelName) -> Response:
    classifier = get_classifier(request)
    return await reply_from(classifier, request, lambda ct, body: classifier.v2_infer(name, ct, body))
