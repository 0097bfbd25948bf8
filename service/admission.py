"""Admission control in front of every request: bounded bodies per route, bounded POSTs and body bytes in flight.

- Body caps by route: the inference routes (POST /classify, POST /v2/models/.../infer) read up to
  `max_body_bytes` themselves; every other route (the repository API, health, models, ...) takes at most
  `max_control_body_bytes`. A declared Content-Length over the cap gets 413 before a byte is read; a chunked
  body is cut when it passes the cap (the app sees a disconnect, the client a 413).
- Checked as soon as the request head is in, before any body byte is read: over `max_in_flight`
  requests or `max_body_bytes_in_flight` declared (Content-Length) bytes, a POST gets a fast
  503 + Retry-After JSON and its connection is closed (the unread body is not consumed). So memory is
  bounded by configuration, not by how many clients connect. GETs (health, metrics, models) are never shed.
  gRPC calls take the same slots (`try_admit` / `release`, service/grpc_server.py).
"""

from __future__ import annotations

import logging
import random

from service.errors import error_body

log = logging.getLogger("slimtext.admission")


def is_inference(scope) -> bool:
    """The routes that read a body up to max_body_bytes (and enforce it themselves)."""
    path = scope["path"]
    return scope["method"] == "POST" and (path == "/classify" or path.startswith("/v2/models/")
                                          and path.endswith("/infer"))


def content_length(headers) -> int | None:
    """The declared body size; None without one (chunked, or none at all)."""
    for key, value in headers:
        if key == b"content-length":
            return int(value) if value.isdigit() else None  # httptools already refused a malformed one
    return None


class Admission:
    """An ASGI wrapper; `offloader` (service/offload.py) is reported beside it in /metrics."""

    def __init__(self, app, max_in_flight: int, max_body_bytes: int, retry_after_s: int, fallback_body: int,
                 control_body: int = 16_384, offloader=None):
        self.app = app
        self.control_body = control_body  # the body cap of every route but inference
        self.max_in_flight, self.max_body_bytes = max_in_flight, max_body_bytes
        self.retry_after_s = retry_after_s
        self.fallback_body = fallback_body  # charged for a body without Content-Length (chunked): the body cap
        self.in_flight = 0
        self.body_bytes = 0
        self.shed = 0
        self.offloader = offloader

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = content_length(scope["headers"])
        if not is_inference(scope):
            if length is not None and length > self.control_body:
                await _too_large(send, self.control_body)
                return
            capped = CappedBody(receive, send, self.control_body)
            receive, send = capped.receive, capped.send
        else:
            capped = None
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
        else:
            await self._admit(scope, receive, send, length)
        if capped is not None and capped.over and not capped.started:
            await capped.reply_413()

    async def _admit(self, scope, receive, send, length: int | None) -> None:
        # charged the body cap when not declared (chunked); a bigger declared one is refused with 413 unread
        declared = min(self.fallback_body if length is None else length, self.fallback_body)
        if not self.try_admit(declared):
            await self._reject(send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.release(declared)

    def try_admit(self, declared: int) -> bool:
        """Take a slot and `declared` body bytes, or count a shed request and say no."""
        if self.in_flight >= self.max_in_flight or self.body_bytes + declared > self.max_body_bytes:
            self.shed += 1
            return False
        self.in_flight += 1
        self.body_bytes += declared
        return True

    def release(self, declared: int) -> None:
        self.in_flight -= 1
        self.body_bytes -= declared

    async def _reject(self, send) -> None:
        await _close_with(send, 503, error_body("overloaded", "the server is at its configured capacity; retry later"),
                          [(b"retry-after", self._retry_after())])

    def _retry_after(self) -> bytes:
        """Retry-After spread over [n, 2n] s: clients shed together must not all come back in the same instant."""
        return str(self.retry_after_s + random.randint(0, self.retry_after_s)).encode()

    # name -> (kind, help): /metrics shows them as slimtext_<name>, summed over workers (service/metrics.py)
    FIGURES = {
        "shed_requests": ("counter", "POSTs refused with 503 by admission control or a full worker queue"),
        "admitted_body_bytes": ("gauge", "Declared body bytes of POSTs in flight"),
        "skipped_gone": ("counter", "Queued jobs skipped: the client had disconnected"),
        "worker_queue": ("gauge", "Jobs queued or running in the worker thread"),
    }

    def figures(self) -> dict[str, float]:
        off = self.offloader
        return {"shed_requests": self.shed + (off.rejected if off else 0), "admitted_body_bytes": self.body_bytes,
                "skipped_gone": off.skipped if off else 0, "worker_queue": off.pending if off else 0}


async def _close_with(send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    """A JSON error sent before the body was read, so the connection is closed after it."""
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        *(extra or []), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


async def _too_large(send, limit: int) -> None:
    message = f"request body over the {limit}-byte limit of this route"
    await _close_with(send, 413, error_body("body_too_large", message))


class CappedBody:
    """receive/send of one request whose body may not pass `limit`: past it the app sees http.disconnect,
    its reply is dropped, and `reply_413` answers instead (if no reply had started)."""

    def __init__(self, receive, send, limit: int):
        self._receive, self._send, self.limit = receive, send, limit
        self.size, self.over, self.started = 0, False, False

    async def receive(self):
        if self.over:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            if self.size > self.limit:
                self.over = True
                return {"type": "http.disconnect"}
        return message

    async def send(self, message) -> None:
        if self.over and not self.started:
            return
        self.started = True
        await self._send(message)

    async def reply_413(self) -> None:
        await _too_large(self._send, self.limit)
