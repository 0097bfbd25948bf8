"""GET /metrics (Prometheus text format) and the benchmark's constant endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from service.metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])
bench_router = APIRouter(tags=["operations"])  # included only with SLIMTEXT_ENABLE_BENCH


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


@bench_router.post("/bench/constant", summary="Returns a constant: FastAPI's own per-request cost, for benchmarks")
async def constant() -> dict:
    return {"model": "constant", "predictions": [{"label": "positive", "score": 1.0}]}


RAW_PATH = "/bench/raw"
_RAW_BODY = b'{"model":"constant","predictions":[{"label":"positive","score":1.0}]}'


async def raw_constant(scope, receive, send) -> None:
    """POST /bench/raw (SLIMTEXT_ENABLE_BENCH): the same constant as /bench/constant from a raw ASGI endpoint
    behind the same edges as /classify: the floor of the serving stack (protocol, admission, dispatch)."""
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(_RAW_BODY)).encode())]})
    await send({"type": "http.response.body", "body": _RAW_BODY})
