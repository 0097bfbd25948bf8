"""A real uvicorn serving a models folder on a free loopback port, for benchmarks and load tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def uvicorn_command(python: str, port: int, host: str = LOOPBACK, extra: tuple[str, ...] = ()) -> list[str]:
    """The Dockerfile's CMD (`python -m service`: uvicorn with the app factory), bound to loopback; one worker
    process unless `extra` says `--workers` (the production default, `auto`, is one per usable CPU: tests and
    benchmarks that read one process's RSS, metrics or limits ask for one)."""
    workers = () if any(a == "--workers" or a.startswith("--workers=") for a in extra) else ("--workers", "1")
    return [python, "-m", "service", "--host", host, "--port", str(port),
            "--no-access-log", *workers, *extra]


class UvicornServer:
    """`with UvicornServer(models_dir) as srv: ... srv.url`; output goes to a temp log file."""

    def __init__(self, models_dir: str | Path, python: str = sys.executable, env: dict[str, str] | None = None,
                 cwd: str | Path = ROOT, ready_timeout: float = 60.0, args: tuple[str, ...] = ()):
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._env = {**os.environ, "SLIMTEXT_MODELS_DIR": str(Path(models_dir).resolve()), **(env or {})}
        self._python, self._cwd, self._ready_timeout = python, cwd, ready_timeout
        self._args = tuple(args)  # more uvicorn options, e.g. ("--workers", "2")
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives as long as the server object
        self.proc: subprocess.Popen | None = None

    def start(self) -> UvicornServer:
        """Start the process without waiting for it to be ready."""
        if self.proc is None:
            cmd = uvicorn_command(self._python, self.port, extra=self._args)
            self.proc = subprocess.Popen(cmd, cwd=self._cwd, env=self._env, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def __enter__(self) -> UvicornServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self._ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"uvicorn not ready after {self._ready_timeout:.0f} s:\n{self.output()}")

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read()

    def stop(self) -> str:
        """Terminate (if still running) and return everything the server printed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.output()
