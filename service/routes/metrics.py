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
