"""The sweep's Ray backend (issue 28) on a real two-node Ray cluster started on this machine.

The fixture starts a head (`ray start --head --num-cpus 1`) and a second node (`ray start --address ...
--num-cpus 1`) on free loopback ports, in a temp dir of their own, no dashboard, no usage stats; teardown
stops exactly those processes (the ones whose command line names that temp dir or the head's address),
never `ray stop`, which would stop every Ray process of the user. Skips without the `ray` extra.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from slimtext.data import datasets_root
from training.cli import main

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["--datasets", "sst2", "--models", "dan", "--methods", "full", "online", "noretrain", "--reductions", "0.9",
         "--seeds", "0", "1", "--epochs", "1", "--retrain-epochs", "1", "--limit-train", "500"]
# results that vary from run to run by nature (wall times); every other field must be equal
TIMES = {"seconds"}


def test_local_backend_never_imports_ray(tmp_path):
    """Without --backend ray nothing changes and Ray is not imported (a fresh interpreter, the real CLI)."""
    code = ("import sys; from training.cli import main; "
            f"rc = main(['sweep', *{QUICK!r}, '--seeds', '0', '--methods', 'full', '--out', {str(tmp_path)!r}]); "
            "assert rc == 0, rc; print('ray' in sys.modules, 'training.sweep_ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["False", "False"]


def test_address_without_ray_backend_is_a_usage_error(capsys):
    assert main(["sweep", *QUICK, "--address", "127.0.0.1:1"]) == 2
    assert "--address needs --backend ray" in capsys.readouterr().err


def test_wall_time_estimate_schedules_first_cells_first():
    from training.sweep_estimate import cell_times, simulate, table

    groups = [(10.0, [5.0, 5.0]), (2.0, [1.0])]
    assert simulate(groups, 1) == 23.0 and simulate(groups, 2) == 15.0 and simulate(groups, 64) == 15.0
    d300 = cell_times(ROOT / "docs" / "results-d300.csv", ROOT / "training" / "grids" / "d300.json")
    assert len(d300) == 36 and sum(1 + len(rest) for _, rest in d300) == 463
    out = table(d300, [1, 4])
    assert "463 cells in 36 groups" in out and "| 1 |" in out and "| 4 |" in out


RAY = Path(sys.executable).with_name("ray")
NO_RAY = "the `ray` extra is not installed (pip install 'slimtext[ray]')"


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _ours(marks: list[str]) -> list[int]:
    """Pids of the processes whose command line names one of `marks` (this cluster's temp dir), and of all
    their descendants (Ray's agents and workers rename themselves: `ray::IDLE`, `ray::DashboardAgent`)."""
    parent, named = {}, set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if any(m in cmd for m in marks):
            named.add(int(d.name))
    ours, grew = set(named), True
    while grew:
        new = {pid for pid, ppid in parent.items() if ppid in ours and pid not in ours}
        ours |= new
        grew = bool(new)
    return sorted(ours)


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), None once it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _stop(marks: list[str]) -> None:
    """SIGTERM, then SIGKILL, to this cluster's processes. Found again before each round, and remembered
    (pid + start time, so a reused pid is never hit): a dead raylet has no command line left to match."""
    known: dict[int, str] = {}
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        known |= {p: t for p in _ours(marks) if (t := _start_time(p))}
        pids = [p for p, t in known.items() if _start_time(p) == t]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if _start_time(p) == known[p]]
            time.sleep(0.2)
        if not pids:
            return


@pytest.fixture(scope="module")
def cluster():
    """A head and a second node, 1 CPU each, on free loopback ports; their address. Always stopped."""
    pytest.importorskip("ray", reason=NO_RAY)
    temp = tempfile.mkdtemp(prefix="rayt", dir="/tmp")  # short: Ray's unix sockets live under it
    (gcs, client, dash, head_agent, head_grpc, head_rt, head_metrics, node_agent, node_grpc, node_rt,
     node_metrics) = _free_ports(11)
    address = f"127.0.0.1:{gcs}"
    # Ray 2.60's token authentication, with a token of this cluster's own: hermetic (a ~/.ray/auth_token left by
    # a local ray.init() would otherwise turn auth on for the head only) and no open cluster on the network
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT), "RAY_ADDRESS": "", **auth}
    saved = {k: os.environ.get(k) for k in auth}
    os.environ.update(auth)  # for the drivers this process runs (training.cli.main, ray.init in the tests)
    if "ray" in sys.modules:
        sys.modules["ray"]._raylet.Config.initialize("")
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    head = [str(RAY), "start", "--head", "--port", str(gcs), "--temp-dir", temp, "--include-dashboard", "false",
            "--dashboard-port", str(dash), "--ray-client-server-port", str(client),
            "--dashboard-agent-listen-port", str(head_agent), "--dashboard-agent-grpc-port", str(head_grpc),
            "--runtime-env-agent-port", str(head_rt), "--metrics-export-port", str(head_metrics),
            "--min-worker-port", "0", "--max-worker-port", "0", *common]
    node = [str(RAY), "start", "--address", address, "--dashboard-agent-listen-port", str(node_agent),
            "--dashboard-agent-grpc-port", str(node_grpc), "--runtime-env-agent-port", str(node_rt),
            "--metrics-export-port", str(node_metrics), "--min-worker-port", "0", "--max-worker-port", "0", *common]
    # every process of both nodes names the temp dir (the second node uses the head's session dir) or
    # descends from one that does, except the head's Ray client server: it names its own (free) port
    marks = [temp, f"--port={client} --mode=proxy"]
    started = time.monotonic()
    try:
        for cmd in (head, node):
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
            assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
        print(f"\nray cluster (2 nodes) up in {time.monotonic() - started:.1f} s at {address}")
        yield {"address": address, "env": env, "temp": temp}
    finally:
        _stop(marks)
        shutil.rmtree(temp, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        assert not [p for p in _ours(marks) if _start_time(p)], "Ray processes left running"


def _rows(path: Path) -> dict[tuple, dict[str, str]]:
    with open(path) as f:
        return {(r["seed"], r["method"], r["reduction"]): r for r in csv.DictReader(f)}


def test_quick_grid_on_two_nodes_equals_the_local_backend(cluster, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "ray"
    t0 = time.monotonic()
    assert main(["sweep", *QUICK, "--out", str(local), "--workers", "1"]) == 0
    t_local = time.monotonic() - t0
    t0 = time.monotonic()
    assert main(["sweep", *QUICK, "--out", str(remote), "--backend", "ray", "--address", cluster["address"]]) == 0
    t_ray = time.monotonic() - t0
    print(f"\nquick grid (6 cells): local {t_local:.1f} s, ray (2 nodes x 1 CPU) {t_ray:.1f} s")

    # the same CSV, field for field: bitwise equal floats (the CSV writes repr, which round-trips exactly)
    want, got = _rows(local / "results.csv"), _rows(remote / "results.csv")
    assert sorted(got) == sorted(want) and len(got) == 6
    for key, row in want.items():
        assert {k: v for k, v in got[key].items() if k not in TIMES} == \
            {k: v for k, v in row.items() if k not in TIMES}, key
    # and each cell's JSON (everything the cell recorded, the training history included)
    for p in local.glob("*/*.json"):
        a, b = json.loads(p.read_text()), json.loads((remote / p.relative_to(local)).read_text())
        for d in (a, b):
            d.pop("seconds", None)
        assert a == b, p.name

    nodes = json.loads((remote / "ray-cells.json").read_text())
    assert len(nodes) == 6 and len({v["node"] for v in nodes.values()}) == 2, nodes  # both nodes ran cells
    assert all(v["attempts"] == 1 for v in nodes.values())
    assert json.loads((remote / "timing.json").read_text())["workers"] == 2  # the cluster's CPUs

    stamp = {p: p.stat().st_mtime_ns for p in remote.glob("*/*.json")}
    assert main(["sweep", *QUICK, "--out", str(remote), "--backend", "ray", "--address", cluster["address"]]) == 0
    assert {p: p.stat().st_mtime_ns for p in remote.glob("*/*.json")} == stamp  # resumed: nothing ran again


def test_a_failed_cell_is_retried_then_reported(cluster, tmp_path, capsys):
    """A dataset folder without files: its cell fails, runs once more, and is reported; the rest finish."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copytree(datasets_root() / "sst2", data / "sst2")
    (data / "broken").mkdir()
    argv = ["sweep", "--datasets", "sst2", "broken", "--methods", "full", "--seeds", "0", "--epochs", "1",
            "--limit-train", "500", "--data-root", str(data), "--out", str(tmp_path / "out"),
            "--backend", "ray", "--address", cluster["address"], "--retries", "1"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "broken/train/dan/s0/full@- failed (attempt 1 of 2), retrying" in err
    assert "1 cell(s) failed after 2 attempt(s) each" in err and "broken/train/dan/s0/full@-" in err
    assert [r["dataset"] for r in _rows(tmp_path / "out" / "results.csv").values()] == ["sst2"]


def test_ctrl_c_cancels_the_clusters_tasks(cluster, tmp_path):
    """SIGINT to a sweep whose cells are running: the driver cancels them and exits; the CPUs come back."""
    import ray

    out = tmp_path / "out"
    argv = [sys.executable, "-m", "training", "sweep", "--datasets", "sst2", "--methods", "full",
            "--seeds", "0", "1", "--epochs", "200", "--limit-train", "2000", "--out", str(out),
            "--backend", "ray", "--address", cluster["address"]]
    # SIGINT at its default in the child: a test run started in the background (`cmd &` in a script) hands its
    # children an ignored SIGINT, and the sweep would then run to its end instead of being cancelled
    proc = subprocess.Popen(argv, cwd=ROOT, env=cluster["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    ray.init(address=cluster["address"], log_to_driver=False)
    try:
        deadline = time.monotonic() + 120
        while ray.available_resources().get("CPU", 0) > 0 and time.monotonic() < deadline:  # both cells started
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.5)
        assert ray.available_resources().get("CPU", 0) == 0, "the cells never started"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode != 0 and "cancelled 2 task(s) of this sweep" in err, err
        deadline = time.monotonic() + 30
        while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert ray.available_resources().get("CPU", 0) == 2  # nothing of the sweep runs on the cluster
        assert not list(out.glob("*/*.json"))  # no cell finished
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        ray.shutdown()
