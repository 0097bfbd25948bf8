"""Podman as it works on hosts without a Docker engine or a reachable registry (see env.sh)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CONF = Path(os.environ.get("SLIMTEXT_PODMAN_CONF", "/tmp/slimtext-containers.conf"))
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
UPSTREAM_BASE = "docker.io/library/python:3.11-slim-bookworm"
LOCAL_BASE = "localhost/slimtext-base:bookworm-slim"
IMAGE = os.environ.get("SLIMTEXT_IMAGE", "localhost/slimtext:latest")


def env() -> dict[str, str]:
    if not CONF.exists():
        CONF.write_text("[containers]\ndefault_ulimits = []\n")
    return {**os.environ, "CONTAINERS_CONF": str(CONF)}


def podman(*args: str, check: bool = True, timeout: float = 600, quiet: bool = True) -> subprocess.CompletedProcess:
    """Run podman; stderr's systemd-timer noise (no systemd here) is dropped unless the call fails."""
    proc = subprocess.run([*PODMAN, *args], env=env(), capture_output=quiet, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def out(*args: str, timeout: float = 120) -> str:
    return podman(*args, timeout=timeout).stdout.strip()


def require_podman() -> None:
    if shutil.which("podman") is None:
        raise SystemExit("podman is not installed (Debian: apt-get install -y podman runc mmdebstrap)")


def base_image() -> str:
    """$PYTHON_IMAGE, else python:3.11-slim-bookworm when a registry answers, else a local Debian base."""
    if os.environ.get("PYTHON_IMAGE"):
        return os.environ["PYTHON_IMAGE"]
    if podman("image", "exists", UPSTREAM_BASE, check=False).returncode == 0:
        return UPSTREAM_BASE
    try:
        if podman("pull", "--quiet", UPSTREAM_BASE, check=False, timeout=30).returncode == 0:
            return UPSTREAM_BASE
    except subprocess.TimeoutExpired:
        pass
    print(f"no registry reachable: using {LOCAL_BASE} made from Debian's packages (deploy/podman/base.sh)")
    subprocess.run([str(HERE / "base.sh"), LOCAL_BASE], env=env(), check=True, timeout=900)
    return LOCAL_BASE


def build(tag: str, *, base: str, target: str | None = None, containerfile: Path | None = None,
          context: Path = ROOT) -> float:
    """`podman build` with host networking, the host's CA bundle and pip.conf (how pip reaches its
    registry here), Docker format (keeps HEALTHCHECK); returns the wall time in seconds."""
    args = ["build", "--format", "docker", "--network", "host", "--ulimit", "nofile=20000:20000",
            "--build-arg", f"PYTHON_IMAGE={base}", "-t", tag]
    for path in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf"):
        if Path(path).exists():
            args += ["-v", f"{path}:{path}:ro"]
    if target:
        args += ["--target", target]
    if containerfile:
        args += ["-f", str(containerfile)]
    start = time.monotonic()
    podman(*args, str(context), quiet=False, timeout=1800)
    return time.monotonic() - start


def image_size(tag: str) -> int:
    return int(out("image", "inspect", "--format", "{{.Size}}", tag))
