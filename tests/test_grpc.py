"""The Open Inference Protocol over gRPC (SLIMTEXT_GRPC_PORT), driven by tritonclient.grpc against a real
`python -m service`: health, metadata, infer (raw and typed contents), statistics, repository index, errors."""

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tg
from tritonclient.utils import InferenceServerException

from bench.server import free_port
from tests.conftest import Server

MODEL = "sst2-dan-lowrank"
TEXTS = ["a gorgeous , witty , seductive movie .", "a dull , lifeless and predictable mess .", "überraschend ☺"]
ALL = {"sst2-dan-full", "sst2-dan-lowrank", "sst2-dan-int8"}


@pytest.fixture(scope="module")
def grpc_server(quick_run):
    port = free_port()
    srv = Server(quick_run[0], env={"SLIMTEXT_GRPC_PORT": str(port)})
    srv.wait_ready()
    client = tg.InferenceServerClient(f"127.0.0.1:{port}")
    yield srv, client
    client.close()
    srv.stop()


def text_input(texts, shape=None):
    arr = np.array([t.encode() for t in texts], dtype=np.object_).reshape(shape or [len(texts)])
    inp = tg.InferInput("text", list(arr.shape), "BYTES")
    inp.set_data_from_numpy(arr)
    return inp


def native(srv, texts, model=MODEL):
    preds = httpx.post(f"{srv.url}/classify", json={"texts": texts, "model": model}).json()["predictions"]
    return [p["label"] for p in preds], np.array([[p["probabilities"][k] for k in ("negative", "positive")]
                                                   for p in preds])


def test_health_metadata_index(grpc_server):
    _, c = grpc_server
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready(MODEL)
    assert not c.is_model_ready("nope")
    assert "gRPC (inference.GRPCInferenceService) on 127.0.0.1:" in grpc_server[0].output()
    meta = c.get_server_metadata(as_json=True)
    assert meta["name"] == "slimtext" and "statistics" in meta["extensions"]
    model = c.get_model_metadata(MODEL, as_json=True)
    assert model["inputs"][0]["datatype"] == "BYTES"
    assert model["outputs"][1] == {"name": "probabilities", "datatype": "FP32", "shape": ["-1", "2"]}
    index = c.get_model_repository_index(as_json=True)["models"]
    assert {m["name"] for m in index} == ALL and {m["state"] for m in index} == {"READY"}


@pytest.mark.parametrize("shape", ["n", "n1"])
def test_infer_equals_classify(grpc_server, shape):
    srv, c = grpc_server
    dims = [len(TEXTS)] if shape == "n" else [len(TEXTS), 1]
    result = c.infer(MODEL, [text_input(TEXTS, dims)], request_id="g1")
    labels, probs = native(srv, TEXTS)
    assert [b.decode() for b in result.as_numpy("label")] == labels
    got = result.as_numpy("probabilities")
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 2)
    np.testing.assert_allclose(got, probs, atol=1e-6)
    assert result.get_response().id == "g1"
    only = c.infer("sst2-dan-int8", [text_input(TEXTS)], outputs=[tg.InferRequestedOutput("probabilities")])
    assert [o.name for o in only.get_response().outputs] == ["probabilities"]
    np.testing.assert_allclose(only.as_numpy("probabilities"), native(srv, TEXTS, "sst2-dan-int8")[1], atol=1e-6)


def test_batch_of_256_and_statistics(grpc_server, sst2):
    srv, c = grpc_server
    before = c.get_inference_statistics(MODEL, as_json=True)["model_stats"][0]
    texts = sst2["dev"].texts[:256]
    result = c.infer(MODEL, [text_input(texts)])
    assert [b.decode() for b in result.as_numpy("label")] == native(srv, texts)[0]
    after = c.get_inference_statistics(MODEL, as_json=True)["model_stats"][0]
    assert int(after["inference_stats"]["success"]["count"]) == \
        int(before.get("inference_stats", {}).get("success", {}).get("count", 0)) + 2  # + the /classify above
    assert int(after["inference_count"]) >= 256 * 2
    everything = c.get_inference_statistics(as_json=True)["model_stats"]
    assert {m["name"] for m in everything} == ALL


def test_bad_input_is_a_protocol_error_and_server_keeps_serving(grpc_server):
    _, c = grpc_server

    def expect(call, code: str, *words: str):
        with pytest.raises(InferenceServerException) as info:
            call()
        assert info.value.status() == code, info.value
        assert all(w in info.value.message() for w in words), info.value.message()

    wrong = tg.InferInput("text", [2], "FP32")
    wrong.set_data_from_numpy(np.zeros(2, np.float32))
    expect(lambda: c.infer(MODEL, [wrong]), "StatusCode.INVALID_ARGUMENT", "datatype 'FP32'")
    mismatch = text_input(TEXTS)
    mismatch.set_shape([5])
    expect(lambda: c.infer(MODEL, [mismatch]), "StatusCode.INVALID_ARGUMENT", "shape [5]", "3 data elements")
    expect(lambda: c.infer("nope", [text_input(TEXTS)]), "StatusCode.NOT_FOUND", "no model named 'nope'")
    expect(lambda: c.get_model_metadata("nope"), "StatusCode.NOT_FOUND", "no model named 'nope'")
    expect(lambda: c.infer(MODEL, [text_input(["x"] * 257)]), "StatusCode.RESOURCE_EXHAUSTED", "max_texts=256")
    big = text_input(["x" * 9000] * 200)  # 1.8 MB: over max_body_bytes, which bounds gRPC messages too
    expect(lambda: c.infer(MODEL, [big]), "StatusCode.RESOURCE_EXHAUSTED", "larger than max")
    c.load_model(MODEL)  # the repository extension: reloaded from disk and swapped in
    expect(lambda: c.load_model("nope"), "StatusCode.NOT_FOUND", "no model named 'nope'")
    expect(lambda: c.unload_model(MODEL), "StatusCode.FAILED_PRECONDITION", "default model")
    expect(lambda: c.get_model_config(MODEL), "StatusCode.UNIMPLEMENTED", "Method not found")
    assert c.is_server_ready()
    assert c.infer(MODEL, [text_input(TEXTS)]).as_numpy("label").shape == (len(TEXTS),)


def test_grpc_is_off_by_default(server):
    assert "gRPC (inference.GRPCInferenceService) on" not in server.output()


def test_api_keys_cover_grpc(quick_run):
    """With SLIMTEXT_API_KEYS set, gRPC calls need the key in metadata, like /classify needs it over HTTP;
    the health probes stay public."""
    port, key = free_port(), "grpc-test-key-0123456789"
    srv = Server(quick_run[0], env={"SLIMTEXT_GRPC_PORT": str(port), "SLIMTEXT_API_KEYS": key})
    try:
        srv.wait_ready()
        with tg.InferenceServerClient(f"127.0.0.1:{port}") as c:
            assert c.is_server_live() and c.is_server_ready()
            for call in (lambda **kw: c.infer(MODEL, [text_input(TEXTS[:1])], **kw),
                         lambda **kw: c.get_model_metadata(MODEL, **kw),
                         lambda **kw: c.get_model_repository_index(**kw)):
                with pytest.raises(InferenceServerException, match="UNAUTHENTICATED|API key"):
                    call()
                with pytest.raises(InferenceServerException, match="UNAUTHENTICATED|API key"):
                    call(headers={"authorization": "Bearer not-the-key-0123456789"})
                assert call(headers={"authorization": f"Bearer {key}"}) is not None
                assert call(headers={"x-api-key": key}) is not None
    finally:
        srv.stop()


def test_grpc_port_with_several_workers_is_refused_in_one_line(quick_run):
    import os
    import subprocess
    import sys

    env = {**os.environ, "SLIMTEXT_MODELS_DIR": str(quick_run[0]), "SLIMTEXT_GRPC_PORT": str(free_port())}
    proc = subprocess.run([sys.executable, "-m", "service", "--workers", "2", "--port", str(free_port())],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "SLIMTEXT_GRPC_PORT needs one worker" in proc.stderr
