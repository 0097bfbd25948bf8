"""POST /classify as a pure ASGI app in front of FastAPI.

FastAPI's routing, dependency and middleware layers cost about as much CPU per request as the
whole model; this path reads the body, calls the same `Classifier` core as the FastAPI route and
writes the bytes itself. Everything else (and lifespan) goes to the FastAPI app unchanged.
"""

from __future__ import annotations

import logging

from service.classify import Reply
from service.errors import body_too_large, declared_too_large, error_body
from service.offload import ClientGone, Watch

log = logging.getLogger("slimtext.fastpath")
_PATH = "/classify"


class BodyTooLarge(Exception):
    pass




async def read_limited(receive, limit: int) -> bytes:
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


class ClassifyFastPath:
    def __init__(self, app):
        self.app = app  # the FastAPI app: its state holds the classifier once the lifespan ran

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != _PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        classifier = getattr(self.app.state, "classifier", None)
        if classifier is None or not classifier.settings.fast_path:
            await self.app(scope, receive, send)
            return
        content_type, declared = "", None
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == b"content-length":
                declared = value
        limit = classifier.settings.max_body_bytes
        watch = Watch(receive)
        try:
            if declared_too_large(declared, limit):
                raise BodyTooLarge
            reply = await classifier.classify(content_type, await read_limited(receive, limit), watch)
        except BodyTooLarge:
            e = body_too_large(limit)
            reply = Reply(e.status, error_body(e.error, e.message))
            classifier.metrics.count("-", "classify", e.status)
        except ClientGone:
            classifier.metrics.client_aborted("classify")
            return
        except Exception:  # never a bare 500 without a JSON body
            log.exception("unhandled error in /classify")
            reply = Reply(500, error_body("internal_error", "unexpected server error"))
        finally:
            await watch.stop()  # a request sent to the worker watched for its client's disconnect
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(reply.body)).encode())]
        headers += [(k.encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})
