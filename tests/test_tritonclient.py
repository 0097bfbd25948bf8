"""The Open Inference Protocol v2 REST API driven by the official Triton client (tritonclient.http),
against a real uvicorn: health, metadata, config, statistics, repository index, infer with JSON tensors and
with the binary tensor data extension; answers equal /classify's; bad input is a protocol error."""

import re

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

MODEL = "sst2-dan-lowrank"
TEXTS = ["a gorgeous , witty , seductive movie .", "a dull , lifeless and predictable mess .",
         "it 's not bad , but not good either .", "überraschend gut ! ☺"]


@pytest.fixture(scope="module")
def client(server):
    c = triton.InferenceServerClient(server.url.removeprefix("http://"))
    yield c
    c.close()


def native(server, texts, model=MODEL):
    preds = httpx.post(f"{server.url}/classify", json={"texts": texts, "model": model}).json()["predictions"]
    labels = list(preds[0]["probabilities"])
    return [p["label"] for p in preds], np.array([[p["probabilities"][lb] for lb in labels] for p in preds])


def strings(arr) -> list[str]:
    return [b.decode() if isinstance(b, bytes) else b for b in arr]


def text_input(texts, shape=None, binary=True):
    arr = np.array([t.encode() for t in texts], dtype=np.object_).reshape(shape or [len(texts)])
    inp = triton.InferInput("text", list(arr.shape), "BYTES")
    inp.set_data_from_numpy(arr, binary_data=binary)
    return inp


def test_health_metadata_config_index(client):
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    assert not client.is_model_ready("nope")
    meta = client.get_server_metadata()
    assert meta["name"] == "slimtext" and {"binary_tensor_data", "statistics"} <= set(meta["extensions"])
    model = client.get_model_metadata(MODEL)
    assert model["inputs"][0] == {"name": "text", "datatype": "BYTES", "shape": [-1]}
    config = client.get_model_config(MODEL)
    assert config["name"] == MODEL and [o["name"] for o in config["output"]] == ["label", "probabilities"]
    index = client.get_model_repository_index()
    assert {m["name"] for m in index} == {"sst2-dan-full", "sst2-dan-lowrank", "sst2-dan-int8"}
    assert {m["state"] for m in index} == {"READY"}


@pytest.mark.parametrize("binary_in", [False, True], ids=["json-in", "binary-in"])
@pytest.mark.parametrize("binary_out", [False, True], ids=["json-out", "binary-out"])
@pytest.mark.parametrize("shape", ["n", "n1"])
def test_infer_equals_classify(server, client, binary_in, binary_out, shape):
    dims = [len(TEXTS)] if shape == "n" else [len(TEXTS), 1]
    outputs = [triton.InferRequestedOutput("label", binary_data=binary_out),
               triton.InferRequestedOutput("probabilities", binary_data=binary_out)]
    result = client.infer(MODEL, [text_input(TEXTS, dims, binary_in)], outputs=outputs, request_id="r1")
    labels, probs = native(server, TEXTS)
    assert strings(result.as_numpy("label")) == labels
    got = result.as_numpy("probabilities")
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 2)
    np.testing.assert_allclose(got, probs, atol=1e-6)
    out = {o["name"]: o for o in result.get_response()["outputs"]}
    assert ("binary_data_size" in (out["label"].get("parameters") or {})) is binary_out
    assert result.get_response()["id"] == "r1"


def test_default_outputs_are_binary_and_requested_outputs_only(server, client):
    result = client.infer("sst2-dan-int8", [text_input(TEXTS)])  # no outputs: binary_data_output true
    labels, probs = native(server, TEXTS, "sst2-dan-int8")
    assert [o["parameters"]["binary_data_size"] > 0 for o in result.get_response()["outputs"]] == [True, True]
    np.testing.assert_allclose(result.as_numpy("probabilities"), probs, atol=1e-6)
    only = client.infer(MODEL, [text_input(TEXTS, binary=False)],
                        outputs=[triton.InferRequestedOutput("label", binary_data=False)])
    assert [o["name"] for o in only.get_response()["outputs"]] == ["label"]
    assert only.as_numpy("probabilities") is None
    assert strings(only.as_numpy("label")) == native(server, TEXTS)[0]


def test_batch_of_256(server, sst2, client):
    texts = sst2["dev"].texts[:256]
    assert len(texts) == 256
    result = client.infer(MODEL, [text_input(texts)])
    labels, probs = native(server, texts)
    assert strings(result.as_numpy("label")) == labels
    np.testing.assert_allclose(result.as_numpy("probabilities"), probs, atol=1e-6)


def test_statistics_count_inferences(client):
    before = client.get_inference_statistics(MODEL)["model_stats"][0]
    client.infer(MODEL, [text_input(TEXTS)])
    after = client.get_inference_statistics(MODEL)["model_stats"][0]
    assert after["name"] == MODEL and after["version"] == "1"
    s0, s1 = before["inference_stats"], after["inference_stats"]
    assert s1["success"]["count"] == s0["success"]["count"] + 1
    assert s1["success"]["ns"] > s0["success"]["ns"]
    assert s1["compute_infer"]["ns"] > s0["compute_infer"]["ns"]
    assert after["inference_count"] == before["inference_count"] + len(TEXTS)
    everything = client.get_inference_statistics()["model_stats"]
    assert {m["name"] for m in everything} == {"sst2-dan-full", "sst2-dan-lowrank", "sst2-dan-int8"}


def expect_error(call, status: str, *words: str) -> None:
    with pytest.raises(InferenceServerException) as info:
        call()
    assert info.value.status() == status, info.value
    message = info.value.message()
    assert all(w in message for w in words), message
    assert not re.search(r"Traceback|File \"|\.py\b|/tmp/|site-packages", message), message


def test_bad_input_is_a_protocol_error_and_server_keeps_serving(server, client):
    wrong_type = triton.InferInput("text", [2], "FP32")
    wrong_type.set_data_from_numpy(np.zeros(2, np.float32), binary_data=False)
    expect_error(lambda: client.infer(MODEL, [wrong_type]), "422", "datatype")
    wrong_type.set_data_from_numpy(np.zeros(2, np.float32), binary_data=True)
    expect_error(lambda: client.infer(MODEL, [wrong_type]), "400", "BYTES")
    mismatch = text_input(TEXTS, binary=False)
    mismatch.set_shape([3])
    expect_error(lambda: client.infer(MODEL, [mismatch]), "422", "shape [3]", "4 data elements")
    expect_error(lambda: client.infer("nope", [text_input(TEXTS)]), "404", "no model named 'nope'")
    expect_error(lambda: client.get_model_metadata("nope"), "404", "no model named 'nope'")
    expect_error(lambda: client.get_inference_statistics("nope"), "404", "no model named 'nope'")
    expect_error(lambda: client.infer(MODEL, [text_input(["x"] * 257)]), "413", "257 texts", "max_texts=256")
    assert client.is_server_ready()
    assert client.infer(MODEL, [text_input(TEXTS)]).as_numpy("label").shape == (len(TEXTS),)


def test_v2_rest_conformance(server):
    url = f"{server.url}/v2/models/{MODEL}/infer"
    body = b'{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["fine ."]}]}'
    r = httpx.post(url, content=body, headers={"content-type": ""})  # no Content-Type: JSON is assumed
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] in (["positive"], ["negative"])
    r = httpx.post(url, content=body, headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.json() == {"error": r.json()["error"], "code": "unsupported_media_type"}
    r = httpx.post(url, content=b"{", headers={"inference-header-content-length": "1"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = httpx.post(url, content=body, headers={"inference-header-content-length": "99999"})
    assert r.status_code == 400 and "inference-header-content-length" in r.json()["error"]
    r = httpx.post(url, content=body + b"junk", headers={"inference-header-content-length": str(len(body))})
    assert r.status_code == 400 and "belong to no input" in r.json()["error"]
    assert httpx.get(f"{server.url}/v2/models/nope/config").json()["code"] == "unknown_model"


def test_unserved_v2_calls_say_so(client):
    client.load_model(MODEL)  # the repository extension (service/registry/): reload from disk, swapped in
    assert client.is_model_ready(MODEL)
    expect_error(lambda: client.unload_model("sst2-dan-lowrank"), "409", "default model")
    expect_error(lambda: client.get_trace_settings(), "404", "Not Found: GET /v2/trace/setting")


@pytest.mark.parametrize("body", [
    b'{"inputs": 5, "parameters": {"binary_data_output": true}}',
    b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["ok"]}], "outputs": [5],'
    b' "parameters": {"binary_data_output": true}}',
    b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["ok"]}],'
    b' "outputs": [{"name": "label", "parameters": 3}], "parameters": {"binary_data_output": 1}}',
    b'[1, "binary_data"]',
], ids=["inputs-not-list", "output-not-object", "parameters-not-object", "not-an-object"])
def test_odd_binary_extension_bodies_get_a_4xx(server, body):
    r = httpx.post(f"{server.url}/v2/models/{MODEL}/infer", content=body)
    assert 400 <= r.status_code < 500 and r.json()["error"], r.text
