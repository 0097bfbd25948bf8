"""`python -m service` picks its worker count from the machine (service/workers.py): the CPUs the process may
use, capped by a cgroup quota; `--workers N` / WEB_CONCURRENCY override; gRPC means one."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from bench.server import free_port
from service.workers import cgroup_cpu_limit, resolve_workers, usable_cpus
from tests.conftest import ROOT

AFFINITY = len(os.sched_getaffinity(0))


def _cgroup_v2(tmp_path, value: str):
    (tmp_path / "cpu.max").write_text(value + "\n")
    return tmp_path


def _cgroup_v1(tmp_path, quota: int, period: int):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(f"{period}\n")
    return tmp_path


@pytest.mark.parametrize(("make", "limit"), [
    (lambda p: _cgroup_v2(p, "max 100000"), None),
    (lambda p: _cgroup_v2(p, "150000 100000"), 1.5),
    (lambda p: _cgroup_v2(p, "50000 100000"), 0.5),
    (lambda p: _cgroup_v1(p, -1, 100000), None),
    (lambda p: _cgroup_v1(p, 300000, 100000), 3.0),
    (lambda p: p, None),  # no cgroup files at all
])
def test_the_cgroup_quota_is_read_from_v1_and_v2(tmp_path, make, limit):
    root = make(tmp_path)
    assert cgroup_cpu_limit(root) == limit
    expected = AFFINITY if limit is None else max(1, min(AFFINITY, math.floor(limit)))
    assert usable_cpus(root) == expected


def test_auto_is_the_default_and_given_counts_win(tmp_path, monkeypatch):
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    root = _cgroup_v2(tmp_path, "max 100000")
    assert resolve_workers(["--port", "1"], root=root) == (["--port", "1", "--workers", str(AFFINITY)], AFFINITY,
                                                         f"auto: {AFFINITY} usable CPU(s)")
    assert resolve_workers(["--workers", "auto"], root=_cgroup_v2(tmp_path, "100000 100000"))[1] == 1
    assert resolve_workers(["--workers", "3"], root=root)[1:] == (3, "given")
    assert resolve_workers(["--workers=5", "--workers", "2"], root=root)[0] == ["--workers", "2"]
    assert resolve_workers([], grpc=True, root=root)[1] == 1
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    assert resolve_workers([], root=root)[1:] == (4, "given")
    with pytest.raises(ValueError, match="positive number or 'auto'"):
        resolve_workers(["--workers", "0"], root=root)


def test_python_m_service_says_how_many_workers_and_why(quick_run):
    """Started with no --workers: the production default resolves from this machine (then stopped at once by
    a bad port, after the settings check)."""
    env = {**os.environ, "SLIMTEXT_MODELS_DIR": str(quick_run[0])}
    env.pop("WEB_CONCURRENCY", None)
    proc = subprocess.run([sys.executable, "-m", "service", "--port", str(free_port()), "--workers", "x"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2 and "--workers 'x'" in proc.stderr
    proc = subprocess.run([sys.executable, "-c", "import sys; from service.__main__ import check_settings; "
                           "print(check_settings(sys.argv[1:]))", "--port", "1"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"{usable_cpus()} worker(s) (auto: {usable_cpus()} usable CPU(s))" in proc.stderr
    assert f"'--workers', '{usable_cpus()}'" in proc.stdout
