"""The model page's server side (`/`, `/static/*`, `GET /stats`) and the offline API docs, against a real
uvicorn; the page itself in a browser is tests/test_ui_browser.py."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from service import docs
from service.metrics import LATENCY_BUCKETS, Histogram
from service.routes.ui import quantile

POSITIVE = "a gorgeous , witty , seductive movie ."
EXTERNAL = re.compile(r"(?:src|href)=[\"'](?:https?:)?//", re.I)


def get(server, path: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", timeout=10)


def test_page_and_its_files_load_nothing_from_elsewhere(server):
    page = get(server, "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="static/app.js"' in page.text and 'href="static/style.css"' in page.text
    assert not EXTERNAL.search(page.text)
    js, css = get(server, "/static/app.js"), get(server, "/static/style.css")
    assert js.headers["content-type"].startswith("text/javascript") and "Authorization" in js.text
    assert css.headers["content-type"].startswith("text/css")
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", js.text + css.text)  # only the SVG namespace
    missing = get(server, "/static/../main.py")
    assert missing.status_code == 404 and missing.json()["error"] in {"not_found", "http_error"}
    assert get(server, "/static/nope.js").json()["error"] == "not_found"


def test_stats_match_models_and_count_live_traffic(server):
    before = {m["name"]: m["requests"] for m in get(server, "/stats").json()["models"]}
    for _ in range(3):
        r = httpx.post(f"{server.url}/classify", json={"texts": [POSITIVE], "model": "sst2-dan-int8"}, timeout=10)
        assert r.status_code == 200
    stats = get(server, "/stats").json()
    models = {m["manifest"]["name"]: m for m in get(server, "/models").json()["models"]}
    assert stats["default"] == "sst2-dan-lowrank" and {m["name"] for m in stats["models"]} == set(models)
    assert [m["onnx_bytes"] for m in stats["models"]] == sorted(m["onnx_bytes"] for m in stats["models"])
    for m in stats["models"]:
        man = models[m["name"]]["manifest"]
        assert (m["kind"], m["rank"], m["onnx_bytes"], m["params"]) == (man["kind"], man["rank"], man["onnx_bytes"],
                                                                       man["params"]["total"])
        assert m["test_accuracy"] == man["accuracy"]["test"] and m["dev_accuracy"] == man["accuracy"]["dev"]
        assert m["rss_growth_bytes"] == models[m["name"]]["rss_growth_bytes"]
    int8 = next(m for m in stats["models"] if m["name"] == "sst2-dan-int8")
    assert int8["requests"] - before["sst2-dan-int8"] == 3 and int8["errors"] == 0
    assert 0 < int8["latency"]["p50_ms"] <= int8["latency"]["p99_ms"] < 2500


def test_quantile_interpolates_inside_the_bucket():
    h = Histogram(LATENCY_BUCKETS)
    assert quantile(h, 0.5) is None
    for v in (30e-6, 40e-6, 60e-6, 80e-6):  # two in (25, 50] us, two in (50, 100] us
        h.observe(v)
    assert quantile(h, 0.5) == pytest.approx(50e-6)
    assert quantile(h, 0.75) == pytest.approx(75e-6)
    assert quantile(h, 0.25) == pytest.approx(37.5e-6)
    h.observe(100.0)  # +Inf bucket: reported as the last finite bound
    assert quantile(h, 1.0) == LATENCY_BUCKETS[-1]


@pytest.mark.parametrize(("path", "asset"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")])
def test_docs_serve_their_assets_from_the_package(server, path, asset):
    page = get(server, path)
    assert page.status_code == 200 and not EXTERNAL.search(page.text) and "cdn." not in page.text
    assert f"/docs-static/{asset}" in page.text
    js = get(server, f"/docs-static/{asset}")
    assert js.status_code == 200 and len(js.content) > 100_000
    paths = get(server, "/openapi.json").json()["paths"]
    assert "/classify" in paths and "/stats" in paths and "/" not in paths and "/docs-static" not in str(paths)


def test_docs_install_is_a_no_op_without_an_openapi_schema():
    app = FastAPI(openapi_url=None)
    before = [getattr(r, "path", None) for r in app.router.routes]
    docs.install(app)
    assert [getattr(r, "path", None) for r in app.router.routes] == before
    assert "/docs" not in before and "/docs-static" not in before


API_KEY = "page-test-key-0123456789"


@pytest.fixture(scope="module")
def keyed(quick_run):
    from tests.conftest import Server

    srv = Server(quick_run[0], env={"SLIMTEXT_API_KEYS": API_KEY})
    srv.wait_ready()
    yield srv
    srv.stop()


def test_with_api_keys_the_page_is_public_and_its_data_is_not(keyed):
    for path in ("/", "/static/app.js", "/static/style.css"):
        assert get(keyed, path).status_code == 200, path
    r = get(keyed, "/stats")
    assert r.status_code == 401 and r.json()["error"] == "unauthorized" and "sst2" not in r.text
    ok = httpx.get(f"{keyed.url}/stats", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    assert ok.status_code == 200 and len(ok.json()["models"]) == 3
    assert get(keyed, "/docs").status_code == 401 and get(keyed, "/docs-static/swagger-ui.css").status_code == 401
