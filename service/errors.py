"""Every error leaves as JSON: {"error": code, "message": text, "details": [...]}."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

log = logging.getLogger("slimtext.errors")


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, details: list | None = None):
        super().__init__(message)
        self.status, self.error, self.message, self.details = status, error, message, details


def body_too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"request body over max_body_bytes={limit}")


def declared_too_large(content_length: str | bytes | None, limit: int) -> bool:
    """The Content-Length header already says the body is over the limit."""
    return content_length is not None and content_length.isdigit() and int(content_length) > limit


def error_body(error: str, message: str, details: list | None = None) -> bytes:
    return orjson.dumps({"error": error, "message": message, "details": details})


def error_response(status: int, error: str, message: str, details: list | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(error, message, details), status_code=status, media_type="application/json",
                    headers=headers)


MAX_ERROR_DETAILS = 10  # an error body lists at most this many problems (a 1 MiB body can hold 500k of them)


def validation_details(errors: list[dict]) -> list[dict]:
    """The first MAX_ERROR_DETAILS of pydantic's errors, without the echoed input (which may be megabytes)."""
    return [{"loc": [str(p)[:64] if isinstance(p, str) else p for p in e.get("loc", ())][:8],
             "msg": str(e.get("msg", ""))[:200], "type": str(e.get("type", ""))[:64]}
            for e in errors[:MAX_ERROR_DETAILS]]


def validation_message(count: int) -> str:
    shown = f"; the first {MAX_ERROR_DETAILS} in details" if count > MAX_ERROR_DETAILS else ""
    return f"request does not match the schema ({count} error{'s' if count != 1 else ''}{shown})"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.error, exc.message, exc.details)

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
