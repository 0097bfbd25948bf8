"""Each protection of the HTTP layer against a real `python -m service` on loopback (raw sockets, so the
client does exactly what an attacker would): head cap, head and body deadlines, admission control,
drain on SIGTERM; plus the tokenizer cap and the worker queue."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from service.offload import ClientGone, Offloader, QueueFull
from slimtext.tokenizer import Tokenizer, TokenizerConfig
from tests.conftest import ROOT, Server

BODY = json.dumps({"texts": ["a gorgeous , witty , seductive movie ."]}).encode()


def post(body: bytes = BODY, path: str = "/classify", keep_alive: bool = True) -> bytes:
    conn = b"" if keep_alive else b"Connection: close\r\n"
    return (f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n").encode() + conn + b"\r\n" + body


def read_response(sock: socket.socket, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length; (0, {}, b"") when the server closed first."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return 0, {}, b""
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    need = int(headers.get("content-length", "0"))
    while len(rest) < need:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(lines[0].split()[1]), headers, rest[:need]


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """The server closes the connection (EOF or reset) within `seconds`; any bytes it sends first are read."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def live(server) -> int:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        return read_response(s)[0]


@pytest.fixture(scope="module")
def tight(quick_run):
    """Short deadlines and small admission limits, so each protection trips in a fraction of a second."""
    srv = Server(quick_run[0], env={"SLIMTEXT_HEADER_TIMEOUT_S": "0.5", "SLIMTEXT_BODY_TIMEOUT_S": "0.5",
                                    "SLIMTEXT_MAX_IN_FLIGHT": "3", "SLIMTEXT_HEADER_MAX_BYTES": "8192",
                                    "SLIMTEXT_MAX_BODY_BYTES_IN_FLIGHT": str(2_621_440)})
    srv.wait_ready()
    yield srv
    srv.stop()


# ------------------------------------------------------------------ head cap

@pytest.mark.parametrize("shape", ["one huge header", "many headers", "huge url"])
def test_oversized_head_gets_431_and_close_while_the_rest_is_still_arriving(tight, shape):
    with socket.create_connection(("127.0.0.1", tight.port)) as s:
        if shape == "huge url":
            s.sendall(b"GET /" + b"a" * 20_000)
        else:
            s.sendall(b"GET /health/live HTTP/1.1\r\nHost: t\r\n")
            s.sendall(b"X-Big: " + b"b" * 20_000 if shape == "one huge header" else b"X-H: hhhhhhhhhhhhhhhh\r\n" * 1000)
        status, headers, body = read_response(s)
        assert status == 431 and headers["connection"] == "close"
        assert json.loads(body)["error"] == "request_header_too_large"
        assert closed_within(s, 2)
    assert live(tight) == 200


def test_a_head_under_the_cap_is_served(tight):
    with socket.create_connection(("127.0.0.1", tight.port)) as s:
        s.sendall(b"GET /health/live HTTP/1.1\r\nHost: t\r\nX-Ok: " + b"o" * 4000 + b"\r\n\r\n")
        assert read_response(s)[0] == 200


# ------------------------------------------------------------------ deadlines

def test_idle_connection_without_a_request_is_closed_with_408(tight):
    with socket.create_connection(("127.0.0.1", tight.port)) as s:
        t0 = time.monotonic()
        status, _, body = read_response(s, timeout=5)
        assert status == 408 and json.loads(body)["error"] == "request_timeout"
        assert closed_within(s, 2) and time.monotonic() - t0 < 3


def test_slow_header_is_cut_by_the_head_deadline(tight):
    with socket.create_connection(("127.0.0.1", tight.port)) as s:
        s.sendall(b"GET /health/live HTTP/1.1\r\n")
        t0 = time.monotonic()
        for _ in range(30):  # one header line every 0.1 s, never finishing: slowloris
            try:
                s.sendall(b"X-Slow: 1\r\n")
            except OSError:
                break
            time.sleep(0.1)
        assert closed_within(s, 3) and time.monotonic() - t0 < 4


def test_stalled_body_is_cut_by_the_body_deadline(tight):
    with socket.create_connection(("127.0.0.1", tight.port)) as s:
        s.sendall(post(b"x" * 1000)[:-900])  # head + 100 body bytes, then nothing
        assert closed_within(s, 3)
    assert live(tight) == 200


# ------------------------------------------------------------------ admission control

def test_admission_sheds_posts_beyond_the_in_flight_limit_but_never_health(tight):
    stalled = []
    try:
        for _ in range(3):  # 3 POSTs in flight (the limit), each waiting for its body
            s = socket.create_connection(("127.0.0.1", tight.port))
            s.sendall(post(b"x" * 1000)[:-1000])
            stalled.append(s)
        time.sleep(0.15)
        with socket.create_connection(("127.0.0.1", tight.port)) as s:
            s.sendall(post())
            status, headers, body = read_response(s)
        assert status == 503 and headers["retry-after"] in ("1", "2")
        assert json.loads(body)["error"] == "overloaded"
        assert live(tight) == 200
    finally:
        for s in stalled:
            s.close()
    time.sleep(0.3)
    with socket.create_connection(("127.0.0.1", tight.port)) as s:  # capacity is back once they are gone
        s.sendall(post())
        assert read_response(s)[0] == 200


def test_admission_bounds_declared_body_bytes_in_flight(tight):
    big = 1_048_000  # 2.5 MiB in flight at most: a third near-max body is refused before it is read
    stalled = []
    try:
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", tight.port))
            s.sendall(post(b"x" * big)[:-big])
            stalled.append(s)
        time.sleep(0.15)
        with socket.create_connection(("127.0.0.1", tight.port)) as s:
            s.sendall(post(b"x" * big)[:-big])
            assert read_response(s)[0] == 503
    finally:
        for s in stalled:
            s.close()


# ------------------------------------------------------------------ SIGTERM drain

def test_sigterm_under_load_loses_no_request_already_sent(quick_run):
    srv = Server(quick_run[0])
    srv.wait_ready()
    n_conns, lost, answered, stop = 16, [], [], threading.Event()

    def client():
        s = socket.create_connection(("127.0.0.1", srv.port))
        try:
            while True:
                try:
                    s.sendall(post())
                except OSError:
                    return  # the server closed the connection before this request was written: not lost
                status, headers, _ = read_response(s, timeout=20)
                if status == 0:
                    lost.append(1)
                    return
                answered.append(status)
                if headers.get("connection") == "close" or stop.is_set():
                    return
        except OSError:
            lost.append(1)
        finally:
            s.close()

    threads = [threading.Thread(target=client) for _ in range(n_conns)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    srv.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(30)
    stop.set()
    output = srv.stop()
    assert srv.proc.returncode == 0, output[-2000:]
    assert answered and set(answered) == {200}
    assert not lost, f"{len(lost)} requests sent before the close got no response"


# ------------------------------------------------------------------ command line

def test_bad_setting_prints_one_line_and_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "service"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "SLIMTEXT_MODELS_DIR": str(tmp_path),
                               "SLIMTEXT_MAX_IN_FLIGHT": "lots"})
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "SLIMTEXT_MAX_IN_FLIGHT" in proc.stderr


def test_help_lists_the_settings():
    proc = subprocess.run([sys.executable, "-m", "service", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "--timeout-keep-alive" in proc.stdout
    assert "SLIMTEXT_MAX_IN_FLIGHT" in proc.stdout and "SLIMTEXT_HEADER_TIMEOUT_S" in proc.stdout


# ------------------------------------------------------------------ tokenizer cap and worker queue

class CountingRegex:
    def __init__(self, regex):
        self.regex, self.matches = regex, 0

    def finditer(self, text):
        for m in self.regex.finditer(text):
            self.matches += 1
            yield m


def test_tokenizer_stops_at_max_len_tokens():
    tok = Tokenizer(TokenizerConfig(max_len=20), ["<pad>", "<unk>", "!", "good"])
    counting = CountingRegex(tok._regex)
    tok._regex = counting
    ids = tok.ids("good " + "!" * 100_000)
    assert ids == [3] + [2] * 19
    assert counting.matches <= 21  # not 100,001: the rest of the text is never tokenized
    assert tok.ids("Good don't " * 50) == tok.ids(("Good don't " * 50)[:200])  # same ids as a shorter prefix


def test_offloader_sheds_when_full_and_skips_work_of_gone_clients():
    async def scenario():
        off = Offloader(queue_max=2)
        release, ran = threading.Event(), []
        busy = asyncio.ensure_future(off.run(lambda: release.wait(5)))
        gone = threading.Event()
        queued = asyncio.ensure_future(off.run(lambda: ran.append(1), gone))
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFull):
            await off.run(lambda: None)
        gone.set()  # the queued job's client disconnects while the worker is busy
        release.set()
        assert await busy is True
        with pytest.raises(ClientGone):
            await queued
        off.close()
        return off, ran

    off, ran = asyncio.run(scenario())
    assert ran == [] and off.skipped == 1 and off.rejected == 1 and off.pending == 0


def test_v2_work_of_a_gone_client_is_skipped(quick_run):
    """/v2 infer (through FastAPI, not the raw /classify endpoint) skips a queued job whose client has
    disconnected: the worker thread is held busy, the client sends 8 texts and hangs up, the job never runs."""
    from service.config import Settings
    from service.main import create_app

    outer = create_app(Settings(models_dir=quick_run[0], offload_min_texts=8))  # 8 texts go to the worker thread
    app = outer
    while not hasattr(app, "router"):
        app = app.app
    body = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [8],
                                   "data": ["a gorgeous , witty movie ."] * 8}]}).encode()
    path = "/v2/models/sst2-dan-lowrank/infer"
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000)}

    async def scenario():
        async with app.router.lifespan_context(app):
            clf = app.state.classifier
            release = threading.Event()
            busy = asyncio.ensure_future(clf.offloader.run(release.wait))  # the worker thread is taken
            messages = [{"type": "http.request", "body": body, "more_body": False}, {"type": "http.disconnect"}]

            async def receive():
                return messages.pop(0) if messages else await asyncio.Future()

            sent = []

            async def send(message):
                sent.append(message)

            request = asyncio.ensure_future(outer(scope, receive, send))
            await asyncio.sleep(0.3)  # the request is queued behind the busy job and has seen the disconnect
            release.set()
            await asyncio.wait_for(request, 10)
            await busy
            return sent, clf.offloader.skipped, clf.metrics.client_aborts

    sent, skipped, aborts = asyncio.run(scenario())
    assert sent[0]["status"] == 499 and skipped == 1 and aborts == 1

