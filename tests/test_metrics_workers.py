"""`python -m service --workers 2`: /metrics sums every worker's numbers, whichever worker answers."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from bench.server import UvicornServer
from service.metrics import prepare_multiprocess

N = 100
SHED = 20
TEXT = {"texts": ["a gorgeous , witty , seductive movie ."]}


def scrape(url: str) -> str:
    with httpx.Client(headers={"Connection": "close"}) as c:  # a new connection: any worker may answer
        return c.get(f"{url}/metrics").text


def value(metrics: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` that carry all of `labels` (in any order)."""
    total = 0.0
    for found, text, number in re.findall(r"^(\w+)(\{[^}]*\})? (\S+)$", metrics, re.M):
        got = dict(re.findall(r'(\w+)="([^"]*)"', text))
        if found == name and all(got.get(k) == v for k, v in labels.items()):
            total += float(number)
    return total


def test_counters_sum_over_two_workers(quick_run, tmp_path):
    shared = tmp_path / "metrics"
    env = {"SLIMTEXT_METRICS_DIR": str(shared), "SLIMTEXT_METRICS_FLUSH_S": "0.2",
           "SLIMTEXT_MAX_BODY_BYTES_IN_FLIGHT": "2048"}  # a 4 KiB body is shed (503) by whichever worker gets it
    with UvicornServer(quick_run[0], env=env, args=("--workers", "2"), ready_timeout=120) as srv:
        deadline = time.monotonic() + 60
        while value(scrape(srv.url), "slimtext_workers") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)  # both workers have started (each writes a snapshot when its lifespan starts)

        def post(_):
            with httpx.Client(headers={"Connection": "close"}) as c:
                return c.post(f"{srv.url}/classify", json=TEXT).status_code

        def post_big(_):
            with httpx.Client(headers={"Connection": "close"}) as c:
                return c.post(f"{srv.url}/classify", json={"texts": ["x" * 4096]}).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(post, range(N))) == {200}
            assert set(pool.map(post_big, range(SHED))) == {503}
        time.sleep(0.8)  # every worker has written a snapshot since
        per_worker = [sum(n for *_, n in json.loads(p.read_text())["requests"])
                      for p in sorted(shared.glob("worker-*.json"))]
        scrapes = [scrape(srv.url) for _ in range(10)]
    assert len(per_worker) == 2 and all(n > 0 for n in per_worker), per_worker  # both served some
    totals = [value(s, "slimtext_requests_total", model="sst2-dan-lowrank", endpoint="classify", status="200")
              for s in scrapes]
    assert totals == [N] * 10, (totals, per_worker)
    assert all(value(s, "slimtext_workers") == 2 for s in scrapes)
    assert [value(s, "slimtext_shed_requests_total") for s in scrapes] == [SHED] * 10  # admission's, summed too
    counts = [value(s, "slimtext_stage_seconds_count", model="sst2-dan-lowrank", stage="total") for s in scrapes]
    assert counts == [N] * 10


def test_prepare_multiprocess_only_for_several_workers(tmp_path, monkeypatch):
    monkeypatch.delenv("SLIMTEXT_METRICS_DIR", raising=False)
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    assert prepare_multiprocess(["--port", "1"]) is None
    assert prepare_multiprocess(["--workers", "1"]) is None
    stale = tmp_path / "worker-1.json"
    stale.write_text("{}")
    monkeypatch.setenv("SLIMTEXT_METRICS_DIR", str(tmp_path))
    assert prepare_multiprocess(["--workers=3"]) == tmp_path and not stale.exists()
