"""Bad input, schema fuzzing, model faults at start-up, graceful shutdown, unsafe loading: all against
real uvicorn processes on loopback."""

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, Server

POSITIVE = "a gorgeous , witty , seductive movie ."
JSON = {"content-type": "application/json"}

# (case, raw body, headers, expected status, expected error code)
BAD = [
    ("malformed json", b"{bad", JSON, 422, "invalid_request"),
    ("truncated json", b'{"texts": ["a"', JSON, 422, "invalid_request"),
    ("empty body", b"", JSON, 422, "invalid_request"),
    ("top-level array", b'["a"]', JSON, 422, "invalid_request"),
    ("top-level string", b'"a"', JSON, 422, "invalid_request"),
    ("invalid utf-8", b'\xff\xfe{"texts": ["a"]}', JSON, 422, "invalid_request"),
    ("invalid utf-8 inside a string", b'{"texts": ["a\xc3\x28b"]}', JSON, 422, "invalid_request"),
    ("deeply nested", b"[" * 5000 + b"]" * 5000, JSON, 422, "invalid_request"),
    ("text/plain", b'{"texts": ["a"]}', {"content-type": "text/plain"}, 415, "unsupported_media_type"),
    ("no content type", b'{"texts": ["a"]}', {}, 415, "unsupported_media_type"),
    ("form encoded", b"texts=a", {"content-type": "application/x-www-form-urlencoded"}, 415,
     "unsupported_media_type"),
    ("texts is a string", {"texts": "a"}, None, 422, "invalid_request"),
    ("texts holds a number", {"texts": [1]}, None, 422, "invalid_request"),
    ("texts holds null", {"texts": [None]}, None, 422, "invalid_request"),
    ("texts nested", {"texts": [["a"]]}, None, 422, "invalid_request"),
    ("texts null", {"texts": None}, None, 422, "invalid_request"),
    ("missing texts and text", {}, None, 422, "invalid_request"),
    ("both texts and text", {"texts": ["a"], "text": "b"}, None, 422, "invalid_request"),
    ("extra field", {"texts": ["a"], "debug": True}, None, 422, "invalid_request"),
    ("empty list", {"texts": []}, None, 422, "invalid_request"),
    ("model wrong type", {"texts": ["a"], "model": 123}, None, 422, "invalid_request"),
    ("unknown model", {"texts": ["a"], "model": "nope"}, None, 404, "unknown_model"),
    ("path traversal model", {"texts": ["a"], "model": "../x"}, None, 422, "invalid_request"),
    ("absolute path model", {"texts": ["a"], "model": "/etc/passwd"}, None, 422, "invalid_request"),
    ("upper-case model", {"texts": ["a"], "model": "SST2-DAN-FULL"}, None, 422, "invalid_request"),
    ("top_k zero", {"texts": ["a"], "top_k": 0}, None, 422, "invalid_request"),
    ("top_k negative", {"texts": ["a"], "top_k": -1}, None, 422, "invalid_request"),
    ("top_k huge", {"texts": ["a"], "top_k": 10**12}, None, 422, "invalid_request"),
    ("top_k as string", {"texts": ["a"], "top_k": "2"}, None, 422, "invalid_request"),
    ("top_k float", {"texts": ["a"], "top_k": 1.5}, None, 422, "invalid_request"),
    ("1 MB text", {"texts": ["x" * 1_000_000]}, None, 413, "text_too_long"),
    ("10,000 texts", {"texts": ["a"] * 10_000}, None, 413, "too_many_texts"),
    ("2 MB body", b'{"texts": ["' + b"a" * 2_000_000 + b'"]}', JSON, 413, "body_too_large"),
]


def send(server, body, headers):
    if isinstance(body, bytes):
        return httpx.post(f"{server.url}/classify", content=body, headers=headers, timeout=30)
    return httpx.post(f"{server.url}/classify", json=body, timeout=30)


@pytest.mark.parametrize(("case", "body", "headers", "status", "error"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_a_json_4xx(server, case, body, headers, status, error):
    r = send(server, body, headers)
    assert r.status_code == status, r.text[:300]
    payload = r.json()
    assert payload["error"] == error and payload["message"]
    if status == 422:  # says which field, or that the JSON itself is invalid
        assert payload["details"] and all("loc" in d and d["msg"] for d in payload["details"])


def test_still_ready_and_correct_after_the_battery(server):
    for _, body, headers, *_ in BAD:
        send(server, body, headers)
    assert httpx.get(f"{server.url}/health/ready").status_code == 200
    r = httpx.post(f"{server.url}/classify", json={"texts": [POSITIVE]})
    assert r.json()["predictions"][0]["label"] == "positive"


@pytest.mark.parametrize("text", ["a\x00b", "tab\tnew\nline\r\x07bell", "😀🎬 great film 👍", "ما أجمل هذا الفيلم",
                                  "זה סרט נהדר", "\u202egnirob\u202c", "ｆｕｌｌ ｗｉｄｔｈ", "é" * 500])
def test_odd_but_valid_text_is_classified(server, text):
    """Control characters, emoji and right-to-left scripts are text: they get a 200 and an answer."""
    r = httpx.post(f"{server.url}/classify", json={"texts": [text]})
    assert r.status_code == 200
    (p,) = r.json()["predictions"]
    assert p["n_tokens"] >= 1 and sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_other_methods_and_paths_answer_json(server):
    r = httpx.get(f"{server.url}/classify")
    assert r.status_code == 405 and r.json()["error"] == "http_error"
    r = httpx.get(f"{server.url}/nope")
    assert r.status_code == 404 and r.json()["error"] == "http_error"
    r = httpx.get(f"{server.url}/models/..%2Fetc")
    assert r.status_code in (404, 422) and "error" in r.json()


def test_schemathesis_finds_no_5xx_and_no_schema_violation(server):
    """Property-based requests from the live OpenAPI schema; every check (server errors, status codes,
    response schemas, content types, rejected-valid / accepted-invalid data), bounded and seeded."""
    st = Path(sys.executable).parent / "st"
    proc = subprocess.run(
        [str(st), "--no-color", "--config-file", str(ROOT / "tests" / "schemathesis.toml"), "run",
         f"{server.url}/openapi.json", "--max-examples", "40", "--workers", "1", "--seed", "1"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "No issues found" in proc.stdout
    assert httpx.get(f"{server.url}/health/ready").status_code == 200


# --- model faults at start-up ---------------------------------------------------------------------------
@pytest.fixture
def faulty_models(quick_run, tmp_path):
    src, _ = quick_run
    for kind in ("full", "lowrank", "int8"):
        shutil.copytree(src / f"sst2-dan-{kind}", tmp_path / f"sst2-dan-{kind}")
    (tmp_path / "sst2-dan-int8" / "model.onnx").write_bytes(b"corrupt")
    (tmp_path / "sst2-dan-full" / "manifest.json").unlink()
    return tmp_path


def test_startup_skips_bad_models_and_names_the_file(faulty_models):
    srv = Server(faulty_models)
    try:
        srv.wait_ready()
        body = httpx.get(f"{srv.url}/models").json()
        assert [m["manifest"]["name"] for m in body["models"]] == ["sst2-dan-lowrank"]
        assert "sst2-dan-int8/model.onnx: sha256 differs" in body["errors"]["sst2-dan-int8"]
        assert "sst2-dan-full/manifest.json: missing" in body["errors"]["sst2-dan-full"]
        assert httpx.post(f"{srv.url}/classify", json={"texts": [POSITIVE]}).status_code == 200
    finally:
        log = srv.stop()
    assert re.search(r"ERROR .*sst2-dan-int8 not served: .*sst2-dan-int8/model.onnx", log)
    assert re.search(r"ERROR .*sst2-dan-full not served: .*manifest.json: missing", log)


def test_strict_mode_makes_a_bad_model_fatal(faulty_models):
    srv = Server(faulty_models, env={"SLIMTEXT_STRICT": "true"})
    assert srv.proc.wait(timeout=60) != 0
    assert "model.onnx" in srv.stop() or "manifest.json" in srv.stop()


# --- graceful shutdown ----------------------------------------------------------------------------------
def _start_slow_request(port: int, body: bytes) -> socket.socket:
    """Headers and half the body now: the request is in flight until the rest is sent."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (f"POST /classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    s.sendall(head + body[: len(body) // 2])
    return s


def _finish(s: socket.socket, body: bytes) -> tuple[int, dict]:
    s.sendall(body[len(body) // 2:])
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _content_length(data):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, payload = data.split(b"\r\n\r\n", 1)
    return int(head.split()[1]), json.loads(payload)


def _content_length(data: bytes) -> int:
    m = re.search(rb"content-length: (\d+)", data.split(b"\r\n\r\n", 1)[0], re.I)
    return int(m.group(1)) if m else 0


def test_sigterm_finishes_in_flight_requests_refuses_new_ones_and_exits_0(quick_run):
    srv = Server(quick_run[0])
    srv.wait_ready()
    body = json.dumps({"texts": [POSITIVE, "a dull mess"]}).encode()
    in_flight = [_start_slow_request(srv.port, body) for _ in range(5)]
    time.sleep(0.5)  # the app is now awaiting each body
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    with pytest.raises(OSError):  # the listening socket is closed
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
    results = [_finish(s, body) for s in in_flight]
    assert [status for status, _ in results] == [200] * 5
    assert all(p["predictions"][0]["label"] == "positive" for _, p in results)
    assert srv.proc.wait(timeout=30) == 0
    srv.stop()


# --- nothing unsafe loads -------------------------------------------------------------------------------
def test_no_pickle_and_torch_load_only_with_weights_only():
    sources = [p for d in ("slimtext", "service", "training", "bench") for p in (ROOT / d).rglob("*.py")]
    assert sources
    for path in sources:
        text = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+(c?pickle|dill|joblib)\b", text, re.M), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, f"{path}: {call}"
        assert "allow_pickle=True" not in text, path
