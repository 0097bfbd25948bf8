"""POST /classify through FastAPI: documents the endpoint, and serves it when the fast path is off.
Both paths call the same `Classifier` core (service/classify.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from service.classify import Classifier, Reply
from service.deps import get_classifier
from service.errors import body_too_large, declared_too_large
from service.fastpath import BodyTooLarge, read_limited
from service.offload import ClientGone, Watch
from service.schemas import ClassifyRequest, ClassifyResponse, ErrorResponse, inline_schema

router = APIRouter(tags=["classify"])

ERRORS = {code: {"model": ErrorResponse, "description": text} for code, text in {
    400: "no model named and no default model configured", 404: "unknown model or version",
    413: "a size limit exceeded (body, texts or characters)",
    415: "content type is not application/json", 422: "malformed JSON or a field of the wrong shape",
    503: "models not loaded yet"}.items()}


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read by the fast path's reader (one size-capped reader for every route that takes a body)."""
    if declared_too_large(request.headers.get("content-length"), limit):
        raise body_too_large(limit)
    try:
        return await read_limited(request.receive, limit)
    except BodyTooLarge as e:
        raise body_too_large(limit) from e
    except ClientGone as e:  # as request.stream() would: the 499 handler in service/errors.py
        raise ClientDisconnect from e


GONE = 499  # nginx's "client closed request": nobody reads it, the access log shows it


async def watched(classifier: Classifier, request: Request, where: str, call) -> Reply | None:
    """`call(watch)`: a job that goes to the worker thread is skipped when its client has already
    disconnected (like the /classify fast path); None then, counted as a client abort."""
    watch = Watch(request.receive)
    try:
        return await call(watch)
    except ClientGone:
        classifier.metrics.client_aborted(where)
        return None
    finally:
        await watch.stop()


async def reply_from(classifier: Classifier, request: Request, call) -> Response:
    body = await read_body(request, classifier.settings.max_body_bytes)
    content_type = request.headers.get("content-type", "")
    reply = await watched(classifier, request, "classify", lambda watch: call(content_type, body, watch))
    if reply is None:
        return Response(status_code=GONE)
    return Response(reply.body, status_code=reply.status, media_type="application/json", headers=reply.headers)


@router.post(
    "/classify", response_model=ClassifyResponse, responses=ERRORS, summary="Classify one or more texts",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": inline_schema(ClassifyRequest)}}}},
)
async def classify(request: Request) -> Response:
    classifier = get_classifier(request)
    return await reply_from(classifier, request, classifier.classify)
