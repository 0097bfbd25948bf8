"""Admission control in front of every POST: bounded requests and declared body bytes in flight.

Checked as soon as the request head is in, before any body byte is read: over `max_in_flight`
requests or `max_body_bytes_in_flight` declared (Content-Length) bytes, the request gets a fast
503 + Retry-After JSON and its connection is closed (the unread body is not consumed). So memory is
bounded by configuration, not by how many clients connect. GETs (health, metrics, models) are never shed.
"""

from __future__ import annotations

import logging
import random

from service.errors import error_body

log = logging.getLogger("slimtext.admission")


class Admission:
    """An ASGI wrapper; `offloader` (service/offload.py) is reported beside it in /metrics."""

    def __init__(self, app, max_in_flight: int, max_body_bytes: int, retry_after_s: int, fallback_body: int):
        self.app = app
        self.max_in_flight, self.max_body_bytes = max_in_flight, max_body_bytes
        self.retry_after_s = retry_after_s
        self.fallback_body = fallback_body  # charged for a body without Content-Length (chunked): the body cap
        self.in_flight = 0
        self.body_bytes = 0
        self.shed = 0
        self.offloader = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        declared = self.fallback_body
        for key, value in scope["headers"]:
            if key == b"content-length":
                declared = int(value) if value.isdigit() else self.fallback_body
                break
        declared = min(declared, self.fallback_body)  # a bigger one is refused with 413 before it is read
        if self.in_flight >= self.max_in_flight or self.body_bytes + declared > self.max_body_bytes:
            self.shed += 1
            await self._reject(send)
            return
        self.in_flight += 1
        self.body_bytes += declared
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.body_bytes -= declared

    async def _reject(self, send) -> None:
        body = error_body("overloaded", "the server is at its configured capacity; retry later")
        await send({"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"retry-after", self._retry_after()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

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
