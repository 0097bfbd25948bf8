"""The Open Inference Protocol's gRPC messages <-> the core's types, and gRPC's error table.

A ModelInferRequest is checked by the REST request's schema (same limits, same messages) and becomes the
core's `Texts`; a `Classification` becomes a ModelInferResponse with `label` and `probabilities` in
`raw_output_contents`, as Triton answers. Imported by service/grpc_server.py only (grpcio is optional).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import numpy as np
from pydantic import ValidationError

from service import v2_codec
from service.domain import (
    BadInput,
    Classification,
    Conflict,
    DomainError,
    LoadFailed,
    Malformed,
    ModelUnavailable,
    NoDefaultModel,
    Overloaded,
    TooLarge,
    UnknownModel,
    Unsupported,
    too_many_texts,
)
from service.proto import open_inference_grpc_pb2 as pb
from service.schemas import V2InferRequest


@dataclass(frozen=True)
class Refusal:
    """What a call is answered with instead of a reply."""

    code: grpc.StatusCode
    message: str


GRPC_STATUS: dict[type[DomainError], grpc.StatusCode] = {  # gRPC's error table (most specific class wins)
    TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED, BadInput: grpc.StatusCode.INVALID_ARGUMENT,
    Malformed: grpc.StatusCode.INVALID_ARGUMENT, Unsupported: grpc.StatusCode.INVALID_ARGUMENT,
    UnknownModel: grpc.StatusCode.NOT_FOUND, NoDefaultModel: grpc.StatusCode.INVALID_ARGUMENT,
    ModelUnavailable: grpc.StatusCode.UNAVAILABLE, Overloaded: grpc.StatusCode.UNAVAILABLE,
    Conflict: grpc.StatusCode.FAILED_PRECONDITION, LoadFailed: grpc.StatusCode.INVALID_ARGUMENT,
    DomainError: grpc.StatusCode.INTERNAL,
}


def grpc_status(error: DomainError) -> grpc.StatusCode:
    return next(GRPC_STATUS[k] for k in type(error).__mro__ if k in GRPC_STATUS)


def grpc_message(error: DomainError) -> str:
    extra = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in (error.details or [])[:5])
    return f"{error.message}: {extra}" if extra else error.message


def _texts(tensor, raw: bytes | None, max_texts: int) -> list[str]:
    if tensor.datatype != "BYTES":
        raise BadInput(f"input {tensor.name!r}: datatype {tensor.datatype!r}; texts travel as BYTES")
    if raw is not None:
        return v2_codec.decode_bytes_tensor(raw, max_texts)
    if len(tensor.contents.bytes_contents) > max_texts:
        raise too_many_texts(len(tensor.contents.bytes_contents), max_texts)
    try:
        return [b.decode("utf-8") for b in tensor.contents.bytes_contents]
    except UnicodeDecodeError as e:
        raise Malformed(f"input {tensor.name!r}: an element is not UTF-8 text") from e


def infer_request(req: pb.ModelInferRequest, max_texts: int) -> V2InferRequest:
    """The gRPC request checked by the REST request's schema (same limits, same messages; no JSON in between)."""
    if len(req.inputs) != 1:  # before anything is built from them (100k empty inputs are one error)
        raise BadInput(f"{len(req.inputs)} inputs; send one BYTES tensor of texts")
    if req.raw_input_contents and len(req.raw_input_contents) != len(req.inputs):
        raise Malformed(f"{len(req.raw_input_contents)} raw_input_contents for {len(req.inputs)} inputs")
    if len(req.outputs) > 2:
        raise BadInput(f"{len(req.outputs)} outputs requested; there are two")
    t = req.inputs[0]
    tensor = {"name": t.name[:256], "shape": list(t.shape)[:4], "datatype": "BYTES",
              "data": _texts(t, req.raw_input_contents[0] if req.raw_input_contents else None, max_texts)}
    body: dict = {"inputs": [tensor], "id": req.id or None}
    if req.outputs:
        body["outputs"] = [{"name": o.name[:64]} for o in req.outputs]
    try:
        return V2InferRequest.model_validate(body)
    except ValidationError as e:
        raise BadInput.from_validation(e) from e


def response_proto(result: Classification, wanted: list[str] | None, request_id: str) -> pb.ModelInferResponse:
    """`label` and `probabilities` in `raw_output_contents`, as Triton answers."""
    out = pb.ModelInferResponse(model_name=result.model, model_version=result.version, id=request_id)
    for o in v2_codec.outputs(result, wanted)["outputs"]:
        out.outputs.add(name=o["name"], datatype=o["datatype"], shape=o["shape"])
        out.raw_output_contents.append(
            v2_codec.encode_bytes_tensor(o["data"]) if o["datatype"] == "BYTES"
            else np.asarray(o["data"], dtype="<f4").tobytes())
    return out


def model_name(request) -> str:
    """The model of a repository load / unload request: field 1 in the Open Inference Protocol's message (this
    proto), field 2 in Triton's (`repository_name` comes first there), which tritonclient sends."""
    if request.model_name:
        return request.model_name
    from google.protobuf.unknown_fields import UnknownFieldSet

    for f in UnknownFieldSet(request):
        if f.field_number == 2 and f.wire_type == 2:  # length-delimited: a string
            return f.data.decode("utf-8", "replace")
    return ""
