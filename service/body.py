"""The one size-capped body reader: every route that takes a body reads it here (the /classify endpoint
and /v2 infer with the inference cap, the FastAPI routes through `read_body`)."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request

from service.errors import body_too_large, declared_too_large
from service.offload import ClientGone


class BodyTooLarge(Exception):
    pass


async def read_limited(receive, limit: int, declared: str | bytes | None = None) -> bytes:
    """The body from ASGI `receive`; BodyTooLarge past `limit` bytes (or a declared length over it, before a
    byte is read), ClientGone when the client disconnects first."""
    if declared_too_large(declared, limit):
        raise BodyTooLarge
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def read_body(request: Request, limit: int) -> bytes:
    """`read_limited` for a FastAPI route: TooLarge (413) past the limit, the 499 handler when the client left."""
    try:
        return await read_limited(request.receive, limit, request.headers.get("content-length"))
    except BodyTooLarge as e:
        raise body_too_large(limit) from e
    except ClientGone as e:  # as request.stream() would: the 499 handler in service/errors.py
        raise ClientDisconnect from e
