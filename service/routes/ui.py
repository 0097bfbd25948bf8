"""The model page: `GET /` (one HTML page + one small script and stylesheet from service/static/, no CDN,
no build step) and `GET /stats`, the JSON the page draws: every served model side by side with its sizes,
accuracy, and live request counts and latency percentiles read from the service's own metrics.

Two routers, so that access control can be wired per router: `page_router` (the page and its static
files: no data in them) and `router` (`/stats`, model data like `/models`). The page sends the API key
typed into it (kept in sessionStorage) as `Authorization: Bearer` on every call it makes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.responses import HTMLResponse, Response

from service.classify import Classifier
from service.deps import get_classifier
from service.errors import ApiError
from service.metrics import Histogram
from service.schemas import Latency, ModelStats, Stats

STATIC = Path(__file__).resolve().parent.parent / "static"
_FILES = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}

router = APIRouter(tags=["ui"])
page_router = APIRouter(include_in_schema=False)


def quantile(h: Histogram, q: float) -> float | None:
    """The q-quantile of a bucketed histogram, interpolated linearly inside its bucket (as Prometheus'
    histogram_quantile); None when empty. Values in the +Inf bucket report the last finite bound."""
    total = sum(h.counts)
    if total == 0:
        return None
    rank, running, lower = q * total, 0, 0.0
    for upper, n in zip(h.upper, h.counts, strict=False):
        if n and running + n >= rank:
            return lower + (upper - lower) * (rank - running) / n
        running, lower = running + n, upper
    return h.upper[-1]


def page_stats(classifier: Classifier) -> Stats:
    metrics, registry = classifier.metrics, classifier.registry
    requests: dict[str, list[int]] = {}
    for (model, _endpoint, status), n in list(metrics.requests.items()):
        counts = requests.setdefault(model, [0, 0])
        counts[0] += n
        counts[1] += n if int(status) >= 400 else 0
    out = []
    for name, m in registry.models.items():
        man = m.classifier.manifest
        h = metrics.latency.get((name, "total"))
        p50, p99 = (quantile(h, 0.5), quantile(h, 0.99)) if h is not None else (None, None)
        total, errors = requests.get(name, [0, 0])
        out.append(ModelStats(
            name=name, kind=man.kind, architecture=man.architecture, dataset=man.dataset, labels=man.labels,
            default=name == registry.default, rank=man.rank, onnx_bytes=man.onnx_bytes, params=man.params.total,
            embedding_compression=man.embedding_compression, rss_growth_bytes=m.rss_growth_bytes,
            dev_accuracy=man.accuracy.dev, test_accuracy=man.accuracy.test, requests=total, errors=errors,
            latency=Latency(p50_ms=p50 * 1e3, p99_ms=p99 * 1e3) if p50 is not None else None))
    out.sort(key=lambda s: s.onnx_bytes)
    return Stats(default=registry.default, models=out)


@router.get("/stats", response_model=Stats, summary="Served models side by side, with live request counts "
            "and latency (the data of the page at /)")
async def stats(classifier: Annotated[Classifier, Depends(get_classifier)]) -> Stats:
    return page_stats(classifier)


@page_router.get("/", response_class=HTMLResponse)
async def page() -> HTMLResponse:
    return HTMLResponse(_PAGE)


@page_router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in _ASSETS:
        raise ApiError(404, "not_found", "no such static file")
    return Response(_ASSETS[name], media_type=_FILES[name], headers={"cache-control": "no-cache"})


# read once at import: the page and its two files are small and never change while serving
_PAGE = (STATIC / "index.html").read_text(encoding="utf-8")
_ASSETS = {name: (STATIC / name).read_bytes() for name in _FILES}
