"""How many uvicorn worker processes `python -m service` runs: `--workers auto` (the default) is the number of
CPUs this process may use — its CPU affinity, capped by a cgroup CPU quota (a container's `--cpus`), at least 1.
`--workers N` or `WEB_CONCURRENCY=N` choose by hand. gRPC binds one port per process, so with
SLIMTEXT_GRPC_PORT set `auto` means one worker.

Each worker is one event loop plus one worker thread (service/offload.py) with onnxruntime at one intra-op
thread: N workers use N cores for any mix of requests (docs/bench-peers.md, issue 26), each on a listening socket
of its own (service/supervisor.py).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP) -> float | None:
    """CPUs allowed by the cgroup quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`); None: no quota."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]  # "max 100000" or "150000 100000"
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def usable_cpus(root: Path = CGROUP) -> int:
    """CPUs this process may run on: affinity, capped by the cgroup quota (rounded down, at least 1)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        n = min(n, math.floor(limit))
    return max(1, n)


def given_workers(args: list[str]) -> str | None:
    """The worker count the user asked for: `--workers X` / `--workers=X` (the last wins), else WEB_CONCURRENCY."""
    value = os.environ.get("WEB_CONCURRENCY") or None
    for i, arg in enumerate(args):
        if arg == "--workers" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--workers="):
            value = arg.split("=", 1)[1]
    return value


def resolve_workers(args: list[str], grpc: bool = False, root: Path = CGROUP) -> tuple[list[str], int, str]:
    """`args` with `--workers auto` (or none given) replaced by a number: (args, workers, why)."""
    value = given_workers(args)
    rest = [a for i, a in enumerate(args) if not (a.startswith("--workers=") or a == "--workers"
                                                  or (i > 0 and args[i - 1] == "--workers"))]
    if value is not None and value != "auto":
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"--workers {value!r}: a positive number or 'auto'")
        return [*rest, "--workers", value], int(value), "given"
    if grpc:
        return [*rest, "--workers", "1"], 1, "auto: SLIMTEXT_GRPC_PORT needs one process"
    n = usable_cpus(root)
    return [*rest, "--workers", str(n)], n, f"auto: {n} usable CPU(s)"
