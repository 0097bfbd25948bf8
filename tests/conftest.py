"""Shared fixtures: the real SST-2 data (../shared/datasets or $SLIMTEXT_DATASETS) and one quick
`training run` (train -> compress -> export) whose artifacts several test files serve and inspect."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.server import UvicornServer
from slimtext.data import datasets_root, load_splits

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def sst2():
    return load_splits(datasets_root() / "sst2")


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """Full + lowrank + int8 SST-2 DANs, trained briefly (2 + 2 epochs) into a temp models folder."""
    from training.runs import RunConfig, run
    from training.train import FitConfig

    out = tmp_path_factory.mktemp("models")
    cfg = RunConfig(out_dir=out, train=FitConfig(epochs=2, lr=1e-3, batch_size=64),
                    retrain=FitConfig(epochs=2, schedule="calr", lr_low=1e-4, lr_high=3e-3, batch_size=64))
    result = run(cfg, log=lambda *_: None)
    return out, result


class Server(UvicornServer):
    """A real uvicorn process (`python -m service`, as the image runs it) on a free loopback port,
    started at once; `wait_ready()` waits for /health/ready, `stop()` returns its output."""

    def __init__(self, models_dir: Path, env: dict[str, str] | None = None):
        super().__init__(models_dir, env=env)
        self.start()


@pytest.fixture(scope="session")
def server(quick_run):
    srv = Server(quick_run[0], env={"SLIMTEXT_ENABLE_DOCS": "true"})  # the schemathesis test reads /openapi.json
    srv.wait_ready()
    yield srv
    srv.stop()
