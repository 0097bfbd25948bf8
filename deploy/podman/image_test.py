"""`make image-test`: build the serving image with podman and check the running container over HTTP.

Builds the Dockerfile's default target (python:3.11-slim-bookworm when a registry answers, else a base
made from Debian's packages), runs it exactly as shipped (its CMD, HEALTHCHECK and uid; port 8000
published on a free loopback port) and checks: /health/ready, /classify equal to the host's service on
the same models, a non-root uid, no torch, HEALTHCHECK healthy, and `podman stop` (SIGTERM) exiting 0
within the grace period. Prints build time, image size and what takes the space; exits 1 on any failure.

    PYTHONPATH=. .venv/bin/python deploy/podman/image_test.py [--models models] [--no-build]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx
import podmanlib as pm

from bench.server import UvicornServer, free_port

NAME = "slimtext-image-test"
GRACE_S = 10
TEXTS = ["a gorgeous , witty , seductive movie .", "the plot is nowhere near as clever as it thinks",
         "", "an utterly unremarkable film ."]


class Checks:
    def __init__(self) -> None:
        self.rows: list[tuple[str, bool, str]] = []

    def __call__(self, what: str, ok: bool, detail: object = "") -> bool:
        self.rows.append((what, bool(ok), str(detail)))
        print(f"{'PASS' if ok else 'FAIL'}  {what}: {detail}", flush=True)
        return ok

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.rows)


def wait_ready(url: str, timeout: float = 90) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return time.monotonic() - start
        except httpx.TransportError:
            pass
        if pm.out("inspect", "--format", "{{.State.Running}}", NAME) != "true":
            raise RuntimeError(f"container exited:\n{pm.podman('logs', NAME, check=False).stderr}")
        time.sleep(0.3)
    raise TimeoutError(f"not ready after {timeout:.0f} s")


def health_status() -> str:
    for fmt in ("{{.State.Health.Status}}", "{{.State.Healthcheck.Status}}"):
        proc = pm.podman("inspect", "--format", fmt, NAME, check=False)
        if proc.returncode == 0 and proc.stdout.strip() not in ("", "<no value>"):
            return proc.stdout.strip()
    return "?"


def space_report(tag: str) -> str:
    sh = ("du -xsm /usr /opt/venv /app /var /etc 2>/dev/null; echo; cd /opt/venv/lib/python3*/site-packages && "
          "du -sm * | sort -rn | head -6")
    return pm.podman("run", "--rm", "--network", "none", "--ulimit", "host", "--entrypoint", "sh", tag, "-c", sh,
                     check=False).stdout


def cpu_quota_workers() -> str | None:
    """What `--workers auto` makes of a 1-CPU quota inside the image (`podman run --cpus 1`): "<quota> <workers>",
    or None where podman set no quota the container can read (no cgroup CPU controller for it)."""
    code = ("from service.workers import cgroup_cpu_limit, resolve_workers; "
            "print(cgroup_cpu_limit(), resolve_workers([])[1:])")
    proc = pm.podman("run", "--rm", "--cpus", "1", "--network", "none", "--entrypoint", "python", pm.IMAGE, "-c",
                     code, check=False, timeout=120)
    line = (proc.stdout.strip().splitlines() or [""])[-1]
    if proc.returncode != 0 or line.startswith("None"):
        print(f"--cpus 1 not checked: podman set no quota the container reads ({line or proc.stderr.strip()[-200:]})")
        return None
    return line


def compare_with_host(url: str, models_dir: Path, check: Checks) -> None:
    with UvicornServer(models_dir) as host:
        models = [m["manifest"]["name"] for m in httpx.get(f"{host.url}/models", timeout=10).json()["models"]]
        for model in models:
            body = {"texts": TEXTS, "model": model}
            got = httpx.post(f"{url}/classify", json=body, timeout=10)
            want = httpx.post(f"{host.url}/classify", json=body, timeout=10)
            same = got.status_code == want.status_code == 200 and got.json() == want.json()
            if not same and got.status_code == 200:  # report the largest difference when not byte-equal
                diff = max(abs(g["probabilities"][k] - w["probabilities"][k])
                           for g, w in zip(got.json()["predictions"], want.json()["predictions"], strict=True)
                           for k in g["probabilities"])
                labels = [p["label"] for p in got.json()["predictions"]] == \
                    [p["label"] for p in want.json()["predictions"]]
                same = labels and diff <= 1e-6
                check(f"/classify {model} equals the host's", same, f"labels equal {labels}, max |dp| {diff:.1e}")
            else:
                check(f"/classify {model} equals the host's", same, f"{len(TEXTS)} texts, identical JSON"
                      if same else got.text[:200])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=pm.ROOT / "models", help="the folders copied into the image")
    ap.add_argument("--no-build", action="store_true", help="test the image already tagged")
    args = ap.parse_args()
    pm.require_podman()
    if not (args.models / "sst2-dan-lowrank" / "manifest.json").exists():
        raise SystemExit(f"no exported models under {args.models}: run `make models` first")

    check = Checks()
    if not args.no_build:
        base = pm.base_image()
        seconds = pm.build(pm.IMAGE, base=base)
        print(f"built {pm.IMAGE} from {base} in {seconds:.0f} s")
    size = pm.image_size(pm.IMAGE)
    print(f"image size {size / 1e6:.0f} MB (goal < 300 MB); MB by folder, then the largest packages:\n"
          f"{space_report(pm.IMAGE)}")
    check("image size under 300 MB", size < 300e6, f"{size / 1e6:.0f} MB")
    check("HEALTHCHECK kept in the image", "health/ready" in pm.out(
        "image", "inspect", "--format", "{{json .Config.Healthcheck}}", pm.IMAGE), "docker format")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    pm.podman("rm", "--force", NAME, check=False)
    # the image as shipped: its CMD (0.0.0.0:8000), uid and HEALTHCHECK; bridge network, port published
    pm.podman("run", "--detach", "--name", NAME, "--ulimit", "host", "--publish", f"127.0.0.1:{port}:8000",
              pm.IMAGE)
    try:
        check("GET /health/ready", True, f"200 after {wait_ready(url):.1f} s")
        compare_with_host(url, args.models, check)
        uid = pm.podman("exec", NAME, "id", "-u", check=False).stdout.strip()
        check("runs as a non-root uid", uid not in ("", "0"), f"uid {uid}")
        torch = pm.podman("exec", NAME, "python", "-c", "import torch", check=False)
        check("torch is not importable", torch.returncode != 0 and "No module named 'torch'" in torch.stderr,
              torch.stderr.strip().splitlines()[-1] if torch.stderr.strip() else f"rc {torch.returncode}")
        hc = pm.podman("healthcheck", "run", NAME, check=False)
        check("HEALTHCHECK reports healthy", hc.returncode == 0 and health_status() == "healthy",
              f"podman healthcheck run -> {hc.returncode}, status {health_status()}")
        start = time.monotonic()
        pm.podman("stop", "--time", str(GRACE_S), NAME, timeout=GRACE_S + 30)
        took = time.monotonic() - start
        code = pm.out("inspect", "--format", "{{.State.ExitCode}}", NAME)
        check(f"podman stop (SIGTERM) exits 0 within the {GRACE_S} s grace", code == "0" and took < GRACE_S,
              f"exit {code} after {took:.1f} s")
    finally:
        logs = pm.podman("logs", NAME, check=False)
        pm.podman("rm", "--force", NAME, check=False)
    workers = [line for line in (logs.stderr + logs.stdout).splitlines() if "worker(s)" in line]
    check("the CMD picks its worker count from the container (--workers auto)",
          bool(workers) and "(auto: " in workers[0], workers[0] if workers else "no 'worker(s)' line in the logs")
    quota = cpu_quota_workers()
    if quota is not None:
        check("a 1-CPU quota (podman run --cpus 1) means one worker", quota.endswith("(1, 'auto: 1 usable CPU(s)')"),
              quota)
    if not check.ok:
        print(logs.stdout[-3000:], logs.stderr[-3000:], file=sys.stderr)
    passed = sum(ok for _, ok, _ in check.rows)
    print(f"\nimage-test: {passed} passed, {len(check.rows) - passed} failed")
    return 0 if check.ok else 1


if __name__ == "__main__":
    sys.exit(main())
