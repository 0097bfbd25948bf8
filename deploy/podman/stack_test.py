"""`make compose-test`: docker-compose.yml for real with podman-compose, then locust through the proxy.

Brings up the stack (3 `api` replicas from the image `make image-test` built, nginx, Prometheus; where
the upstream nginx / Prometheus images cannot be pulled, stand-ins built from Debian's packages via
compose.override.yml), runs healthchecks itself (podman schedules them with systemd timers, absent here),
starts the proxy and Prometheus once every replica is healthy (podman-compose cannot wait for `healthy`
on podman 4.3), checks that Prometheus scrapes every replica, then runs locust (locustfile.py) through the
proxy twice: once undisturbed, once killing one replica mid-run. Prints one table row per run (requests,
failures, p50/p95, requests per replica from Prometheus) and exits 1 when the undisturbed run failed any.

    PYTHONPATH=. .venv/bin/python deploy/podman/stack_test.py [--users 16] [--run-time 30]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import podmanlib as pm

PROJECT = "slimtext"
PROXY = "http://127.0.0.1:8080"
PROM = "http://127.0.0.1:9090"
COMPOSE = [str(Path(sys.executable).parent / "podman-compose"), "--podman-args",
           " ".join(pm.PODMAN[1:]), "--podman-run-args", "--ulimit host", "-p", PROJECT,
           "-f", str(pm.ROOT / "docker-compose.yml")]
LOCAL = {"proxy": ("localhost/slimtext-nginx:debian", "nginx.Containerfile", "docker.io/library/nginx:1.28-alpine"),
         "prometheus": ("localhost/slimtext-prometheus:debian", "prometheus.Containerfile",
                        "docker.io/prom/prometheus:v3.5.0")}


def compose(*args: str, timeout: float = 300) -> None:
    proc = subprocess.run([*COMPOSE, *args], env=pm.env(), capture_output=True, text=True, timeout=timeout,
                          cwd=pm.ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"podman-compose {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")


def containers(service: str = "") -> list[str]:
    """The project's containers (of one service when given)."""
    names = pm.out("ps", "--all", "--format", "{{.Names}}", "--filter", f"label=io.podman.compose.project={PROJECT}")
    return sorted(n for n in names.split() if not service or n.startswith(f"{PROJECT}_{service}_"))


def health(name: str) -> str:
    return pm.out("inspect", "--format", "{{.State.Health.Status}}", name)


class HealthScheduler(threading.Thread):
    """What podman's systemd timers would do: run every container's HEALTHCHECK every few seconds."""

    def __init__(self, every: float = 3.0):
        super().__init__(daemon=True)
        self.every, self.stopped = every, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            for name in containers():
                pm.podman("healthcheck", "run", name, check=False, timeout=30)


def wait_for(what: str, ok, timeout: float = 120) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if ok():
                print(f"{what} after {time.monotonic() - start:.1f} s", flush=True)
                return time.monotonic() - start
        except (httpx.HTTPError, RuntimeError):
            pass
        time.sleep(1)
    raise TimeoutError(what)


def prom(query: str) -> dict[str, float]:
    r = httpx.get(f"{PROM}/api/v1/query", params={"query": query}, timeout=10).json()
    return {s["metric"].get("instance", ""): float(s["value"][1]) for s in r["data"]["result"]}


# requests each replica served; last_over_time keeps a killed replica's last scrape
SERVED = "sum by (instance) (last_over_time(slimtext_requests_total[10m]))"


def scraped_up() -> dict[str, float]:
    return prom('up{job="slimtext-api"}')


def replica_of() -> dict[str, str]:
    """instance (ip:8000) -> container name."""
    out = {}
    for name in containers("api"):
        ip = pm.out("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name)
        out[f"{ip}:8000"] = name
    return out


def locust(tag: str, users: int, run_time: int, report_dir: Path) -> dict[str, str]:
    prefix = report_dir / tag
    env = {**os.environ, "SLIMTEXT_LOAD_MAX_P95_MS": "100000", "SLIMTEXT_LOAD_MAX_FAIL_RATIO": "1"}
    cmd = [str(Path(sys.executable).parent / "locust"), "-f", str(pm.ROOT / "locustfile.py"), "--host", PROXY,
           "--headless", "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{run_time}s",
           "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=run_time + 120, cwd=pm.ROOT)
    with open(f"{prefix}_stats.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    if int(row["Failure Count"]):
        print(proc.stdout[-2000:], proc.stderr[-2000:])
    return row


def run(tag: str, args, kill: str | None = None) -> dict:
    before = prom(SERVED)
    killer = None
    if kill:
        def _kill() -> None:
            time.sleep(args.run_time / 3)
            print(f"podman kill {kill} at {args.run_time / 3:.0f} s", flush=True)
            pm.podman("kill", kill, check=False)
        killer = threading.Thread(target=_kill, daemon=True)
        killer.start()
    names = replica_of()
    row = locust(tag, args.users, args.run_time, args.reports)
    if killer:
        killer.join()
    time.sleep(11)  # two scrape intervals
    after = prom(SERVED)
    per = {names.get(i, i): int(after.get(i, 0) - before.get(i, 0)) for i in sorted(set(after) | set(before))}
    if kill:  # what the proxy logged while routing around the dead replica
        log = pm.podman("logs", containers("proxy")[0], check=False)  # nginx's error log goes to stderr
        lines = [ln for ln in (log.stdout + log.stderr).splitlines() if "upstream" in ln]
        print(f"proxy error log: {len(lines)} upstream errors (each retried on another replica), e.g. "
              f"{lines[0][:300] if lines else '-'}")
    result = {"run": tag, "requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
              "p50_ms": row["50%"], "p95_ms": row["95%"],
              "max_ms": round(float(row["Max Response Time"])), "rps": float(row["Requests/s"]), "per_replica": per}
    print(result, flush=True)
    return result


def compose_locust() -> None:
    """`docker compose --profile load run --rm locust`: locust in its own container, against http://proxy."""
    if pm.podman("image", "exists", "localhost/slimtext-locust:latest", check=False).returncode != 0:
        pm.build("localhost/slimtext-locust:latest", base=pm.base_image(), target="loadgen")
    before = prom(SERVED)
    names = replica_of()
    compose("--profile", "load", "run", "--rm", "--no-deps", "locust", timeout=300)
    time.sleep(11)
    after = prom(SERVED)
    with open(pm.ROOT / "docs" / "loadtest" / "compose_stats.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    per = {names.get(i, i): int(after.get(i, 0) - before.get(i, 0)) for i in sorted(after)}
    print(f"compose locust service: {row['Request Count']} requests, {row['Failure Count']} failures, "
          f"p50 {row['50%']} ms, p95 {row['95%']} ms, {float(row['Requests/s']):.0f} req/s, per replica {per}",
          flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--run-time", type=int, default=30, help="seconds per locust run")
    ap.add_argument("--reports", type=Path, default=Path("/tmp/slimtext-compose-test"))
    ap.add_argument("--keep", action="store_true", help="leave the stack running")
    ap.add_argument("--compose-locust", action="store_true",
                    help="also run the compose file's own `locust` service (profile load, 32 users, 60 s; "
                         "builds the loadgen image when missing)")
    args = ap.parse_args()
    pm.require_podman()
    args.reports.mkdir(parents=True, exist_ok=True)
    if pm.podman("image", "exists", pm.IMAGE, check=False).returncode != 0:
        raise SystemExit(f"{pm.IMAGE} missing: run `make image-test` first")
    for tag, containerfile, upstream in LOCAL.values():
        if pm.podman("image", "exists", upstream, check=False).returncode == 0:
            continue
        if pm.podman("image", "exists", tag, check=False).returncode != 0:
            pm.build(tag, base=pm.base_image(), containerfile=pm.HERE / containerfile, context=pm.HERE)
        COMPOSE.extend(["-f", str(pm.HERE / "compose.override.yml")])  # both stand-ins are in the one file
        break

    compose("down", "--timeout", "10")
    scheduler = HealthScheduler()
    scheduler.start()
    results, ok = [], False
    try:
        compose("up", "--detach", "--no-build", "--no-deps", "api")
        api = containers("api")
        print(f"api replicas: {api}")
        wait_for("every api replica healthy", lambda: len(api) == 3 and all(health(n) == "healthy" for n in api))
        compose("up", "--detach", "--no-build", "--no-deps", "--no-recreate", "proxy", "prometheus")
        wait_for("proxy /health/ready", lambda: httpx.get(f"{PROXY}/health/ready", timeout=2).status_code == 200)
        wait_for("Prometheus scrapes 3 replicas, all up",
                 lambda: len(up := scraped_up()) == 3 and all(v == 1 for v in up.values()))
        wait_for("proxy and prometheus healthy",
                 lambda: all(health(n) == "healthy" for s in ("proxy", "prometheus") for n in containers(s)))
        results.append(run("steady", args))
        if args.compose_locust:
            compose_locust()
        results.append(run("kill-one", args, kill=containers("api")[1]))
        ok = results[0]["failures"] == 0 and results[0]["requests"] > 0
        status = {n: pm.out("inspect", "--format", "{{.State.Status}} restarts={{.RestartCount}}", n)
                  for n in containers("api")}
        print(f"replicas after the kill: {status}")
    finally:
        scheduler.stopped.set()
        if not args.keep:
            compose("down", "--timeout", "10")
    print("\n| run | requests | failures | p50 ms | p95 ms | max ms | req/s | requests per replica (Prometheus) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        per = ", ".join(f"{k.removeprefix(PROJECT + '_')}: {v}" for k, v in r["per_replica"].items())
        print(f"| {r['run']} | {r['requests']} | {r['failures']} | {r['p50_ms']} | {r['p95_ms']} | {r['max_ms']} "
              f"| {r['rps']:.0f} | {per} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
