"""`python -m service` with N > 1 workers: N uvicorn servers, each listening on its own socket bound to the same
address with SO_REUSEPORT, so the kernel spreads new connections across the workers.

uvicorn's own multi-process mode hands every worker one shared listening socket, and the worker whose loop wakes
first accepts a whole burst: 8 connections opened together landed 6/2 or 7/1 on 2 idle workers, and under wrk
2 of 3 rounds of docs/bench-peers-rerun.md ran at one worker's speed (lowrank, 1 text, c = 8: 4,283 and 4,788
req/s, against 8,552 in the round whose connections split evenly). Here this process (the supervisor) spawns N
processes, each running uvicorn with one worker on its own socket; it passes SIGTERM / SIGINT on (each worker
drains its connections: service/protocol.py) and restarts a worker that ended while nobody asked it to stop. A
worker that ends before it ever served (a model folder it cannot load, a taken port) stops them all, and its exit
status is the supervisor's: no restart loop. A worker whose supervisor dies, even by SIGKILL, gets SIGTERM from the
kernel (Linux: PR_SET_PDEATHSIG) and drains: no orphan keeps serving the port.
"""

from __future__ import annotations

import ctypes
import importlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
from multiprocessing.synchronize import Event as EventType

import uvicorn.server

UVICORN_MAIN = importlib.import_module("uvicorn.main")  # the module (the package's `uvicorn.main` is its command)

POLL_S = 0.5
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT (not listening yet: uvicorn listens on it)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class OwnSocketServer(uvicorn.server.Server):
    """uvicorn's server on a socket of its own (SO_REUSEPORT) instead of one it binds or inherits; `ready` is set
    once it serves (the supervisor tells a worker that failed to start from one that ended later)."""

    ready: EventType | None = None

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        return super().run(sockets=sockets or [listening_socket(self.config.host, self.config.port)])

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.ready is not None:
            self.ready.set()


def exit_zero(signum, frame) -> None:
    """uvicorn re-raises SIGTERM / SIGINT after its graceful shutdown: end with status 0, a clean stop."""
    sys.exit(0)


def die_with(parent: int) -> None:
    """Have the kernel send this process SIGTERM when `parent` (the supervisor) dies, however it dies (Linux)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the supervisor died before the call above could take effect
        sys.exit(0)


def worker_main(args: list[str], ready: EventType, parent: int) -> None:
    """One worker process: uvicorn's command line with one worker, its server on its own socket."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, exit_zero)
    die_with(parent)
    OwnSocketServer.ready = ready
    UVICORN_MAIN.Server = OwnSocketServer  # uvicorn.main.run() builds its server from this name
    UVICORN_MAIN.main.main(args=args, prog_name="python -m service")


def address(args: list[str]) -> tuple[str, int] | None:
    """(host, port) uvicorn would bind for `args`; None when it listens elsewhere (--uds, --fd) or reloads."""
    params = UVICORN_MAIN.main.make_context("python -m service", list(args)).params
    if params.get("uds") or params.get("fd") is not None or params.get("reload"):
        return None
    return params["host"], params["port"]


def supervise(args: list[str], workers: int) -> int:
    """Run `workers` worker processes on (host, port) until SIGTERM / SIGINT; returns the exit status."""
    host, port = address(args)
    try:
        reserved = listening_socket(host, port)  # a taken port fails here; port 0 becomes the one all workers bind
    except OSError as e:
        print(f"python -m service: cannot listen on {host}:{port}: {e.strerror}", file=sys.stderr)
        return 1
    port = reserved.getsockname()[1]
    child_args = [*args, "--workers", "1", "--port", str(port)]  # a repeated option: the last one wins
    spawn = multiprocessing.get_context("spawn")
    procs: list[multiprocessing.process.BaseProcess] = []
    ready: list[EventType] = []
    stopping: list[int] = []

    def start(i: int) -> None:
        event = spawn.Event()
        p = spawn.Process(target=worker_main, args=(child_args, event, os.getpid()), name=f"slimtext-worker-{i}")
        p.start()
        if i < len(procs):
            procs[i], ready[i] = p, event
        else:
            procs.append(p)
            ready.append(event)

    def stop(signum: int, _frame=None) -> None:
        stopping.append(signum)
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    for i in range(workers):
        start(i)
    status = 0
    while not stopping or any(p.is_alive() for p in procs):
        multiprocessing.connection.wait([p.sentinel for p in procs if p.is_alive()], timeout=POLL_S)
        for i, p in enumerate(procs):
            if p.is_alive() or stopping or p.exitcode is None:
                continue
            if not ready[i].is_set():
                print(f"python -m service: worker {i} failed to start (exit {p.exitcode}); stopping",
                      file=sys.stderr)
                status = p.exitcode if p.exitcode > 0 else 1
                stop(signal.SIGTERM)
                continue
            print(f"python -m service: worker {i} ended (exit {p.exitcode}); starting it again", file=sys.stderr)
            start(i)
    reserved.close()
    return status
