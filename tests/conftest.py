"""Shared fixtures: the real SST-2 data (../shared/datasets or $SLIMTEXT_DATASETS) and one quick
pipeline run whose artifacts several test files serve and inspect."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from slimtext.data import datasets_root, load_splits

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def sst2():
    return load_splits(datasets_root() / "sst2")


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """Full + lowrank + int8 SST-2 DANs, trained briefly (2 + 2 epochs) into a temp models folder."""
    from training.pipeline import RunConfig, run
    from training.train import FitConfig

    out = tmp_path_factory.mktemp("models")
    cfg = RunConfig(out_dir=out, train=FitConfig(epochs=2, lr=1e-3, batch_size=64),
                    retrain=FitConfig(epochs=2, schedule="calr", lr_low=1e-4, lr_high=3e-3, batch_size=64))
    result = run(cfg, log=lambda *_: None)
    return out, result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real uvicorn process (`python -m service`, as the image runs it) on a free loopback port."""

    def __init__(self, models_dir: Path, env: dict[str, str] | None = None, python: str = sys.executable):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "SLIMTEXT_MODELS_DIR": str(models_dir), **(env or {})}
        self.proc = subprocess.Popen(
            [python, "-m", "service", "--host", "127.0.0.1",
             "--port", str(self.port), "--no-access-log"],
            cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.proc.stdout.read()}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError("server not ready")

    def stop(self) -> str:
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out


@pytest.fixture(scope="session")
def server(quick_run):
    srv = Server(quick_run[0])
    srv.wait_ready()
    yield srv
    srv.stop()
