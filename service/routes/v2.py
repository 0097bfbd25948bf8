"""KServe Open Inference Protocol v2, beside the native API.

Texts go in as one BYTES tensor ([N] or [N, 1]); `label` (BYTES, [N]) and `probabilities` (FP32, [N, C])
come out, as JSON or with the binary tensor data extension (service/v2_codec.py). Errors follow the
protocol: `{"error": "<message>"}` (plus a machine-readable `code`). A JSON body needs no Content-Type;
415 is only for a declared non-JSON type.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import Response

from service import v2_codec, v2_stats
from service.body import read_body
from service.classify import JSON, Texts, parse_json, server_timing
from service.deps import get_classifier
from service.domain import DomainError, Unsupported
from service.errors import ApiError, http_status, retry_headers, validation_details
from service.offload import ClientGone, Watch
from service.registry import VERSION_PATTERN, LoadedModel
from service.routes.classify import GONE
from service.schemas import (
    V2ErrorResponse,
    V2InferRequest,
    V2InferResponse,
    V2ModelMetadata,
    inline_schema,
)
from service.v2_stats import model_stats
from slimtext import __version__
from slimtext.manifest import NAME_PATTERN
from slimtext.runtime import ModelLoadError

EXTENSIONS = ["binary_tensor_data", "model_configuration", "statistics", "model_repository"]
ERRORS = {code: {"model": V2ErrorResponse, "description": text} for code, text in {
    400: "malformed body or binary tensor data", 404: "unknown model",
    413: "a size limit exceeded (body, texts or characters)", 415: "a declared content type that is not JSON",
    422: "a field of the wrong shape or datatype", 503: "models not loaded yet"}.items()}

BINARY_REPLY = {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                "description": "JSON; with binary outputs a JSON header (its length in the "
                               "Inference-Header-Content-Length header), then the tensors' bytes"}


def v2_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps({"error": message, "code": code}), status_code=status, media_type=JSON,
                    headers=headers or None)

def _message(details: list[dict]) -> str:
    parts = [f"{'.'.join(str(p) for p in d['loc'] if p != 'body')}: {d['msg']}" for d in details[:5]]
    return "request does not match the schema: " + "; ".join(parts)


class V2Route(APIRoute):
    """Errors on the v2 routes in the protocol's shape instead of the native `{error, message, details}`."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as e:
                return v2_error(e.status, e.error, e.message)
            except DomainError as e:
                message = _message(e.details) if e.details else e.message
                headers = retry_headers(e, getattr(request.app.state, "classifier", None))
                return v2_error(http_status(e), e.code, message, headers)
            except RequestValidationError as e:
                return v2_error(422, "invalid_request", _message(validation_details(list(e.errors()))))

        return route


router = APIRouter(prefix="/v2", tags=["kserve-v2"], route_class=V2Route, responses={503: ERRORS[503]})
ModelName = Annotated[str, Path(pattern=NAME_PATTERN)]


Version = Annotated[str, Path(pattern=VERSION_PATTERN)]


async def _model(request: Request, name: str, version: str | None = None) -> LoadedModel:
    """The named model (and version), loaded on first use; 404 naming an unknown model or version."""
    return await get_classifier(request).model(name, version)


@router.get("", summary="Server metadata")
async def server_metadata() -> dict:
    return {"name": "slimtext", "version": __version__, "extensions": EXTENSIONS}


@router.get("/health/live")
async def live() -> dict:
    return {"live": True}


@router.get("/health/ready")
async def ready(request: Request) -> dict:
    get_classifier(request)
    return {"ready": True}


@router.post("/repository/index", summary="Every model folder and version: READY, LOADING or UNAVAILABLE and why "
             "(admin key when SLIMTEXT_ADMIN_KEYS is set)")
async def repository_index(request: Request) -> list[dict]:
    registry = get_classifier(request).registry
    body = await request.body()
    ready_only = False
    if body.strip():
        try:
            ready_only = bool(orjson.loads(body).get("ready", False))
        except (orjson.JSONDecodeError, AttributeError) as e:
            raise ApiError(400, "invalid_request", "the body must be a JSON object like {\"ready\": true}") from e
    await registry.rescan()  # new and removed folders show up
    return registry.index(ready_only)


@router.post("/repository/models/{name}/load", responses=ERRORS,
             summary="(Re)load a model's highest version from its folder and swap it in atomically")
async def repository_load(request: Request, name: ModelName) -> dict:
    registry = get_classifier(request).registry
    try:
        loaded = await registry.load_model(name)
    except ModelLoadError as e:  # the old version (if any) keeps serving
        raise ApiError(400, "load_failed", registry.public_message(str(e))) from e
    return {"name": loaded.name, "version": loaded.version, "state": "READY", "sha256": loaded.sha256,
            "memory_bytes": loaded.rss_growth_bytes}


DEFAULT_409 = {409: {"model": V2ErrorResponse, "description": "the default model cannot be unloaded"}}


@router.post("/repository/models/{name}/unload", responses={**ERRORS, **DEFAULT_409},
             summary="Unload every version of a model (409 for the default model)")
async def repository_unload(request: Request, name: ModelName) -> dict:
    get_classifier(request).registry.unload_model(name)
    return {"name": name, "state": "UNAVAILABLE", "reason": "unloaded"}


@router.get("/models/stats", summary="Statistics of every model, as Triton reports them")
async def all_stats(request: Request) -> dict:
    classifier = get_classifier(request)
    return {"model_stats": [model_stats(classifier.metrics, n) for n in classifier.registry.models]}


@router.get("/models/{name}", response_model=V2ModelMetadata, responses=ERRORS)
async def model_metadata(request: Request, name: ModelName) -> V2ModelMetadata:
    return _metadata(request, await _model(request, name))


@router.get("/models/{name}/versions/{version}", response_model=V2ModelMetadata, responses=ERRORS)
async def version_metadata(request: Request, name: ModelName, version: Version) -> V2ModelMetadata:
    return _metadata(request, await _model(request, name, version))


def _metadata(request: Request, model: LoadedModel) -> V2ModelMetadata:
    return V2ModelMetadata(**v2_stats.model_metadata(get_classifier(request).registry, model))


@router.get("/models/{name}/ready", responses=ERRORS)
async def model_ready(request: Request, name: ModelName) -> dict:
    return {"name": (await _model(request, name)).name, "ready": True}


@router.get("/models/{name}/versions/{version}/ready", responses=ERRORS)
async def version_ready(request: Request, name: ModelName, version: Version) -> dict:
    model = await _model(request, name, version)
    return {"name": model.name, "version": model.version, "ready": True}


@router.get("/models/{name}/config", responses=ERRORS, summary="Model configuration (Triton's JSON form)")
async def model_config(request: Request, name: ModelName) -> dict:
    model = await _model(request, name)
    return {"name": model.name, "platform": "onnxruntime_onnx", "backend": "onnxruntime", "max_batch_size": 0,
            "input": [{"name": "text", "data_type": "TYPE_STRING", "dims": [-1]}],
            "output": [{"name": "label", "data_type": "TYPE_STRING", "dims": [-1],
                        "label_filename": ""},
                       {"name": "probabilities", "data_type": "TYPE_FP32",
                        "dims": [-1, len(model.classifier.labels)], "label_filename": ""}],
            "parameters": {"labels": {"string_value": ",".join(model.classifier.labels)}}}


@router.get("/models/{name}/stats", responses=ERRORS, summary="Statistics of one model, as Triton reports them")
async def stats(request: Request, name: ModelName) -> dict:
    return {"model_stats": [model_stats(get_classifier(request).metrics, (await _model(request, name)).name)]}


@router.post(
    "/models/{name}/infer", response_model=V2InferResponse, summary="Classify a BYTES tensor",
    responses={**ERRORS, 200: BINARY_REPLY},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": inline_schema(V2InferRequest)}}}},
)
async def infer(request: Request, name: ModelName) -> Response:
    return await _infer(request, name, None)


@router.post(
    "/models/{name}/versions/{version}/infer", response_model=V2InferResponse, summary="Classify with one version",
    responses={**ERRORS, 200: BINARY_REPLY},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": inline_schema(V2InferRequest)}}}},
)
async def infer_version(request: Request, name: ModelName, version: Version) -> Response:
    return await _infer(request, name, version)


async def _infer(request: Request, name: str, version: str | None) -> Response:
    """The /v2 REST adapter: decode (binary tensors inlined; off the loop when large), classify, render."""
    classifier = get_classifier(request)
    content_type = request.headers.get("content-type", "")
    header_length = request.headers.get(v2_codec.HEADER)
    if content_type and not content_type.startswith(JSON) and not (
            header_length is not None and content_type.startswith("application/octet-stream")):
        raise Unsupported(f"content type {content_type[:100]!r}; send {JSON}")
    body = await read_body(request, classifier.settings.max_body_bytes)
    watch, label = Watch(request.receive), "-"
    try:
        req, wants_binary = await classifier.parse(
            functools.partial(parse_infer, body, header_length, classifier.settings.max_texts), len(body), watch)
        result = await classifier.classify(Texts(req.all_texts(), name, version), watch)
    except DomainError as e:
        classifier.count(getattr(e, "model", label), "v2", http_status(e))
        raise
    except ClientGone:
        classifier.metrics.client_aborted("v2")
        return Response(status_code=GONE)
    finally:
        await watch.stop()
    classifier.count(result.model, "v2", 200)
    reply = v2_codec.outputs(result, [o.name for o in req.outputs] if req.outputs else None, req.id)
    headers = {"server-timing": server_timing(result.timing)}
    if not wants_binary:
        return Response(orjson.dumps(reply), media_type=JSON, headers=headers)
    header, data = v2_codec.encode_binary_outputs(reply, wants_binary)
    headers["inference-header-content-length"] = str(len(header))
    return Response(header + data, media_type="application/octet-stream", headers=headers)


def parse_infer(body: bytes, header_length: str | None, max_texts: int) -> tuple[V2InferRequest, set[str]]:
    """(the validated request, the outputs wanted as binary): CPU work on untrusted bytes."""
    json_part, wants_binary = v2_codec.prepare_request(body, header_length, max_texts)
    return parse_json(V2InferRequest, json_part), wants_binary
