"""The red team's attacks on framing, error bodies, route body caps and gRPC (issue 24), run by bench/redteam.py.

Each function runs in the red team's client process against one fresh server on loopback, is bounded in time,
and returns counts (status codes, bytes sent) for the report. `frame_matrix` tries every route x framing once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from collections import Counter

LOOPBACK = "127.0.0.1"
PIECE = 65_536
MODEL = "sst2-dan-lowrank"
INFER_RPC = "/inference.GRPCInferenceService/ModelInfer"


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def chunked_head(path: str, method: str = "POST", extra: str = "") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\n{extra}\r\n").encode()


def length_head(path: str, length: int, method: str = "POST", extra: str = "") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n").encode()


# what each streaming attack sends: (head + preamble, one repeated piece)
SMALL = json.dumps({"texts": ["fine"]}).encode()
STREAMS = {
    "trailers": (chunked_head("/classify") + chunk(SMALL) + b"0\r\n", b"X-T: " + b"t" * (PIECE - 7) + b"\r\n"),
    "trailers_health": (chunked_head("/health/live", "GET") + b"0\r\n", b"X-T: " + b"t" * (PIECE - 7) + b"\r\n"),
    "trailers_nokey": (chunked_head("/classify") + chunk(SMALL) + b"0\r\n", b"X-T: " + b"t" * (PIECE - 7) + b"\r\n"),
    "chunk_ext": (chunked_head("/classify") + b"1;e=", b"e" * PIECE),
    "index_length": (length_head("/v2/repository/index", 300 * 1_048_576), b" " * PIECE),
    "index_chunked": (chunked_head("/v2/repository/index"), chunk(b" " * (PIECE - 8))),
}


async def _status(reader: asyncio.StreamReader) -> int:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return 0
    return int(head.split(b" ", 2)[1])


async def _one_stream(port: int, kind: str, total: int, stats: Counter) -> None:
    start, piece = STREAMS[kind]
    try:
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
    except OSError:
        stats["connect_errors"] += 1
        return
    status = asyncio.ensure_future(_status(reader))
    sent = 0
    try:
        writer.write(start)
        while sent < total and not status.done():
            writer.write(piece)
            await writer.drain()
            sent += len(piece)
    except OSError:
        pass
    stats["sent_bytes"] += sent
    try:
        code = await asyncio.wait_for(status, 5)
    except TimeoutError:
        code = "no_reply"
    stats[str(code)] += 1
    writer.close()


def load_stream(port: int, kinds: list[str], clients: int, seconds: float, total_bytes: int) -> dict:
    """`clients` connections in a loop (client i sends kinds[i % n]), each sending one request whose framing
    (trailers, chunk extension, body) grows towards `total_bytes` until the server answers or stops reading."""
    async def client(kind: str, stats: Counter, until: float) -> None:
        while time.monotonic() < until:
            await _one_stream(port, kind, total_bytes, stats)

    async def run() -> dict:
        stats, until = Counter(), time.monotonic() + seconds
        await asyncio.gather(*(client(kinds[i % len(kinds)], stats, until) for i in range(clients)))
        return dict(stats)
    return asyncio.run(run())


def validation_body(route: str, n: int = 500_000) -> bytes:
    ints = b"[" + b",".join([b"1"] * n) + b"]"
    if route == "/classify":
        return b'{"texts": ' + ints + b"}"
    return (b'{"inputs": [{"name": "text", "shape": [' + str(n).encode() + b'], "datatype": "BYTES", "data": '
            + ints + b"}]}")


def binary_bomb() -> tuple[bytes, str]:
    raw = struct.pack("<I", 0) * 262_000
    header = json.dumps({"inputs": [{"name": "text", "shape": [262_000], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    return header + raw, f"Content-Type: application/octet-stream\r\nInference-Header-Content-Length: {len(header)}\r\n"


async def _reply(reader: asyncio.StreamReader) -> tuple[int, int, bool]:
    """(status, body bytes, server closes) of one reply with a Content-Length; status 0 when none came."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return 0, 0, True
    lines = head.decode("latin-1").lower().split("\r\n")
    length = next((int(ln.split(":", 1)[1]) for ln in lines if ln.startswith("content-length:")), 0)
    try:
        await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return 0, 0, True
    return int(lines[0].split()[1]), length, any(ln == "connection: close" for ln in lines)


def load_posts(port: int, requests: list[bytes], clients: int, seconds: float) -> dict:
    """`clients` keep-alive connections sending the prepared requests (client i sends requests[i % n]) back
    to back, no back-off (an attacker's loop); status counts and the largest reply body."""
    async def client(i: int, stats: Counter, until: float) -> None:
        payload = requests[i % len(requests)]
        while time.monotonic() < until:
            try:
                reader, writer = await asyncio.open_connection(LOOPBACK, port)
            except OSError:
                stats["connect_errors"] += 1
                await asyncio.sleep(0.05)
                continue
            try:
                while time.monotonic() < until:
                    writer.write(payload)
                    await writer.drain()
                    status, size, close = await asyncio.wait_for(_reply(reader), 30)
                    stats[str(status)] += 1
                    stats["max_reply_bytes"] = max(stats["max_reply_bytes"], size)
                    if close or status == 0:
                        break
            except (TimeoutError, OSError):
                stats["socket_errors"] += 1
            finally:
                writer.close()

    async def run() -> dict:
        stats, until = Counter(), time.monotonic() + seconds
        await asyncio.gather(*(client(i, stats, until) for i in range(clients)))
        return dict(stats)
    return asyncio.run(run())


def request(path: str, body: bytes, extra: str = "") -> bytes:
    return length_head(path, len(body), extra=extra) + body


def load_validation_storm(port: int, clients: int, seconds: float) -> dict:
    reqs = [request("/classify", validation_body("/classify")),
            request(f"/v2/models/{MODEL}/infer", validation_body("v2"))]
    return load_posts(port, reqs, clients, seconds)


def load_binary_bomb(port: int, clients: int, seconds: float) -> dict:
    body, extra = binary_bomb()
    return load_posts(port, [request(f"/v2/models/{MODEL}/infer", body, extra)], clients, seconds)


# ------------------------------------------------------------------ gRPC

def infer_message(kind: str) -> bytes:
    from service.proto import open_inference_grpc_pb2 as pb

    req = pb.ModelInferRequest(model_name=MODEL)
    if kind == "small":
        req.inputs.add(name="text", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"fine")
    elif kind == "valid_1mb":  # 256 texts of 4,000 characters: a valid, CPU-heavy call
        t = req.inputs.add(name="text", datatype="BYTES", shape=[256])
        t.contents.bytes_contents.extend([b"!" * 4000] * 256)
    elif kind == "texts_262k":  # 262k zero-length texts
        t = req.inputs.add(name="text", datatype="BYTES", shape=[262_000])
        t.contents.bytes_contents.extend([b""] * 262_000)
    elif kind == "inputs_100k":  # 100k empty input tensors
        for _ in range(100_000):
            req.inputs.add()
    return req.SerializeToString()


def load_grpc(port: int, kind: str, concurrency: int, seconds: float, channels: int = 8) -> dict:
    """`concurrency` ModelInfer calls kept in flight over `channels` connections for `seconds`."""
    import grpc

    payload = infer_message(kind)

    details: dict[str, str] = {}

    async def run() -> dict:
        stats, until = Counter(), time.monotonic() + seconds
        opts = [("grpc.max_send_message_length", 8 << 20), ("grpc.max_receive_message_length", 8 << 20)]
        chans = [grpc.aio.insecure_channel(f"{LOOPBACK}:{port}", options=opts) for _ in range(channels)]
        calls = [ch.unary_unary(INFER_RPC, request_serializer=None, response_deserializer=None) for ch in chans]

        async def one(i: int) -> None:
            while time.monotonic() < until:
                try:
                    await calls[i % channels](payload, timeout=30)
                    stats["OK"] += 1
                except grpc.aio.AioRpcError as e:
                    stats[e.code().name] += 1
                    if e.code() == grpc.StatusCode.UNAVAILABLE and "unavailable_detail" not in details:
                        details["unavailable_detail"] = (e.details() or "")[:200]
                    await asyncio.sleep(0.01)

        await asyncio.gather(*(one(i) for i in range(concurrency)))
        for ch in chans:
            await ch.close()
        stats["message_bytes"] = len(payload)
        return {**stats, **details}
    return asyncio.run(run())


# ------------------------------------------------------------------ every route x every framing, once

ROUTES = [("POST", "/classify"), ("POST", f"/v2/models/{MODEL}/infer"), ("POST", "/v2/repository/index"),
          ("POST", f"/v2/repository/models/{MODEL}/load"), ("GET", "/health/live"), ("GET", "/health/ready"),
          ("GET", "/models"), ("GET", "/metrics"), ("GET", "/stats")]
FRAMINGS = ["length 2 MiB", "chunked 2 MiB", "chunked + 1 MiB trailers", "chunk extension 1 MiB",
            "expect 100-continue, length 300 MiB", "pipelined: 3 small + 1 of 2 MiB"]
BIG = 2 * 1_048_576


def _frames(method: str, path: str, framing: str) -> tuple[bytes, int]:
    """(the bytes of the attack, how many replies a client could expect)."""
    small = SMALL if method == "POST" else b""
    if framing == "length 2 MiB":
        return length_head(path, BIG, method) + b" " * BIG, 1
    if framing == "chunked 2 MiB":
        return chunked_head(path, method) + b"".join(chunk(b" " * PIECE) for _ in range(BIG // PIECE)) + b"0\r\n\r\n", 1
    if framing == "chunked + 1 MiB trailers":
        trailers = b"".join(b"X-T: " + b"t" * (PIECE - 7) + b"\r\n" for _ in range(16))
        return chunked_head(path, method) + (chunk(small) if small else b"") + b"0\r\n" + trailers + b"\r\n", 1
    if framing == "chunk extension 1 MiB":
        return chunked_head(path, method) + b"1;e=" + b"e" * 1_048_576 + b"\r\n \r\n0\r\n\r\n", 1
    if framing == "expect 100-continue, length 300 MiB":
        return length_head(path, 300 * 1_048_576, method, "Expect: 100-continue\r\n"), 1
    one = length_head(path, len(small), method) + small
    return one * 3 + length_head(path, BIG, method) + b" " * BIG, 4


async def _try(port: int, method: str, path: str, framing: str) -> str:
    data, expected = _frames(method, path, framing)
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    statuses: list[str] = []

    async def send() -> None:
        with contextlib.suppress(OSError):
            for i in range(0, len(data), PIECE):
                writer.write(data[i:i + PIECE])
                await writer.drain()

    sender = asyncio.ensure_future(send())
    try:
        for _ in range(expected):
            reply = await asyncio.wait_for(_reply(reader), 10)
            if reply[0] == 0:
                break
            statuses.append(str(reply[0]))
            if reply[2]:
                statuses.append("close")
                break
    except TimeoutError:
        statuses.append("timeout")
    sender.cancel()
    with contextlib.suppress(asyncio.CancelledError, OSError):
        await sender
    writer.close()
    return " ".join(statuses) or "reset"


def frame_matrix(port: int) -> dict:
    """Each route x framing once on a fresh connection: the statuses seen, in order ('close': the server
    said Connection: close; 'reset': it closed with no reply)."""
    async def run() -> dict:
        out = {}
        for method, path in ROUTES:
            for framing in FRAMINGS:
                out[f"{method} {path} | {framing}"] = await _try(port, method, path, framing)
        return out
    return asyncio.run(run())
