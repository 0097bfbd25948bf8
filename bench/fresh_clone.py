"""`make run` from a fresh clone, timed to its first answer (issue 23: at most 3 minutes on a 2-core machine).

    python3 -m bench.fresh_clone            # clones this checkout beside it, runs `make run`, prints the split

It clones the repository (committed files only) into a sibling folder, so `../shared/datasets` resolves as it
does for a user's checkout, starts `make run PORT=<free port>` in its own process group, polls
`/health/ready` every 0.2 s, sends one `/classify`, stops the server and removes the clone. The split comes
from the files `make run` writes: `.venv/.installed-run` (the virtual environment is built) and
`models/sst2-dan-lowrank/manifest.json` (the models are trained, exported and scored). pip's cache and
`~/.cache/slimtext` (the vectors wheel) are whatever this machine holds: say which when quoting the figure.
Needs only python3, git and make (no .venv of its own).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAMPS = {"venv": ".venv/.installed-run", "models": "models/sst2-dan-lowrank/manifest.json"}
TEXT = "a gorgeous , witty , seductive movie ."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def classify(port: int) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/classify", data=json.dumps({"texts": [TEXT]}).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def run(dest: Path, timeout_s: float, keep: bool) -> dict[str, float]:
    if dest.exists():
        raise SystemExit(f"{dest} exists: remove it or pass another --dest")
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    port, log = free_port(), dest / "make-run.log"
    start = time.time()
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(["make", "run", f"PORT={port}"], cwd=dest, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        while not ready(port):
            if proc.poll() is not None:
                raise SystemExit(f"make run exited with {proc.returncode} before serving; see {log}"
                                 + ("" if keep else " (pass --keep to look at it)"))
            if time.time() - start > timeout_s:
                raise SystemExit(f"not serving after {timeout_s:.0f} s; see {log}")
            time.sleep(0.2)
        served = time.time()
        answer = classify(port)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    stamps = {k: (dest / p).stat().st_mtime for k, p in STAMPS.items()}
    split = {"venv_s": stamps["venv"] - start, "models_s": stamps["models"] - stamps["venv"],
             "serve_s": served - stamps["models"], "total_s": served - start}
    label = answer["predictions"][0]["label"]
    print(f"make run from a fresh clone: {split['total_s']:.1f} s to the first /classify answer "
          f"({answer['model']}: {label!r} for {TEXT!r})")
    print("| build .venv | train, compress, export, score | start serving | total |")
    print("|---:|---:|---:|---:|")
    print(f"| {split['venv_s']:.1f} s | {split['models_s']:.1f} s | {split['serve_s']:.1f} s | "
          f"{split['total_s']:.1f} s |")
    if not keep:
        shutil.rmtree(dest)
    return split


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dest", type=Path, default=ROOT.parent / f"{ROOT.name}-fresh-clone",
                   help="where to clone (default: beside this checkout, so ../shared resolves the same)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the server")
    p.add_argument("--keep", action="store_true", help="leave the clone (its .venv, models/, make-run.log)")
    args = p.parse_args(argv)
    run(args.dest.resolve(), args.timeout, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
