"""POST /classify: the native API's adapter around the core, as a pure ASGI endpoint.

It is the only implementation of the route: `create_app` dispatches POST /classify here before FastAPI
(whose routing, dependency and middleware layers cost about as much CPU per request as the whole model).
`doc_router` only declares the route for the OpenAPI schema; it is never mounted.
"""

from __future__ import annotations

import logging

import numpy as np
import orjson
from fastapi import APIRouter

from service.body import BodyTooLarge, read_limited
from service.classify import Classifier, Texts, parse_json, server_timing
from service.domain import Classification, DomainError, ModelUnavailable
from service.errors import body_too_large, error_body, http_status, retry_headers
from service.offload import ClientGone, Watch
from service.schemas import ClassifyRequest, ClassifyResponse, ErrorResponse, inline_schema

log = logging.getLogger("slimtext.classify")
PATH = "/classify"
GONE = 499  # nginx's "client closed request": nobody reads it, the access log shows it


def build_predictions(probs: np.ndarray, lengths: np.ndarray, labels: list[str] | tuple[str, ...],
                      top_k: int | None) -> list[dict]:
    rows = probs.tolist()
    order = np.argsort(-probs, axis=1)[:, : min(top_k, len(labels))].tolist() if top_k else None
    out = []
    for i, (row, n) in enumerate(zip(rows, lengths.tolist(), strict=True)):
        b = row.index(max(row))
        pred = {"label": labels[b], "score": row[b], "probabilities": dict(zip(labels, row, strict=True)),
                "n_tokens": n}
        if order is not None:
            pred["top_k"] = [{"label": labels[j], "score": row[j]} for j in order[i]]
        out.append(pred)
    return out


def render(result: Classification, top_k: int | None) -> bytes:
    return orjson.dumps({"model": result.model, "version": result.version, "predictions": build_predictions(
        result.probabilities, result.n_tokens, result.labels, top_k)})


class ClassifyEndpoint:
    """POST /classify as ASGI: read the capped body, parse (off the loop when large), classify, render."""

    def __init__(self, get_classifier):
        self._get = get_classifier  # the classifier exists once the lifespan ran

    async def __call__(self, scope, receive, send) -> None:
        content_type, declared = "", None
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == b"content-length":
                declared = value
        classifier: Classifier | None = self._get()
        watch = Watch(receive)
        status, headers, label = 200, {}, "-"
        try:
            if classifier is None:
                raise ModelUnavailable("models are still loading", code="not_ready")
            limit = classifier.settings.max_body_bytes
            try:
                body = await read_limited(receive, limit, declared)
            except BodyTooLarge:
                raise body_too_large(limit) from None
            req = await classifier.parse(lambda: parse_json(ClassifyRequest, body, content_type), len(body), watch)
            result = await classifier.classify(Texts(req.all_texts(), req.model, req.version), watch)
            label, reply = result.model, render(result, req.top_k)
            headers = {"server-timing": server_timing(result.timing)}
        except DomainError as e:
            status, label = http_status(e), getattr(e, "model", "-")
            reply = error_body(e.code, e.message, e.details)
            headers = retry_headers(e, classifier)
        except ClientGone:
            if classifier is not None:
                classifier.metrics.client_aborted("classify")
            return
        except Exception:  # never a bare 500 without a JSON body
            log.exception("unhandled error in /classify")
            status, reply = 500, error_body("internal_error", "unexpected server error")
        finally:
            await watch.stop()  # a request sent to the worker watched for its client's disconnect
        if classifier is not None:
            classifier.count(label, "classify", status)
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(reply)).encode())]
        raw += [(k.encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": reply})


ERRORS = {code: {"model": ErrorResponse, "description": text} for code, text in {
    400: "no model named and no default model configured", 404: "unknown model or version",
    413: "a size limit exceeded (body, texts or characters)",
    415: "content type is not application/json", 422: "malformed JSON or a field of the wrong shape",
    503: "models not loaded yet, or the server is at capacity"}.items()}
doc_router = APIRouter(tags=["classify"])  # the schema of ClassifyEndpoint, for /openapi.json only


@doc_router.post(
    PATH, response_model=ClassifyResponse, responses=ERRORS, summary="Classify one or more texts",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": inline_schema(ClassifyRequest)}}}},
)
async def classify() -> None:  # pragma: no cover - documentation only; served by ClassifyEndpoint
    raise NotImplementedError
