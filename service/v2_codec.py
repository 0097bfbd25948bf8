"""The Open Inference Protocol's binary tensor data extension for REST (as Triton and its clients use it).

A request or reply body may be a JSON header followed by raw tensor bytes; the header's length is in the
`Inference-Header-Content-Length` HTTP header, and each binary tensor carries
`parameters.binary_data_size` instead of `data`. BYTES elements are a 4-byte little-endian length followed
by the bytes; FP32 tensors are little-endian float32, row-major.
"""

from __future__ import annotations

import struct

import numpy as np
import orjson

from service.domain import BadInput, Classification, Malformed, too_many_texts

HEADER = "inference-header-content-length"
_LEN = struct.Struct("<I")


def bad_request(message: str) -> Malformed:
    return Malformed(message)


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON header, binary rest) of a request body."""
    if header_length is None:
        return body, b""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise bad_request(f"{HEADER} {header_length[:20]!r} is not a length within the {len(body)}-byte body")
    n = int(header_length)
    return body[:n], body[n:]


def decode_bytes_tensor(raw: bytes, max_items: int) -> list[str]:
    """BYTES elements (4-byte little-endian length, then the bytes) as UTF-8 strings; 413 past `max_items`
    (counted as they are decoded: 262k empty elements in 1 MiB cost 257 steps, not 262k)."""
    out, pos = [], 0
    try:
        while pos < len(raw):
            if len(out) >= max_items:
                raise too_many_texts(max_items + 1, max_items, at_least=True)
            (n,) = _LEN.unpack_from(raw, pos)
            pos += 4
            if pos + n > len(raw):
                raise bad_request("binary BYTES tensor: an element runs past the end of its data")
            out.append(raw[pos:pos + n].decode("utf-8"))
            pos += n
    except struct.error as e:
        raise bad_request("binary BYTES tensor: truncated length prefix") from e
    except UnicodeDecodeError as e:
        raise bad_request(f"binary BYTES tensor: element {len(out)} is not UTF-8 text") from e
    return out


def encode_bytes_tensor(items: list[str]) -> bytes:
    parts = []
    for s in items:
        b = s.encode("utf-8")
        parts += (_LEN.pack(len(b)), b)
    return b"".join(parts)


def outputs(result: Classification, wanted: list[str] | None = None, request_id: str | None = None) -> dict:
    """The Open Inference Protocol's reply: `label` (BYTES, [N]) and `probabilities` (FP32, [N, C]); `wanted`
    names a subset (checked by the request schema), None: both."""
    probs = result.probabilities
    tensors = {
        "label": {"name": "label", "shape": [len(probs)], "datatype": "BYTES",
                  "data": [result.labels[i] for i in result.best.tolist()]},
        "probabilities": {"name": "probabilities", "shape": list(probs.shape), "datatype": "FP32",
                          "data": probs.ravel().tolist()},
    }
    body = {"model_name": result.model, "model_version": result.version,
            "outputs": [tensors[w] for w in wanted or tensors]}
    if request_id is not None:
        body["id"] = request_id
    return body


def prepare_request(body: bytes, header_length: str | None, max_texts: int) -> tuple[bytes, set[str]]:
    """(the JSON body the classifier core validates, the outputs wanted as binary) of a v2 REST request:
    its binary inputs decoded and inlined. CPU work on untrusted bytes: the route runs it in the worker
    thread for large bodies."""
    json_part, binary = split_body(body, header_length)
    if header_length is None and b"binary_data" not in json_part:  # the extension not in use: plain JSON
        return json_part, set()
    try:
        req = orjson.loads(json_part)
    except orjson.JSONDecodeError as e:
        raise Malformed(f"the JSON header is not valid JSON: {e.msg}", code="invalid_json") from e
    if not isinstance(req, dict):
        raise BadInput("the request must be a JSON object")
    if inline_binary_inputs(req, binary, max_texts):
        json_part = orjson.dumps(req)
    return json_part, binary_output_names(req)


def inline_binary_inputs(request: dict, binary: bytes, max_texts: int) -> bool:
    """Replace every input's `binary_data_size` by its decoded `data`; True if there was any."""
    pos, found = 0, False
    inputs = request.get("inputs")
    for tensor in inputs if isinstance(inputs, list) else []:  # other shapes are left to the schema's 422
        params = tensor.get("parameters") if isinstance(tensor, dict) else None
        if not isinstance(params, dict) or "binary_data_size" not in params:
            continue
        size = params.pop("binary_data_size")
        if not isinstance(size, int) or size < 0 or pos + size > len(binary):
            raise bad_request(f"input {tensor.get('name')!r}: binary_data_size {size!r} does not fit the "
                              f"{len(binary) - pos} bytes left after the JSON header")
        if tensor.get("datatype") != "BYTES":
            raise bad_request(f"input {tensor.get('name')!r}: datatype {tensor.get('datatype')!r}; "
                              "texts travel as BYTES")
        if "data" in tensor:
            raise bad_request(f"input {tensor.get('name')!r}: both data and binary_data_size given")
        tensor["data"] = decode_bytes_tensor(binary[pos:pos + size], max_texts)
        pos += size
        found = True
    if pos != len(binary):
        raise bad_request(f"{len(binary) - pos} bytes after the JSON header belong to no input")
    return found


def binary_output_names(request: dict) -> set[str]:
    """Outputs to send as binary: every one if `parameters.binary_data_output` is true, unless the output
    says `binary_data: false`; else those asking `binary_data: true`."""
    params = request.get("parameters")
    default = isinstance(params, dict) and params.get("binary_data_output") is True
    wanted = request.get("outputs")
    if not wanted or not isinstance(wanted, list):
        return {"label", "probabilities"} if default else set()
    names = set()
    for out in (o for o in wanted if isinstance(o, dict)):  # others: the schema answers 422
        p = out.get("parameters")
        if (p.get("binary_data", default) if isinstance(p, dict) else default) is True:
            names.add(out.get("name"))
    return names


def encode_binary_outputs(reply: dict, names: set[str]) -> tuple[bytes, bytes]:
    """(JSON header, binary data) with the named outputs moved out of the JSON."""
    chunks = []
    for out in reply["outputs"]:
        if out["name"] not in names:
            continue
        data = out.pop("data")
        raw = (encode_bytes_tensor(data) if out["datatype"] == "BYTES"
               else np.asarray(data, dtype="<f4").tobytes())
        out["parameters"] = {"binary_data_size": len(raw)}
        chunks.append(raw)
    return orjson.dumps(reply), b"".join(chunks)
