"""Every byte bounded (issue 24), against a real `python -m service` on loopback with raw sockets and raw gRPC
calls: chunked trailers and chunk extensions count against the head cap, validation errors are capped, every
non-inference route takes a tiny body, /health/ready names no model, /metrics needs a key when keys are set,
and gRPC is under the same admission control as HTTP, with its parsing off the event loop."""

from __future__ import annotations

import json
import socket
import struct
import time

import grpc
import httpx
import pytest

# Triton's client stubs build the same wire messages; the service's own (service/proto) would clash with them in
# protobuf's default pool (both define package `inference`), and other test files import tritonclient
from tritonclient.grpc import service_pb2 as pb

from bench.server import free_port
from tests.conftest import Server
from tests.test_hardening import closed_within, live, post, read_response

MODEL = "sst2-dan-lowrank"
API_KEY = "inference-key-0123456789"
INFER = "/inference.GRPCInferenceService/ModelInfer"


@pytest.fixture(scope="module")
def bounded(quick_run):
    port = free_port()
    srv = Server(quick_run[0], env={"SLIMTEXT_HEADER_MAX_BYTES": "8192", "SLIMTEXT_BODY_TIMEOUT_S": "3",
                                    "SLIMTEXT_MAX_IN_FLIGHT": "2", "SLIMTEXT_GRPC_PORT": str(port)})
    srv.wait_ready()
    srv.grpc_port = port
    yield srv
    srv.stop()


def chunked_head(path: str = "/classify", method: str = "POST") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def response_or_reset(s: socket.socket) -> tuple[int, bytes]:
    """The reply's status and body; (0, b"") when the server reset the connection first."""
    try:
        status, _, body = read_response(s)
        return status, body
    except OSError:
        return 0, b""


def send_until_refused(s: socket.socket, parts, limit_bytes: int) -> int:
    """Send parts until the server stops reading (or limit_bytes): how many bytes went out."""
    sent = 0
    s.settimeout(2)
    try:
        for part in parts:
            s.sendall(part)
            sent += len(part)
            if sent >= limit_bytes:
                break
    except OSError:
        pass
    return sent


# ------------------------------------------------------------------ HTTP/1.1 framing

@pytest.mark.parametrize("path,method", [("/classify", "POST"), ("/health/live", "GET"),
                                         ("/v2/repository/index", "POST")])
def test_trailers_count_against_the_head_cap(bounded, path, method):
    body = json.dumps({"texts": ["fine"]}).encode()
    trailer = b"X-T: " + b"t" * 60_000 + b"\r\n"  # one field, 60 KB: 7x the 8 KiB head cap
    with socket.create_connection(("127.0.0.1", bounded.port)) as s:
        s.sendall(chunked_head(path, method) + chunk(body) + b"0\r\n")
        sent = send_until_refused(s, (trailer for _ in range(200)), 12_000_000)
        status, reply = response_or_reset(s)
        # 431, or a reset once the reply is out (a GET may be answered before its body arrives)
        assert status in (431, 0) or status == 200 and method == "GET"
        assert status != 431 or json.loads(reply)["error"] == "request_header_too_large"
        assert closed_within(s, 3)
    assert sent < 12_000_000, "the server read every trailer byte"
    assert live(bounded) == 200


def test_small_trailers_are_accepted_and_dropped(bounded):
    body = json.dumps({"texts": ["a gorgeous , witty , seductive movie ."]}).encode()
    with socket.create_connection(("127.0.0.1", bounded.port)) as s:
        s.sendall(chunked_head() + chunk(body) + b"0\r\nX-Checksum: abc\r\n\r\n")
        status, _, reply = read_response(s)
        assert status == 200 and json.loads(reply)["predictions"][0]["label"] == "positive"
        s.sendall(post())  # the connection stays usable
        assert read_response(s)[0] == 200


def test_chunk_extensions_are_bounded(bounded):
    with socket.create_connection(("127.0.0.1", bounded.port)) as s:
        s.sendall(chunked_head() + b"1;ext=")
        sent = send_until_refused(s, (b"e" * 65_536 for _ in range(200)), 12_000_000)
        assert sent < 12_000_000
        assert response_or_reset(s)[0] in (431, 0) and closed_within(s, 3)
    assert live(bounded) == 200


@pytest.mark.parametrize("path", ["/classify", f"/v2/models/{MODEL}/infer"])
def test_a_chunked_body_over_the_inference_cap_gets_413(bounded, path):
    with socket.create_connection(("127.0.0.1", bounded.port)) as s:
        s.sendall(chunked_head(path))
        sent = send_until_refused(s, (chunk(b" " * 65_536) for _ in range(64)), 64 * 65_536)
        status, reply = response_or_reset(s)
        assert status == 413 and b"body_too_large" in reply or status == 0 and sent < 64 * 65_536
    assert live(bounded) == 200


def test_expect_100_continue_with_an_oversized_length_gets_413_and_no_100(bounded):
    with socket.create_connection(("127.0.0.1", bounded.port)) as s:
        s.sendall(b"POST /v2/repository/index HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                  b"Expect: 100-continue\r\nContent-Length: 300000000\r\n\r\n")
        status, headers, reply = read_response(s)
        assert status == 413 and json.loads(reply)["error"] == "body_too_large"


@pytest.mark.parametrize("path", ["/v2/repository/index", "/v2/repository/models/sst2-dan-lowrank/load",
                                  "/health/live", "/models"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_every_non_inference_route_takes_a_tiny_body(bounded, path, framing):
    big = b"{" + b" " * 300_000 + b"}"
    method = "GET" if path in ("/health/live", "/models") else "POST"
    with socket.create_connection(("127.0.0.1", bounded.port)) as s:
        if framing == "content-length":
            s.sendall(f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(big)}\r\n\r\n".encode())
            status, _, reply = read_response(s)
            assert status == 413, reply
        else:
            s.sendall(chunked_head(path, method))
            sent = send_until_refused(s, (chunk(big[i:i + 8192]) for i in range(0, len(big), 8192)), len(big) * 2)
            with pytest.raises(OSError):  # nothing more is read: the server answered and closes
                for _ in range(100):
                    s.sendall(chunk(b" " * 65_536))
                    time.sleep(0.01)
            status = response_or_reset(s)[0]
            assert sent and status in (413, 200, 0)  # a GET that reads no body is answered before the rest
    assert live(bounded) == 200


@pytest.mark.parametrize("raw", [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                                 b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n",
                                 b"POST /classify HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
def test_a_malformed_request_gets_a_json_400_and_no_server_name(bounded, raw):
    with socket.create_connection(("127.0.0.1", bounded.port)) as s:
        s.sendall(raw)
        status, headers, body = read_response(s)
        assert status == 400 and json.loads(body)["error"] == "invalid_http_request" and "server" not in headers
    r = httpx.get(f"{bounded.url}/health/live")
    assert r.status_code == 200 and "server" not in r.headers


# ------------------------------------------------------------------ validation errors

@pytest.mark.parametrize("route", ["/classify", f"/v2/models/{MODEL}/infer"])
def test_a_list_of_500k_wrong_elements_is_one_small_error(bounded, route):
    ints = b"[" + b",".join([b"1"] * 500_000) + b"]"
    body = (b'{"texts": ' + ints + b"}" if route == "/classify" else
            b'{"inputs": [{"name": "text", "shape": [500000], "datatype": "BYTES", "data": ' + ints + b"}]}")
    t0 = time.monotonic()
    r = httpx.post(bounded.url + route, content=body, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 422 and len(r.content) < 4096, (r.status_code, len(r.content))
    assert time.monotonic() - t0 < 5
    assert live(bounded) == 200


# ------------------------------------------------------------------ v2 binary tensors

def test_binary_tensor_of_262k_empty_texts_is_refused_after_max_texts(bounded):
    raw = struct.pack("<I", 0) * 262_000
    header = json.dumps({"inputs": [{"name": "text", "shape": [262_000], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    r = httpx.post(f"{bounded.url}/v2/models/{MODEL}/infer", content=header + raw,
                   headers={"inference-header-content-length": str(len(header)),
                            "content-type": "application/octet-stream"}, timeout=30)
    assert r.status_code == 413 and r.json()["code"] == "too_many_texts"


# ------------------------------------------------------------------ exposure

def test_health_ready_names_no_model(bounded):
    r = httpx.get(f"{bounded.url}/health/ready")
    assert r.status_code == 200 and r.json() == {"status": "ready"}


@pytest.mark.parametrize("public", [False, True])
def test_metrics_need_an_api_key_when_only_api_keys_are_set(quick_run, public):
    env = {"SLIMTEXT_API_KEYS": API_KEY, **({"SLIMTEXT_METRICS_PUBLIC": "true"} if public else {})}
    with Server(quick_run[0], env=env) as srv:
        plain = httpx.get(f"{srv.url}/metrics")
        assert plain.status_code == (200 if public else 401)
        keyed = httpx.get(f"{srv.url}/metrics", headers={"Authorization": f"Bearer {API_KEY}"})
        assert keyed.status_code == 200 and "slimtext_requests_total" in keyed.text


# ------------------------------------------------------------------ gRPC

def infer_bytes(texts: int = 1, inputs: int = 1) -> bytes:
    req = pb.ModelInferRequest(model_name=MODEL)
    for _ in range(inputs):
        t = req.inputs.add(name="text", datatype="BYTES", shape=[texts])
        t.contents.bytes_contents.extend([b""] * texts)
    return req.SerializeToString()


def raw_call(port: int, payload: bytes, timeout: float = 20):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.unary_unary(INFER, request_serializer=None, response_deserializer=None)
        try:
            call(payload, timeout=timeout)
            return grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            return e.code(), e.details()


def test_grpc_answers_and_refuses_input_and_text_bombs(bounded):
    assert raw_call(bounded.grpc_port, infer_bytes(texts=2))[0] == grpc.StatusCode.OK
    code, details = raw_call(bounded.grpc_port, infer_bytes(texts=0, inputs=50_000))  # ~0.9 MB of inputs
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "50000 inputs" in details
    code, details = raw_call(bounded.grpc_port, infer_bytes(texts=262_000))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_texts" in details
    code, _ = raw_call(bounded.grpc_port, b"\xff\xff\xff\xff")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert live(bounded) == 200


def test_grpc_shares_the_admission_slots_of_http(bounded):
    stalled = []
    try:
        for _ in range(2):  # both POST slots (SLIMTEXT_MAX_IN_FLIGHT=2) held by stalled HTTP bodies
            s = socket.create_connection(("127.0.0.1", bounded.port))
            s.sendall(post(b"x" * 1000)[:-1000])
            stalled.append(s)
        time.sleep(0.2)
        code, details = raw_call(bounded.grpc_port, infer_bytes(texts=1))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "capacity" in details
    finally:
        for s in stalled:
            s.close()
    time.sleep(0.3)
    assert raw_call(bounded.grpc_port, infer_bytes(texts=1))[0] == grpc.StatusCode.OK
