"""KServe v2, Prometheus metrics, the FastAPI fallback path and micro-batching, against real uvicorn."""

import asyncio
import re

import httpx
import numpy as np
import pytest

from service.batching import MicroBatcher, pad_concat
from tests.conftest import Server

TEXTS = ["a gorgeous , witty , seductive movie .", "a dull , lifeless and predictable mess ."]


def v2_body(texts):
    return {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}


def test_v2_infer_as_kserve_documents_it(server):
    r = httpx.post(f"{server.url}/v2/models/sst2-dan-lowrank/infer", json={"id": "req-1", **v2_body(TEXTS)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == "sst2-dan-lowrank" and body["id"] == "req-1"
    out = {o["name"]: o for o in body["outputs"]}
    assert out["label"]["datatype"] == "BYTES" and out["label"]["shape"] == [2]
    assert out["probabilities"]["datatype"] == "FP32" and out["probabilities"]["shape"] == [2, 2]
    probs = np.array(out["probabilities"]["data"]).reshape(2, 2)
    native = httpx.post(f"{server.url}/classify", json={"texts": TEXTS}).json()["predictions"]
    assert out["label"]["data"] == [p["label"] for p in native]
    np.testing.assert_allclose(probs[:, 1], [p["probabilities"]["positive"] for p in native], atol=1e-6)


def test_v2_requested_outputs_and_errors(server):
    url = f"{server.url}/v2/models/sst2-dan-full/infer"
    r = httpx.post(url, json={**v2_body(TEXTS), "outputs": [{"name": "label"}]})
    assert [o["name"] for o in r.json()["outputs"]] == ["label"]
    assert httpx.post(url, json={**v2_body(TEXTS), "outputs": [{"name": "nope"}]}).status_code == 422
    bad_shape = {"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": TEXTS}]}
    assert httpx.post(url, json=bad_shape).status_code == 422
    bad_type = {"inputs": [{"name": "text", "shape": [2], "datatype": "FP32", "data": TEXTS}]}
    assert httpx.post(url, json=bad_type).status_code == 422
    assert httpx.post(f"{server.url}/v2/models/nope/infer", json=v2_body(TEXTS)).status_code == 404


def test_v2_health_and_metadata(server):
    assert httpx.get(f"{server.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{server.url}/v2/health/ready").json() == {"ready": True}
    meta = httpx.get(f"{server.url}/v2/models/sst2-dan-int8").json()
    assert meta["name"] == "sst2-dan-int8" and meta["inputs"][0]["datatype"] == "BYTES"
    assert meta["outputs"][1]["shape"] == [-1, 2]
    assert httpx.get(f"{server.url}/v2/models/sst2-dan-int8/ready").json()["ready"] is True
    assert httpx.get(f"{server.url}/v2/models/nope/ready").status_code == 404
    assert httpx.get(f"{server.url}/v2").json()["name"] == "slimtext"


def metric(text: str, name: str, **labels) -> float:
    for line in text.splitlines():
        named = line.startswith(name + "{") or line.startswith(name + " ")
        if named and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in /metrics")


def test_metrics_after_traffic(server):
    for kind in ("full", "lowrank", "int8"):
        for _ in range(3):
            httpx.post(f"{server.url}/classify", json={"texts": TEXTS, "model": f"sst2-dan-{kind}"})
    httpx.post(f"{server.url}/classify", json={"texts": []})
    text = httpx.get(f"{server.url}/metrics").text
    for kind in ("full", "lowrank", "int8"):
        model = f"sst2-dan-{kind}"
        for stage in ("tokenize", "inference", "total"):
            assert metric(text, "slimtext_stage_seconds_count", model=model, stage=stage) >= 3
        # sub-millisecond buckets exist and hold the model's inference time
        assert metric(text, "slimtext_stage_seconds_bucket", model=model, stage="inference", le="0.001") >= 1
        assert metric(text, "slimtext_requests_total", model=model, endpoint="classify", status="200") >= 3
        assert metric(text, "slimtext_model_onnx_bytes", model=model, kind=kind) > 0
        assert metric(text, "slimtext_model_load_rss_bytes", model=model) >= 0
    assert metric(text, "slimtext_requests_total", model="-", status="422") >= 1
    assert metric(text, "slimtext_batch_texts_sum", model="sst2-dan-full") >= 6
    assert metric(text, "process_resident_memory_bytes") > 10e6
    assert metric(text, "slimtext_in_flight_requests") == 0
    assert metric(text, "slimtext_model_embedding_compression", model="sst2-dan-lowrank") >= 0.9
    assert not re.search(r'model="nope"', text)


@pytest.fixture(scope="module")
def batching_server(quick_run):
    srv = Server(quick_run[0], env={"SLIMTEXT_BATCHING": "true", "SLIMTEXT_BATCH_MAX_WAIT_US": "20000"})
    srv.wait_ready()
    yield srv
    srv.stop()


def test_batched_requests_answer_like_one_request(server, batching_server, sst2):
    texts = sst2["dev"].texts[:24]

    async def fire(url):
        async with httpx.AsyncClient(timeout=30) as client:
            rs = await asyncio.gather(*[client.post(f"{url}/classify", json={"text": t}) for t in texts])
        return rs

    batched = asyncio.run(fire(batching_server.url))
    assert all(r.status_code == 200 for r in batched)
    direct = httpx.post(f"{server.url}/classify", json={"texts": texts}).json()["predictions"]
    for r, d in zip(batched, direct, strict=True):
        (p,) = r.json()["predictions"]
        assert p["label"] == d["label"]
        assert p["probabilities"]["positive"] == pytest.approx(d["probabilities"]["positive"], abs=1e-6)
    text = httpx.get(f"{batching_server.url}/metrics").text
    runs = metric(text, "slimtext_batch_texts_count", model="sst2-dan-lowrank")
    assert metric(text, "slimtext_batch_texts_sum", model="sst2-dan-lowrank") == len(texts)
    assert runs < len(texts), "concurrent requests were not coalesced"
    # errors still come back as JSON with batching on
    r = httpx.post(f"{batching_server.url}/classify", json={"texts": []})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"


def test_micro_batcher_coalesces_splits_and_propagates_errors():
    calls = []

    def run(ids, lengths):
        calls.append(ids.shape)
        return ids.sum(1, keepdims=True).astype(np.float32)

    async def main():
        b = MicroBatcher(run, max_texts=100, max_wait_s=0.01)
        parts = [np.array([[1, 2]]), np.array([[3], [4]]), np.array([[5, 6, 7]])]
        outs = await asyncio.gather(*[b.submit(p, np.array([p.shape[1]] * len(p))) for p in parts])
        return outs

    outs = asyncio.run(main())
    assert calls == [(4, 3)]
    assert [o.ravel().tolist() for o in outs] == [[3.0], [3.0, 4.0], [18.0]]

    def boom(ids, lengths):
        raise RuntimeError("model failed")

    async def failing():
        b = MicroBatcher(boom, max_texts=2, max_wait_s=1.0)
        return await asyncio.gather(b.submit(np.ones((1, 1), np.int64), np.ones(1, np.int64)),
                                    b.submit(np.ones((1, 1), np.int64), np.ones(1, np.int64)),
                                    return_exceptions=True)

    assert all(isinstance(e, RuntimeError) for e in asyncio.run(failing()))
    assert pad_concat([np.ones((1, 1), np.int64), np.ones((1, 3), np.int64)]).tolist() == [[1, 0, 0], [1, 1, 1]]


def test_histogram_buckets_follow_prometheus_le_semantics():
    from service.metrics import Histogram

    h = Histogram((1.0, 2.0))
    for v in (0.5, 1.0, 1.5, 2.0, 3.0):
        h.observe(v)
    assert h.cumulative() == [("1.0", 2), ("2.0", 4), ("+Inf", 5)]
    assert h.sum == 8.0
