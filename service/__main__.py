"""`python -m service [uvicorn options]`: uvicorn with the app factory preset (what the image runs).

On SIGTERM (or SIGINT) uvicorn stops accepting connections and lets in-flight requests finish; it
then re-raises the signal, so the process would end as "killed by SIGTERM" (exit -15 / 143). After
that graceful shutdown this entry point exits 0 instead, the status an orchestrator expects from a
clean stop. Any uvicorn option is passed through (`--host`, `--port`, `--workers`, ...).

Reliability defaults (each overridable by passing the option): the hardened httptools protocol
(service/protocol.py: header cap, header/body deadlines, drain on SIGTERM), `--timeout-keep-alive 5`,
`--timeout-graceful-shutdown 20`; the open-files limit is raised to its hard limit. Workers: `--workers auto`
(one process per CPU this process may use, cgroup quota included; service/workers.py) unless `--workers N` or
WEB_CONCURRENCY says otherwise. The SLIMTEXT_* settings are checked before uvicorn starts: a bad one prints one
line and exits 2.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import resource
import signal
import sys

import uvicorn.main
from pydantic import ValidationError

from service.metrics import prepare_multiprocess
from service.supervisor import address, exit_zero, supervise
from service.workers import given_workers, resolve_workers

DEFAULTS = ["--http", "service.protocol:HardenedHttpToolsProtocol", "--timeout-keep-alive", "5",
            "--timeout-graceful-shutdown", "20", "--no-server-header"]  # no "server: uvicorn" fingerprint



def raise_nofile_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (1024 runs out at ~1,000 idle sockets); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            pass
    return soft


def tune_malloc(arenas: int = 1) -> None:
    """glibc gives a thread that allocates its own malloc arena, which keeps what it freed: the worker
    thread's parse/tokenize buffers would pile up in a second heap, so one arena. (Not glibc: no-op.)"""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # M_ARENA_MAX


def settings_help() -> str:
    from service.config import Settings

    lines = ["", "Settings (environment variables):"]
    for name, field in Settings.model_fields.items():
        default = field.default if field.default is not None else "-"
        lines.append(f"  SLIMTEXT_{name.upper():<28} {field.description or ''} (default: {default})")
    return "\n".join(lines)


def check_settings(args: list[str]) -> list[str]:
    """The SLIMTEXT_* settings checked (a bad one: one line, exit 2); returns uvicorn's arguments with the worker
    count resolved (`--workers auto`, the default: the CPUs this process may use, service/workers.py)."""
    from service.config import Settings

    try:
        settings = Settings()
    except ValidationError as e:
        problems = "; ".join(f"SLIMTEXT_{'.'.join(map(str, err['loc'])).upper()} ({'.'.join(map(str, err['loc']))}): "
                             f"{err['msg']}" for err in e.errors())
        print(f"python -m service: bad setting: {problems}", file=sys.stderr)
        sys.exit(2)
    if settings.grpc_port and importlib.util.find_spec("grpc") is None:
        print("python -m service: bad setting: SLIMTEXT_GRPC_PORT needs the grpc extra "
              "(pip install 'slimtext[serve,grpc]'); the default serving image leaves it out", file=sys.stderr)
        sys.exit(2)
    try:
        args, workers, why = resolve_workers(args, grpc=settings.grpc_port is not None)
    except ValueError as e:
        print(f"python -m service: {e}", file=sys.stderr)
        sys.exit(2)
    if settings.grpc_port and workers > 1:  # every worker would bind the same gRPC port
        print("python -m service: bad setting: SLIMTEXT_GRPC_PORT needs one worker (--workers 1); "
              "run one gRPC process per port instead", file=sys.stderr)
        sys.exit(2)
    print(f"python -m service: {workers} worker(s) ({why})", file=sys.stderr)
    return args


def main(argv: list[str] | None = None) -> None:
    user = sys.argv[1:] if argv is None else argv
    if "--help" in user:
        try:
            uvicorn.main.main(args=["--help"], prog_name="python -m service")
        finally:
            print(settings_help())
    user = check_settings(user)
    raise_nofile_limit()
    tune_malloc()
    # uvicorn installs its own handlers while serving and restores these before re-raising the signal
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, exit_zero)
    args = ["--factory", "service.main:create_app", *DEFAULTS, *user]  # a repeated option: the last one wins
    prepare_multiprocess(args)  # --workers N > 1: the workers share a folder so /metrics sums them all
    workers = int(given_workers(args) or 1)
    if workers > 1 and address(args) is not None:  # one socket per worker (service/supervisor.py)
        sys.exit(supervise(args, workers))
    uvicorn.main.main(args=args, prog_name="python -m service")


if __name__ == "__main__":
    main()
