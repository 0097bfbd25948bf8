"""locustfile.py and `make loadtest` (bench.loadtest) against real uvicorn servers on loopback, a few
seconds each: the report covers every model and shape, and the quitting hook fails the run on a
failed request or a p95 over the threshold."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.loadtest import read_stats
from tests.conftest import ROOT

MODELS = ("sst2-dan-full", "sst2-dan-lowrank", "sst2-dan-int8")


def locust(host: str, run_time_s: int, csv_prefix, env: dict[str, str] | None = None,
           users: int = 4) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless", "--only-summary",
           "--host", host, "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{run_time_s}s",
           "--stop-timeout", "2", "--csv", str(csv_prefix)]
    return subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=run_time_s + 60)


def test_make_loadtest_script_passes_and_reports_every_model(quick_run, tmp_path):
    out, summary = tmp_path / "reports", tmp_path / "loadtest.md"
    proc = subprocess.run([sys.executable, "-m", "bench.loadtest", "--models-dir", str(quick_run[0]),
                           "--users", "4", "--spawn-rate", "4", "--run-time", "5", "--max-p95-ms", "2000",
                           "--out", str(out), "--summary", str(summary)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {r["Name"]: r for r in read_stats(out / "loadtest_stats.csv")}
    for model in MODELS:
        for shape in ("single", "batch32"):
            assert int(rows[f"{model} {shape}"]["Request Count"]) > 0, (model, shape)
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    assert (out / "report.html").stat().st_size > 10_000
    text = summary.read_text()
    assert "PASSED" in text
    for model in MODELS:
        assert f"| {model} | single |" in text and f"| {model} | batch32 |" in text


def test_quitting_hook_fails_on_p95_over_threshold(server, tmp_path):
    proc = locust(server.url, 5, tmp_path / "p95", env={"SLIMTEXT_LOAD_MAX_P95_MS": "0.001"})
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "p95" in proc.stderr and "load test FAILED" in proc.stderr
    total = read_stats(tmp_path / "p95_stats.csv")[-1]
    assert total["Name"] == "Aggregated" and int(total["Failure Count"]) == 0, "only the latency threshold tripped"


def test_quitting_hook_fails_on_any_failed_request(server, tmp_path):
    proc = locust(server.url, 5, tmp_path / "fail", env={"SLIMTEXT_LOAD_MODELS": "sst2-dan-full:1,no-such-model:1",
                                                         "SLIMTEXT_LOAD_MAX_P95_MS": "100000"})
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "failure ratio" in proc.stderr
    rows = {r["Name"]: r for r in read_stats(tmp_path / "fail_stats.csv")}
    assert int(rows["no-such-model single"]["Failure Count"]) == int(rows["no-such-model single"]["Request Count"])
    assert int(rows["sst2-dan-full single"]["Failure Count"]) == 0
