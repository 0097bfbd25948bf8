"""The Open Inference Protocol's gRPC API (inference.GRPCInferenceService) on its own port, off by default.

Set SLIMTEXT_GRPC_PORT to serve it: a grpc.aio server runs on uvicorn's event loop, next to the REST API,
and calls the same `Classifier` core as `/v2/models/{name}/infer` (so limits, metrics and statistics are
shared). Stubs are generated from service/proto/open_inference_grpc.proto and committed.
Texts go in as one BYTES tensor (`raw_input_contents` or `contents.bytes_contents`); `label` and
`probabilities` come back in `raw_output_contents`, as Triton answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc
import numpy as np
import orjson

from service import v2_codec
from service.auth import AuthGuard, presented_key
from service.classify import JSON, Classifier
from service.errors import ApiError
from service.proto import open_inference_grpc_pb2 as pb
from service.proto import open_inference_grpc_pb2_grpc as pb_grpc
from service.v2_stats import model_stats
from slimtext.runtime import ModelLoadError

log = logging.getLogger("slimtext.grpc")
EXTENSIONS = ["binary_tensor_data", "statistics"]
_CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
          413: grpc.StatusCode.RESOURCE_EXHAUSTED, 415: grpc.StatusCode.INVALID_ARGUMENT,
          409: grpc.StatusCode.FAILED_PRECONDITION, 422: grpc.StatusCode.INVALID_ARGUMENT,
          503: grpc.StatusCode.UNAVAILABLE}


def _texts(tensor, raw: bytes | None) -> list[str]:
    if tensor.datatype != "BYTES":
        raise ApiError(422, "invalid_request", f"input {tensor.name!r}: datatype {tensor.datatype!r}; "
                                               "texts travel as BYTES")
    if raw is not None:
        return v2_codec.decode_bytes_tensor(raw)
    try:
        return [b.decode("utf-8") for b in tensor.contents.bytes_contents]
    except UnicodeDecodeError as e:
        raise ApiError(400, "invalid_request", f"input {tensor.name!r}: an element is not UTF-8 text") from e


def request_json(req: pb.ModelInferRequest) -> bytes:
    """The gRPC request as the REST JSON body the classifier core validates."""
    if req.raw_input_contents and len(req.raw_input_contents) != len(req.inputs):
        raise ApiError(400, "invalid_request", f"{len(req.raw_input_contents)} raw_input_contents for "
                                               f"{len(req.inputs)} inputs")
    inputs = []
    for i, t in enumerate(req.inputs):
        raw = req.raw_input_contents[i] if req.raw_input_contents else None
        inputs.append({"name": t.name, "shape": list(t.shape), "datatype": "BYTES", "data": _texts(t, raw)})
    body: dict = {"inputs": inputs}
    if req.outputs:
        body["outputs"] = [{"name": o.name} for o in req.outputs]
    if req.id:
        body["id"] = req.id
    return orjson.dumps(body)


def response_proto(reply: dict) -> pb.ModelInferResponse:
    out = pb.ModelInferResponse(model_name=reply["model_name"], model_version=reply["model_version"],
                                id=reply.get("id") or "")
    for o in reply["outputs"]:
        out.outputs.add(name=o["name"], datatype=o["datatype"], shape=o["shape"])
        out.raw_output_contents.append(
            v2_codec.encode_bytes_tensor(o["data"]) if o["datatype"] == "BYTES"
            else np.asarray(o["data"], dtype="<f4").tobytes())
    return out


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, get_classifier: Callable[[], Classifier | None]):
        self._get = get_classifier

    def _classifier(self) -> Classifier:
        classifier = self._get()
        if classifier is None:
            raise ApiError(503, "not_ready", "models are still loading")
        return classifier

    async def _model(self, context, name: str, version: str = ""):
        """The named model (loaded on first use); NOT_FOUND naming an unknown model or version."""
        classifier = await _guard(context, self._classifier)
        try:
            return await classifier.model(name, version or None)
        except ApiError as e:
            await context.abort(_CODES.get(e.status, grpc.StatusCode.INVALID_ARGUMENT), e.message)

    async def ServerLive(self, request, context):  # noqa: N802 - names fixed by the protocol
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):  # noqa: N802
        return pb.ServerReadyResponse(ready=self._get() is not None)

    async def ModelReady(self, request, context):  # noqa: N802
        classifier = self._get()
        if classifier is None:
            return pb.ModelReadyResponse(ready=False)
        try:
            await classifier.model(request.name, request.version or None)
        except ApiError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request, context):  # noqa: N802
        return pb.ServerMetadataResponse(name="slimtext", version="0.1.0", extensions=EXTENSIONS)

    async def ModelMetadata(self, request, context):  # noqa: N802
        model = await self._model(context, request.name, request.version)
        entry = self._classifier().registry.entries.get(model.name)
        tm = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=model.name, versions=sorted(entry.versions, key=int) if entry else [model.version],
            platform="onnxruntime_onnx",
            inputs=[tm(name="text", datatype="BYTES", shape=[-1])],
            outputs=[tm(name="label", datatype="BYTES", shape=[-1]),
                     tm(name="probabilities", datatype="FP32", shape=[-1, len(model.classifier.labels)])])

    async def ModelInfer(self, request, context):  # noqa: N802
        classifier = await _guard(context, self._classifier)
        body = await _guard(context, request_json, request)
        reply = await classifier.v2_infer(request.model_name, JSON, body, version=request.model_version or None)
        if reply.status != 200:
            err = orjson.loads(reply.body)
            details = err.get("details") or []
            extra = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in details[:5])
            await context.abort(_CODES.get(reply.status, grpc.StatusCode.INVALID_ARGUMENT),
                                f"{err['message']}: {extra}" if extra else err["message"])
        return response_proto(orjson.loads(reply.body))

    async def ModelStatistics(self, request, context):  # noqa: N802
        classifier = await _guard(context, self._classifier)
        names = [(await self._model(context, request.name)).name] if request.name \
            else list(classifier.registry.models)
        return pb.ModelStatisticsResponse(model_stats=[model_stats(classifier.metrics, n) for n in names])

    async def RepositoryModelLoad(self, request, context):  # noqa: N802 - the same as POST .../load
        registry = (await _guard(context, self._classifier)).registry
        try:
            await registry.load_model(_model_name(request))
        except ApiError as e:
            await context.abort(_CODES.get(e.status, grpc.StatusCode.INVALID_ARGUMENT), e.message)
        except ModelLoadError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, registry.public_message(str(e)))
        return pb.RepositoryModelLoadResponse(model_name=_model_name(request), isLoaded=True)

    async def RepositoryModelUnload(self, request, context):  # noqa: N802
        registry = (await _guard(context, self._classifier)).registry
        name = _model_name(request)
        await _guard(context, registry.unload_model, name)
        return pb.RepositoryModelUnloadResponse(model_name=name, isUnloaded=True)

    async def RepositoryIndex(self, request, context):  # noqa: N802
        registry = (await _guard(context, self._classifier)).registry
        await registry.rescan()
        index = pb.RepositoryIndexResponse.ModelIndex
        return pb.RepositoryIndexResponse(models=[index(name=m["name"], version=m["version"], state=m["state"],
                                                        reason=m["reason"]) for m in registry.index(request.ready)])


def _model_name(request) -> str:
    """The model of a repository load / unload request: field 1 in the Open Inference Protocol's message (this
    proto), field 2 in Triton's (`repository_name` comes first there), which tritonclient sends."""
    if request.model_name:
        return request.model_name
    from google.protobuf.unknown_fields import UnknownFieldSet

    for f in UnknownFieldSet(request):
        if f.field_number == 2 and f.wire_type == 2:  # length-delimited: a string
            return f.data.decode("utf-8", "replace")
    return ""


async def _guard(context, fn, *args):
    try:
        return fn(*args)
    except ApiError as e:
        await context.abort(_CODES.get(e.status, grpc.StatusCode.INVALID_ARGUMENT), e.message)


PUBLIC_RPCS = frozenset({"ServerLive", "ServerReady"})  # the health probes, public like /v2/health/* over HTTP
ADMIN_RPCS = frozenset({"RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload"})  # like /v2/repository/


class KeyCheck(grpc.aio.ServerInterceptor):
    """SLIMTEXT_API_KEYS over gRPC: metadata `authorization: Bearer <key>` or `x-api-key: <key>`, else
    UNAUTHENTICATED before the call runs (the same keys and constant-time compare as HTTP, service/auth.py)."""

    def __init__(self, guard: AuthGuard):
        self.guard = guard

    async def intercept_service(self, continuation, details):
        if details.method.rsplit("/", 1)[-1] in PUBLIC_RPCS:
            return await continuation(details)
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in details.invocation_metadata or ()
                   if isinstance(v, str)]
        given = presented_key(headers)
        method = details.method.rsplit("/", 1)[-1]
        if method in ADMIN_RPCS and self.guard.admin_keys:
            if self.guard.admin_allowed(given):
                return await continuation(details)
        elif self.guard.inference_allowed(given):
            return await continuation(details)
        return grpc.unary_unary_rpc_method_handler(_unauthenticated)


async def _unauthenticated(request, context):
    await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                        "missing or invalid API key (metadata 'authorization: Bearer <key>' or 'x-api-key: <key>')")


async def start(get_classifier: Callable[[], Classifier | None], host: str, port: int,
                max_message_bytes: int, guard: AuthGuard) -> grpc.aio.Server:
    options = [("grpc.max_receive_message_length", max_message_bytes), ("grpc.so_reuseport", 0)]
    server = grpc.aio.server(options=options, interceptors=[KeyCheck(guard)] if guard.active else None)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(get_classifier), server)
    address = f"{host}:{port}"
    server.add_insecure_port(address)
    await server.start()
    log.info("gRPC (inference.GRPCInferenceService) on %s", address)
    return server
