"""The model page and /docs in a real headless browser: Debian's Chromium (/usr/bin/chromium, from
`apt-get install chromium`) driven by Playwright (no browser download), against a real uvicorn on loopback.
Skips, saying why, when Chromium or Playwright is missing. Screenshots land in $SLIMTEXT_SCREENSHOTS
(a folder) when set, else in the test's temp folder."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from bench.screenshots import chromium_path, launch

SENTENCE = "a gorgeous , witty , seductive movie ."

pytestmark = pytest.mark.skipif(chromium_path() is None,
                                reason="no Chromium at /usr/bin/chromium: apt-get install -y chromium "
                                       "(.ci/run does this where apt-get exists)")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (dev extra)")
    with sync_api.sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


@pytest.fixture
def page(browser, server, tmp_path, request):
    """A fresh tab that records every request it makes and every script error."""
    ctx = browser.new_context(viewport={"width": 1180, "height": 900})
    p = ctx.new_page()
    p.requests, p.errors = [], []
    p.on("request", lambda r: p.requests.append(r))
    p.on("pageerror", lambda e: p.errors.append(str(e)))
    p.on("console", lambda m: p.errors.append(m.text) if m.type == "error" else None)
    p.set_default_timeout(15_000)
    p.shots = Path(os.environ.get("SLIMTEXT_SCREENSHOTS") or tmp_path)
    p.shots.mkdir(parents=True, exist_ok=True)
    yield p
    ctx.close()
    assert p.errors == [], p.errors
    assert all(r.url.startswith((server.url, "data:")) for r in p.requests), [r.url for r in p.requests]  # no CDN


def test_model_page_rows_chart_and_classify_with_every_model(page, server):
    names = sorted(m["manifest"]["name"] for m in httpx.get(f"{server.url}/models", timeout=10).json()["models"])
    page.goto(server.url + "/")
    page.wait_for_function(f"document.querySelectorAll('#models tbody tr').length === {len(names)}")
    rows = page.locator("#models tbody tr")
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.model)")) == names
    low = page.locator("#models tbody tr[data-model='sst2-dan-lowrank'] td")
    assert low.nth(1).inner_text() == "lowrank" and low.nth(3).inner_text().endswith("KiB")
    assert "default" in low.nth(0).inner_text()

    points = page.locator("#chart svg g.point")
    assert sorted(points.evaluate_all("gs => gs.map(g => g.dataset.model)")) == names
    axis = page.locator("#chart svg").text_content()
    assert "test accuracy (%)" in axis and ("KiB" in axis or "MiB" in axis)
    xs = {n: float(page.locator(f"#chart g.point[data-model='{n}'] circle").get_attribute("cx")) for n in names}
    assert xs["sst2-dan-lowrank"] < xs["sst2-dan-int8"] < xs["sst2-dan-full"]  # file size grows to the right

    page.fill("#text", SENTENCE)
    page.click("#classify")
    page.wait_for_function(f"document.querySelectorAll('#results .result').length === {len(names)}")
    for name in names:
        expected = httpx.post(f"{server.url}/classify", json={"text": SENTENCE, "model": name}, timeout=10)
        pred = expected.json()["predictions"][0]
        card = page.locator(f"#results .result[data-model='{name}']")
        assert card.locator(".label").inner_text() == pred["label"]
        assert f"score {pred['score']:.4f}" in card.inner_text()
        assert card.locator(".prob").count() == len(pred["probabilities"])
    # the table's live counters moved (refreshed after classifying)
    page.wait_for_function("[...document.querySelectorAll('#models td.requests')].every(td => td.textContent !== '0')")
    page.screenshot(path=str(page.shots / "models-page.png"), full_page=True)


def test_api_key_is_kept_in_the_tab_and_sent_as_bearer(page, server):
    page.goto(server.url + "/")
    page.wait_for_selector("#models tbody tr")
    page.fill("#api-key", "test-key-123")
    with page.expect_request(lambda r: r.url.endswith("/stats")) as req:
        page.click("#key-form button")
    assert req.value.headers.get("authorization") == "Bearer test-key-123"
    assert page.evaluate("sessionStorage.getItem('slimtext-api-key')") == "test-key-123"
    page.reload()
    assert page.input_value("#api-key") == "test-key-123"


def test_docs_render_the_classify_operation_offline(page, server):
    page.goto(server.url + "/docs")
    op = page.locator(".opblock-summary-path[data-path='/classify']")
    op.wait_for()
    assert op.is_visible()
    page.screenshot(path=str(page.shots / "docs.png"))


def test_page_asks_for_the_key_when_the_service_needs_one(browser, quick_run):
    from tests.conftest import Server

    key = "browser-test-key-0123456789"
    srv = Server(quick_run[0], env={"SLIMTEXT_API_KEYS": key})
    ctx = browser.new_context()
    try:
        srv.wait_ready()
        page = ctx.new_page()
        page.goto(srv.url + "/")
        page.wait_for_function("document.getElementById('status').textContent.includes('needs an API key')")
        assert page.locator("#models tbody tr").count() == 0
        page.fill("#api-key", key)
        page.click("#key-form button")
        page.wait_for_function("document.querySelectorAll('#models tbody tr').length === 3")
        assert page.locator("#status").inner_text() == ""
        page.fill("#text", SENTENCE)
        page.click("#classify")
        page.wait_for_function("document.querySelectorAll('#results .result .label').length === 3")
    finally:
        ctx.close()
        srv.stop()
