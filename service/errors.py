"""Every error leaves as JSON: {"error": code, "message": text, "details": [...]}.

HTTP's error table: the status of each domain error (service/domain.py), used by /classify and /v2 REST
(which renders the same error in the Open Inference Protocol's shape). `ApiError` is for what only an
HTTP route can get wrong (a static file that is not there, a repository body that is not an object).
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from service import domain
from service.domain import validation_details, validation_message

log = logging.getLogger("slimtext.errors")


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, details: list | None = None):
        super().__init__(message)
        self.status, self.error, self.message, self.details = status, error, message, details


HTTP_STATUS: dict[type[domain.DomainError], int] = {  # the most specific class wins (checked along the MRO)
    domain.Malformed: 400, domain.Unsupported: 415, domain.TooLarge: 413, domain.BadInput: 422,
    domain.UnknownModel: 404, domain.NoDefaultModel: 400, domain.ModelUnavailable: 503, domain.Overloaded: 503,
    domain.Conflict: 409, domain.LoadFailed: 400, domain.DomainError: 500,
}


def http_status(error: domain.DomainError) -> int:
    return next(HTTP_STATUS[k] for k in type(error).__mro__ if k in HTTP_STATUS)


def retry_headers(error: domain.DomainError, classifier) -> dict[str, str]:
    """Retry-After for an Overloaded error: the classifier's retry_after_s (1 s while it is not built yet)."""
    if not isinstance(error, domain.Overloaded):
        return {}
    return {"retry-after": str(classifier.settings.retry_after_s if classifier is not None else 1)}


def body_too_large(limit: int) -> domain.TooLarge:
    return domain.TooLarge(f"request body over max_body_bytes={limit}", code="body_too_large")


def declared_too_large(content_length: str | bytes | None, limit: int) -> bool:
    """The Content-Length header already says the body is over the limit."""
    return content_length is not None and content_length.isdigit() and int(content_length) > limit


def error_body(error: str, message: str, details: list | None = None) -> bytes:
    return orjson.dumps({"error": error, "message": message, "details": details})


def error_response(status: int, error: str, message: str, details: list | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(error, message, details), status_code=status, media_type="application/json",
                    headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.error, exc.message, exc.details)

    @app.exception_handler(domain.DomainError)
    async def _domain_error(request: Request, exc: domain.DomainError) -> Response:
        headers = retry_headers(exc, getattr(request.app.state, "classifier", None))
        return error_response(http_status(exc), exc.code, exc.message, exc.details, headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        errs = exc.errors()
        return error_response(422, "invalid_request", validation_message(len(errs)), validation_details(list(errs)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/v2/"):  # the Open Inference Protocol's error shape
            return Response(orjson.dumps({"error": f"{exc.detail}: {request.method} {request.url.path[:200]}",
                                          "code": "http_error"}), status_code=exc.status_code,
                            media_type="application/json", headers=exc.headers)
        return error_response(exc.status_code, "http_error", str(exc.detail), headers=exc.headers)

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(request: Request, _: ClientDisconnect) -> Response:
        """The client hung up before its body was read: one INFO line and a counter, no traceback.
        The reply is dropped by the server, as nobody is there to read it."""
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.client_aborted(request.url.path)
        return error_response(499, "client_closed_request", "the client closed the connection")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "unexpected server error")
