"""End to end against a real uvicorn process on a free loopback port, through httpx."""

import httpx
import numpy as np
import pytest
import torch

from tests.conftest import Server

POSITIVE = "a gorgeous , witty , seductive movie ."


def post(server, body, **kw):
    return httpx.post(f"{server.url}/classify", json=body, timeout=10, **kw)


def test_health(server):
    assert httpx.get(f"{server.url}/health/live").json() == {"status": "live"}
    assert httpx.get(f"{server.url}/health/ready").json() == {"status": "ready"}  # public: no model names
    names = [m["manifest"]["name"] for m in httpx.get(f"{server.url}/models").json()["models"]]
    assert sorted(names) == ["sst2-dan-full", "sst2-dan-int8", "sst2-dan-lowrank"]


def test_classify_default_is_lowrank_and_positive(server):
    r = post(server, {"texts": [POSITIVE]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "sst2-dan-lowrank"
    (pred,) = body["predictions"]
    assert pred["label"] == "positive"
    assert set(pred["probabilities"]) == {"negative", "positive"}
    assert pred["score"] == pytest.approx(max(pred["probabilities"].values()))
    assert sum(pred["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert pred["n_tokens"] == 8
    timing = r.headers["server-timing"]
    assert "tokenize;dur=" in timing and "inference;dur=" in timing and "total;dur=" in timing


@pytest.mark.parametrize("kind", ["full", "lowrank"])
def test_service_probabilities_equal_pytorch(server, quick_run, sst2, kind):
    """Same text -> same logits (as probabilities) in the service as in the PyTorch model."""
    _, result = quick_run
    texts = sst2["dev"].texts[:50]
    r = post(server, {"texts": texts, "model": f"sst2-dan-{kind}"})
    assert r.status_code == 200
    got = np.array([[p["probabilities"]["negative"], p["probabilities"]["positive"]] for p in r.json()["predictions"]])
    ids, lengths = result.tokenizer.encode_batch(texts)
    model = result.full if kind == "full" else result.lowrank
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(ids), torch.from_numpy(lengths)), 1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_every_model_is_served_and_int8_stays_close(server):
    texts = ["an utterly dreadful , boring mess .", POSITIVE]
    labels = {}
    for kind in ("full", "lowrank", "int8"):
        r = post(server, {"texts": texts, "model": f"sst2-dan-{kind}"})
        assert r.status_code == 200 and r.json()["model"] == f"sst2-dan-{kind}"
        labels[kind] = [p["label"] for p in r.json()["predictions"]]
    assert labels["int8"] == labels["full"]


def test_single_text_and_top_k(server):
    r = post(server, {"text": "boring", "top_k": 1})
    (pred,) = r.json()["predictions"]
    assert [t["label"] for t in pred["top_k"]] == [pred["label"]]


def test_models_listing(server):
    body = httpx.get(f"{server.url}/models").json()
    assert body["default"] == "sst2-dan-lowrank" and body["errors"] == {}
    size = {m["manifest"]["kind"]: m["manifest"]["onnx_bytes"] for m in body["models"]}
    assert size["lowrank"] < size["int8"] < size["full"]
    assert all(m["rss_growth_bytes"] >= 0 for m in body["models"])
    one = httpx.get(f"{server.url}/models/sst2-dan-int8").json()
    assert one["manifest"]["kind"] == "int8"
    assert httpx.get(f"{server.url}/models/nope").status_code == 404


@pytest.mark.parametrize(("body", "status", "error"), [
    ({"texts": []}, 422, "invalid_request"),
    ({"texts": "not a list"}, 422, "invalid_request"),
    ({"texts": ["a"], "text": "b"}, 422, "invalid_request"),
    ({}, 422, "invalid_request"),
    ({"texts": ["a"], "extra": 1}, 422, "invalid_request"),
    ({"texts": ["a"], "model": "../x"}, 422, "invalid_request"),
    ({"texts": ["a"], "model": "nope"}, 404, "unknown_model"),
    ({"texts": ["a"], "top_k": 0}, 422, "invalid_request"),
    ({"texts": ["a"] * 257}, 413, "too_many_texts"),
    ({"texts": ["a" * 10_001]}, 413, "text_too_long"),
])
def test_bad_requests_get_json_errors(server, body, status, error):
    r = post(server, body)
    assert r.status_code == status, r.text
    assert r.json()["error"] == error and r.json()["message"]


def test_malformed_json_wrong_type_and_huge_body(server):
    r = httpx.post(f"{server.url}/classify", content=b"{bad", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    r = httpx.post(f"{server.url}/classify", content=b"texts=a", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"
    r = httpx.post(f"{server.url}/classify", content=b"x" * 2_000_000, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"
    # still serving afterwards
    assert post(server, {"texts": [POSITIVE]}).json()["predictions"][0]["label"] == "positive"


def test_text_with_no_tokens_gets_the_prior_answer(server):
    r = post(server, {"texts": ["", "   "]})
    assert r.status_code == 200
    p = r.json()["predictions"]
    assert [x["n_tokens"] for x in p] == [0, 0] and p[0]["probabilities"] == p[1]["probabilities"]


def test_bad_setting_fails_fast(quick_run):
    srv = Server(quick_run[0], env={"SLIMTEXT_INTRA_OP_THREADS": "zero"})
    assert srv.proc.wait(timeout=30) != 0
    assert "intra_op_threads" in srv.stop()
