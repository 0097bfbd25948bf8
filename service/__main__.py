"""`python -m service [uvicorn options]`: uvicorn with the app factory preset (what the image runs).

On SIGTERM (or SIGINT) uvicorn stops accepting connections and lets in-flight requests finish; it
then re-raises the signal, so the process would end as "killed by SIGTERM" (exit -15 / 143). After
that graceful shutdown this entry point exits 0 instead, the status an orchestrator expects from a
clean stop. Any uvicorn option is passed through (`--host`, `--port`, `--workers`, ...).
"""

from __future__ import annotations

import signal
import sys

import uvicorn.main

from service.metrics import prepare_multiprocess


def _exit_zero(signum, frame) -> None:
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    # uvicorn installs its own handlers while serving and restores these before re-raising the signal
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_zero)
    args = ["--factory", "service.main:create_app", *(sys.argv[1:] if argv is None else argv)]
    prepare_multiprocess(args)  # --workers N > 1: the workers share a folder so /metrics sums them all
    uvicorn.main.main(args=args, prog_name="python -m service")


if __name__ == "__main__":
    main()
