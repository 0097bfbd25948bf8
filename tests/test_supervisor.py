"""`python -m service --workers 2` (service/supervisor.py): every worker listens on a socket of its own (SO_REUSEPORT),
so new connections spread over the workers; a worker that dies is started again; SIGTERM stops them all with exit
0; a port the workers cannot share is one line and exit 1."""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bench.server import ROOT, free_port, uvicorn_command

LISTEN, ESTABLISHED = "0A", "01"


def sockets_by_pid(port: int, state: str) -> collections.Counter:
    """Server-side TCP sockets on 127.0.0.1:`port` in `state`, counted by the process holding them (/proc)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state:
            inodes.add(fields[9])
    found: collections.Counter = collections.Counter()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        found[int(pid)] += sum(link[8:-1] in inodes for link in links if link.startswith("socket:["))
    return +found


def wait_for(get, ok, timeout: float = 90.0):
    """get() until ok(its value), then that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = get()
        if ok(value):
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out; last {value}")


@pytest.fixture
def two_workers(quick_run):
    port = free_port()
    env = {**os.environ, "SLIMTEXT_MODELS_DIR": str(quick_run[0])}
    proc = subprocess.Popen(uvicorn_command(sys.executable, port, extra=("--workers", "2")), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        listeners = wait_for(lambda: sockets_by_pid(port, LISTEN), lambda found: len(found) == 2)
        yield proc, port, listeners
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def test_each_worker_listens_on_its_own_socket_and_connections_spread(two_workers):
    proc, port, listeners = two_workers
    assert proc.pid not in listeners and all(n == 1 for n in listeners.values())  # the supervisor listens nowhere
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
    try:
        spread = wait_for(lambda: sockets_by_pid(port, ESTABLISHED), lambda found: sum(found.values()) == 64)
        assert set(spread) == set(listeners) and min(spread.values()) >= 12, spread  # P(< 12 of 64) ~ 1e-7
    finally:
        for c in conns:
            c.close()
    r = httpx.post(f"http://127.0.0.1:{port}/classify", json={"texts": ["a gorgeous , witty movie ."]}, timeout=10)
    assert r.status_code == 200 and r.json()["predictions"][0]["label"] in ("positive", "negative")


def test_a_dead_worker_is_started_again_and_sigterm_stops_all_with_exit_0(two_workers):
    proc, port, listeners = two_workers
    victim, survivor = sorted(listeners)
    os.kill(victim, signal.SIGKILL)
    again = wait_for(lambda: sockets_by_pid(port, LISTEN), lambda found: len(found) == 2 and victim not in found)
    assert survivor in again
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    assert not sockets_by_pid(port, LISTEN)
    assert "ended (exit -9); starting it again" in proc.stderr.read()


def test_the_workers_stop_when_the_supervisor_is_killed(two_workers):
    """SIGKILL leaves the supervisor no chance to pass anything on: the kernel tells each worker (PR_SET_PDEATHSIG),
    and they drain and exit instead of serving the port as orphans."""
    proc, port, listeners = two_workers
    proc.kill()
    proc.wait(30)
    wait_for(lambda: [pid for pid in listeners if running(pid)], lambda alive: not alive, 60)
    assert not sockets_by_pid(port, LISTEN)


def running(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan's exit is reaped by whoever adopted it, maybe never)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_port_the_workers_cannot_share_is_one_line_and_exit_1(quick_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "SLIMTEXT_MODELS_DIR": str(quick_run[0])}
        out = subprocess.run(uvicorn_command(sys.executable, port, extra=("--workers", "2")), cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert f"python -m service: cannot listen on 127.0.0.1:{port}: Address already in use" in out.stderr
