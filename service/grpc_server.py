"""The Open Inference Protocol's gRPC API (inference.GRPCInferenceService) on its own port, off by default.

Set SLIMTEXT_GRPC_PORT to serve it: a grpc.aio server runs on uvicorn's event loop, next to the REST API,
and calls the same `Classifier` core as `/v2/models/{name}/infer` (so limits, metrics and statistics are
shared). Stubs are generated from service/proto/open_inference_grpc.proto and committed.
Texts go in as one BYTES tensor (`raw_input_contents` or `contents.bytes_contents`); `label` and
`probabilities` come back in `raw_output_contents`, as Triton answers.

Bounded like HTTP: every call is checked (API key, then admission control shared with HTTP: a slot among
`max_in_flight` and `max_body_bytes` of the body budget) before its message is read, and shed with
RESOURCE_EXHAUSTED (the handlers are registered as stream-unary, so gRPC does not read the message until the
call asks for it); HTTP/2 streams per connection are capped (`SLIMTEXT_GRPC_MAX_STREAMS`). A message of
`offload_min_body_bytes` or more is parsed (and its texts decoded) in the worker thread, never on the event
loop; the number of inputs and of texts is checked before any text is decoded.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from service.admission import Admission
from service.auth import AuthGuard, presented_key
from service.classify import Classifier, Texts
from service.domain import DomainError, ModelUnavailable
from service.errors import http_status
from service.grpc_codec import Refusal, grpc_message, grpc_status, infer_request, model_name, response_proto
from service.offload import QueueFull
from service.proto import open_inference_grpc_pb2 as pb
from service.proto import open_inference_grpc_pb2_grpc as pb_grpc
from service.v2_stats import model_metadata, model_stats
from slimtext import __version__
from slimtext.runtime import ModelLoadError

log = logging.getLogger("slimtext.grpc")
EXTENSIONS = ["binary_tensor_data", "statistics"]


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, get_classifier: Callable[[], Classifier | None]):
        self._get = get_classifier

    def _classifier(self) -> Classifier:
        classifier = self._get()
        if classifier is None:
            raise ModelUnavailable("models are still loading", code="not_ready")
        return classifier

    async def _model(self, context, name: str, version: str = ""):
        """The named model (loaded on first use); NOT_FOUND naming an unknown model or version."""
        classifier = await _guard(context, self._classifier)
        try:
            return await classifier.model(name, version or None)
        except DomainError as e:
            code, message = grpc_status(e), e.message
        await context.abort(code, message)

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
        except DomainError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request, context):  # noqa: N802
        return pb.ServerMetadataResponse(name="slimtext", version=__version__, extensions=EXTENSIONS)

    async def ModelMetadata(self, request, context):  # noqa: N802
        model = await self._model(context, request.name, request.version)
        meta = model_metadata(self._classifier().registry, model)
        tm = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(name=meta["name"], versions=meta["versions"], platform=meta["platform"],
                                        inputs=[tm(**t) for t in meta["inputs"]],
                                        outputs=[tm(**t) for t in meta["outputs"]])

    async def ModelInfer(self, request: InferCall, context):  # noqa: N802 - parsed by parse()
        classifier = await _guard(context, self._classifier)
        try:
            result = await classifier.classify(request.texts)
        except DomainError as e:
            classifier.count(getattr(e, "model", "-"), "v2", http_status(e))
            error = Refusal(grpc_status(e), grpc_message(e))
        else:
            classifier.count(result.model, "v2", 200)
            return response_proto(result, request.outputs, request.id)
        await context.abort(error.code, error.message)  # outside the except: no traceback keeps the request

    async def ModelStatistics(self, request, context):  # noqa: N802
        classifier = await _guard(context, self._classifier)
        names = [(await self._model(context, request.name)).name] if request.name \
            else list(classifier.registry.models)
        return pb.ModelStatisticsResponse(model_stats=[model_stats(classifier.metrics, n) for n in names])

    async def RepositoryModelLoad(self, request, context):  # noqa: N802 - the same as POST .../load
        registry = (await _guard(context, self._classifier)).registry
        try:
            await registry.load_model(model_name(request))
            return pb.RepositoryModelLoadResponse(model_name=model_name(request), isLoaded=True)
        except DomainError as e:
            code, message = grpc_status(e), e.message
        except ModelLoadError as e:
            code, message = grpc.StatusCode.INVALID_ARGUMENT, registry.public_message(str(e))
        await context.abort(code, message)

    async def RepositoryModelUnload(self, request, context):  # noqa: N802
        registry = (await _guard(context, self._classifier)).registry
        name = model_name(request)
        await _guard(context, registry.unload_model, name)
        return pb.RepositoryModelUnloadResponse(model_name=name, isUnloaded=True)

    async def RepositoryIndex(self, request, context):  # noqa: N802
        registry = (await _guard(context, self._classifier)).registry
        await registry.rescan()
        index = pb.RepositoryIndexResponse.ModelIndex
        return pb.RepositoryIndexResponse(models=[index(name=m["name"], version=m["version"], state=m["state"],
                                                        reason=m["reason"]) for m in registry.index(request.ready)])


async def _guard(context, fn, *args):
    """`fn(*args)`, or the call aborted with its DomainError's status (outside the except: no traceback cycle)."""
    try:
        return fn(*args)
    except DomainError as e:
        code, message = grpc_status(e), e.message
    await context.abort(code, message)


PUBLIC_RPCS = frozenset({"ServerLive", "ServerReady"})  # the health probes, public like /v2/health/* over HTTP
ADMIN_RPCS = frozenset({"RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload"})  # like /v2/repository/
SERVICE = "inference.GRPCInferenceService"
RPCS = {  # method -> (request, response) message types, as in service/proto/open_inference_grpc.proto
    "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
    "ServerMetadata": (pb.ServerMetadataRequest, pb.ServerMetadataResponse),
    "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
    "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse),
    "RepositoryModelLoad": (pb.RepositoryModelLoadRequest, pb.RepositoryModelLoadResponse),
    "RepositoryModelUnload": (pb.RepositoryModelUnloadRequest, pb.RepositoryModelUnloadResponse),
    "ModelStatistics": (pb.ModelStatisticsRequest, pb.ModelStatisticsResponse),
    "RepositoryIndex": (pb.RepositoryIndexRequest, pb.RepositoryIndexResponse),
}


def key_allowed(guard: AuthGuard | None, method: str, metadata) -> bool:
    """SLIMTEXT_API_KEYS over gRPC: metadata `authorization: Bearer <key>` or `x-api-key: <key>` (the same keys
    and constant-time compare as HTTP, service/auth.py); admin keys for the repository RPCs when set."""
    if guard is None or not guard.active or method in PUBLIC_RPCS:
        return True
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in metadata or () if isinstance(v, str)]
    given = presented_key(headers)
    if method in ADMIN_RPCS and guard.admin_keys:
        return guard.admin_allowed(given)
    return guard.inference_allowed(given)


@dataclass(frozen=True)
class InferCall:
    texts: Texts
    outputs: list[str] | None
    id: str


def parse(method: str, raw: bytes, max_texts: int):
    """A call's message, parsed and (ModelInfer) checked and converted, or the Refusal to answer with. Runs in
    the worker thread when large; returns rather than raises, so no traceback carries a parsed message (100k
    tensors, megabytes) back to the event loop, where reference cycles kept them alive until a full GC."""
    try:
        request = RPCS[method][0].FromString(raw)
        if method != "ModelInfer":
            return request
        req = infer_request(request, max_texts)
        return InferCall(Texts(req.all_texts(), request.model_name, request.model_version or None),
                         [o.name for o in req.outputs] if req.outputs else None, request.id)
    except DomainError as e:
        return Refusal(grpc_status(e), grpc_message(e))
    except Exception:  # protobuf's DecodeError and kin: the bytes are not this message
        return Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"the {method} message does not parse")


class Bounded:
    """Every RPC as a stream-unary handler over raw bytes: key check and admission before the message is read,
    parsing off the event loop when the message is large, the admission slot held until the call ends."""

    def __init__(self, servicer: InferenceServicer, get_classifier: Callable[[], Classifier | None],
                 admission: Admission, guard: AuthGuard | None, charge: int):
        self.servicer, self._get, self.admission, self.guard = servicer, get_classifier, admission, guard
        self.charge = charge  # body bytes charged to every call: its message may be up to this size

    def handler(self) -> grpc.GenericRpcHandler:
        handlers = {name: grpc.stream_unary_rpc_method_handler(
            functools.partial(self._call, name), request_deserializer=None,
            response_serializer=response.SerializeToString) for name, (_, response) in RPCS.items()}
        return grpc.method_handlers_generic_handler(SERVICE, handlers)

    async def _call(self, method: str, _messages, context):
        if not key_allowed(self.guard, method, context.invocation_metadata()):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid API key (metadata "
                                "'authorization: Bearer <key>' or 'x-api-key: <key>')")
        if not self.admission.try_admit(self.charge):
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                "the server is at its configured capacity; retry later")
        try:
            raw = await context.read()  # unary on the wire: one message (not the iterator: it would keep it)
            request = await self._parse(method, raw)
            del raw  # an abort's traceback keeps this frame: it must not keep the message (see `parse`)
            if isinstance(request, Refusal):
                await context.abort(request.code, request.message)
            return await getattr(self.servicer, method)(request, context)
        finally:
            self.admission.release(self.charge)

    async def _parse(self, method: str, raw: object) -> object:
        """The parsed request, or the Refusal to answer with."""
        classifier = self._get()
        if not isinstance(raw, bytes):  # grpc.aio.EOF: the client sent no message
            return Refusal(grpc.StatusCode.INVALID_ARGUMENT, "no request message")
        if method == "ModelInfer" and classifier is None:
            return Refusal(grpc.StatusCode.UNAVAILABLE, "models are still loading")
        max_texts = classifier.settings.max_texts if classifier is not None else 0
        job = functools.partial(parse, method, raw, max_texts)
        if classifier is None or len(raw) < classifier.settings.offload_min_body_bytes:
            return job()
        try:
            return await classifier.offloader.run(job)
        except QueueFull:
            return Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, "the worker queue is full; retry later")


async def start(get_classifier: Callable[[], Classifier | None], host: str, port: int, max_message_bytes: int,
                guard: AuthGuard, admission: Admission, max_streams: int) -> grpc.aio.Server:
    options = [("grpc.max_receive_message_length", max_message_bytes), ("grpc.so_reuseport", 0),
               ("grpc.max_concurrent_streams", max_streams)]  # per connection: beyond, REFUSED_STREAM
    server = grpc.aio.server(options=options, maximum_concurrent_rpcs=max_streams * 4)
    bounded = Bounded(InferenceServicer(get_classifier), get_classifier, admission,
                      guard if guard.active else None, max_message_bytes)
    server.add_generic_rpc_handlers((bounded.handler(),))
    address = f"{host}:{port}"
    server.add_insecure_port(address)
    await server.start()
    log.info("gRPC (inference.GRPCInferenceService) on %s", address)
    return server
