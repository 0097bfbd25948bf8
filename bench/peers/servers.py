"""The peers: how each one is started, what its requests look like and how to read its answers.

slimtext and the plain FastAPI app run from this interpreter (the `serve` extra has all they need); every other
peer runs from its own virtual environment `<venvs>/<peer>` holding the project (`[serve]`) plus that framework
(`make bench-peers` creates them: the frameworks pin fastapi/pydantic/uvicorn differently from the project).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.peers.model import MODEL_ENV, WORKERS_ENV
from bench.server import LOOPBACK, ROOT, free_port

Answer = tuple[str, list[float]]  # label, probabilities in the model's label order
MAX_BATCH, BATCH_WAIT_S = 64, 0.001  # every peer with a batching feature gets these (where it has the knob)


def texts_body(texts: list[str]) -> dict:
    return {"texts": texts}


def v2_body(texts: list[str]) -> dict:
    return {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}


def _from_predictions(preds: list[dict], labels: list[str]) -> list[Answer]:
    return [(p["label"], [float(p["probabilities"][lab]) for lab in labels]) for p in preds]


def parse_predictions(reply, labels: list[str]) -> list[Answer]:
    return _from_predictions(reply["predictions"], labels)


def parse_list(reply, labels: list[str]) -> list[Answer]:
    return _from_predictions(reply, labels)


def parse_v2(reply, labels: list[str]) -> list[Answer]:
    out = {o["name"]: o for o in reply["outputs"]}
    probs = [float(v) for v in out["probabilities"]["data"]]
    n = len(labels)
    return [(lab, probs[i * n: (i + 1) * n]) for i, lab in enumerate(out["label"]["data"])]


@dataclass(frozen=True)
class Peer:
    name: str
    venv: str | None  # None: this interpreter
    path: str
    body: Callable[[list[str]], dict]
    parse: Callable[[object, list[str]], list[Answer]]
    launch: Callable[[str, int, Path, Path], tuple[list[str], dict[str, str]]]  # python, port, model, tmp
    batching: str = "none"
    note: str = ""
    startup: str | None = None  # a regex for a line of its startup log worth recording (slimtext: its worker count)


def _slimtext(extra_env: dict[str, str], extra_args: tuple[str, ...] = ()):
    def launch(python: str, port: int, model: Path, tmp: Path):
        models = tmp / "models"  # a models folder holding just this model: `python -m service` serves all it finds
        models.mkdir()
        shutil.copytree(model, models / model.name)  # a copy: the service follows no symlink
        return ([python, "-m", "service", "--host", LOOPBACK, "--port", str(port), "--no-access-log", *extra_args],
                {"SLIMTEXT_MODELS_DIR": str(models), "SLIMTEXT_INTRA_OP_THREADS": "1", **extra_env})
    return launch


def _uvicorn_fastapi(workers: int):
    def launch(python: str, port: int, model: Path, tmp: Path):
        return ([python, "-m", "uvicorn", "bench.peers.fastapi_app:app", "--host", LOOPBACK, "--port", str(port),
                 "--workers", str(workers), "--no-access-log"], {})
    return launch


def _module(module: str, workers: int = 1):
    """`python -m <module> --host --port`, the framework's worker knob from $SLIMTEXT_PEER_WORKERS."""
    def launch(python: str, port: int, model: Path, tmp: Path):
        return [python, "-m", module, "--host", LOOPBACK, "--port", str(port)], {WORKERS_ENV: str(workers)}
    return launch


def _bentoml(workers: int):
    def launch(python: str, port: int, model: Path, tmp: Path):
        return ([python, "-m", "bentoml", "serve", "bench.peers.bentoml_app:Slimtext", "--host", LOOPBACK,
                 "--port", str(port)], {"BENTOML_DO_NOT_TRACK": "true", WORKERS_ENV: str(workers)})
    return launch


def _mlserver(workers: int):
    def launch(python: str, port: int, model: Path, tmp: Path):
        folder = tmp / "mlserver"
        (folder / "slimtext").mkdir(parents=True)
        (folder / "settings.json").write_text(json.dumps({
            "host": LOOPBACK, "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
            "debug": False, "parallel_workers": workers}))
        (folder / "slimtext" / "model-settings.json").write_text(json.dumps({
            "name": "slimtext", "implementation": "bench.peers.mlserver_app.SlimtextRuntime",
            "max_batch_size": MAX_BATCH, "max_batch_time": BATCH_WAIT_S}))
        return [python, "-m", "mlserver.cli.main", "start", str(folder)], {}
    return launch


SLIMTEXT_WORKERS_LINE = r"python -m service: \d+ worker\(s\).*"  # what `python -m service` says it picked
LITSERVE_BATCHING = f"max_batch_size {MAX_BATCH}, batch_timeout {BATCH_WAIT_S * 1e3:g} ms"
BENTOML_BATCHING = f"batchable, max_batch_size {MAX_BATCH} (adaptive wait)"
MLSERVER_BATCHING = f"adaptive, max_batch_size {MAX_BATCH}, max_batch_time {BATCH_WAIT_S * 1e3:g} ms"
RAY_BATCHING = f"@serve.batch max {MAX_BATCH}, wait {BATCH_WAIT_S * 1e3:g} ms"

# Every framework peer runs once with one worker and once with two (its own worker knob), so a multi-process
# slimtext is compared like for like; the 2-worker variants share the 1-worker peer's virtual environment.
PEERS: dict[str, Peer] = {p.name: p for p in (
    Peer("slimtext", None, "/classify", texts_body, parse_predictions, _slimtext({}), startup=SLIMTEXT_WORKERS_LINE,
         note="`python -m service`, production settings (batching off) with no `--workers` flag: the production "
              "default worker count (`--workers auto`: one per CPU this process may use, cgroup quota included)"),
    Peer("slimtext-1worker", None, "/classify", texts_body, parse_predictions, _slimtext({}, ("--workers", "1")),
         startup=SLIMTEXT_WORKERS_LINE, note="production settings with `--workers 1`: one process"),
    Peer("slimtext-2workers", None, "/classify", texts_body, parse_predictions, _slimtext({}, ("--workers", "2")),
         startup=SLIMTEXT_WORKERS_LINE, note="production settings with `--workers 2`"),
    Peer("slimtext+batching", None, "/classify", texts_body, parse_predictions,
         _slimtext({"SLIMTEXT_BATCHING": "true", "SLIMTEXT_BATCH_MAX_TEXTS": str(MAX_BATCH)}),
         batching=f"max {MAX_BATCH} texts, 500 us", startup=SLIMTEXT_WORKERS_LINE,
         note="the production default with `SLIMTEXT_BATCHING=true`"),
    Peer("fastapi", None, "/classify", texts_body, parse_predictions, _uvicorn_fastapi(1),
         note="pydantic in/out, sync `def` route, uvicorn 1 worker"),
    Peer("fastapi-2workers", None, "/classify", texts_body, parse_predictions, _uvicorn_fastapi(2),
         note="the same app with `uvicorn --workers 2` (two processes)"),
    Peer("litserve", "litserve", "/predict", texts_body, parse_predictions, _module("bench.peers.litserve_app"),
         batching=LITSERVE_BATCHING, note="LitAPI, 1 API server + 1 inference worker process"),
    Peer("litserve-2workers", "litserve", "/predict", texts_body, parse_predictions,
         _module("bench.peers.litserve_app", 2), batching=LITSERVE_BATCHING,
         note="the same with `LitServer(workers_per_device=2)`: 1 API server + 2 inference worker processes"),
    Peer("bentoml", "bentoml", "/classify", texts_body, parse_list, _bentoml(1), batching=BENTOML_BATCHING,
         note="@bentoml.service(workers=1)"),
    Peer("bentoml-2workers", "bentoml", "/classify", texts_body, parse_list, _bentoml(2), batching=BENTOML_BATCHING,
         note="the same with @bentoml.service(workers=2): two service worker processes"),
    Peer("mlserver", "mlserver", "/v2/models/slimtext/infer", v2_body, parse_v2, _mlserver(1),
         batching=MLSERVER_BATCHING,
         note="custom MLModel runtime, `parallel_workers` 1 (the default): 1 REST + 1 inference worker process"),
    Peer("mlserver-2workers", "mlserver", "/v2/models/slimtext/infer", v2_body, parse_v2, _mlserver(2),
         batching=MLSERVER_BATCHING,
         note="the same with settings.json `\"parallel_workers\": 2`: 1 REST process + 2 inference worker processes"),
    Peer("ray", "ray", "/classify", texts_body, parse_predictions, _module("bench.peers.ray_app"),
         batching=RAY_BATCHING, note="1 deployment, 1 replica, HTTP proxy actor"),
    Peer("ray-2replicas", "ray", "/classify", texts_body, parse_predictions, _module("bench.peers.ray_app", 2),
         batching=RAY_BATCHING,
         note="the same with `num_replicas=2` (each replica reserves 1 CPU: needs 2 CPUs for Ray)"),
)}


def python_for(peer: Peer, venvs: Path) -> Path | None:
    """The interpreter that runs `peer`, or None when its virtual environment is missing."""
    if peer.venv is None:
        return Path(sys.executable)
    python = venvs / peer.venv / "bin" / "python"
    return python if python.exists() else None


def post_json(url: str, body: dict, timeout: float = 30.0):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def process_tree(root: int) -> list[int]:
    tree, out, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(tree.get(pid, []))
    return out


def tree_memory(root: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes summed over the process and all its descendants; PSS splits shared pages between
    the processes that map them, so a multi-process server is not counted twice for what its processes share."""
    rss = pss = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return rss, pss


@dataclass
class PeerServer:
    """`with PeerServer(peer, python, model) as srv:` a real server on a free loopback port, ready when a
    one-text request answers 200; stopped with SIGTERM to its whole process tree (SIGKILL after 20 s)."""

    peer: Peer
    python: Path
    model: Path
    ready_timeout: float = 180.0
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}{self.peer.path}"

    def __enter__(self) -> PeerServer:
        self._tmp = tempfile.TemporaryDirectory(prefix=f"peer-{self.peer.name}-")
        tmp = Path(self._tmp.name)
        cmd, env = self.peer.launch(str(self.python), self.port, self.model, tmp)
        inherited = {k: v for k, v in os.environ.items() if k != "WEB_CONCURRENCY"}  # uvicorn's worker count: ours
        env = {**inherited, "PYTHONPATH": str(ROOT), MODEL_ENV: str(self.model.resolve()), "OMP_NUM_THREADS": "1",
               **env}
        self._log = (tmp / "server.log").open("w+")
        self.proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.peer.name} exited with {self.proc.returncode}: {self.last_lines()}")
            try:
                post_json(self.url, self.peer.body(["probe"]), timeout=5)
                return
            except (urllib.error.URLError, OSError, ValueError):
                time.sleep(0.25)
        raise TimeoutError(f"{self.peer.name} not ready after {self.ready_timeout:.0f} s: {self.last_lines()}")

    def memory(self) -> tuple[int, int]:
        return tree_memory(self.proc.pid)

    def log_line(self, pattern: str) -> str | None:
        """The first line of its log so far that matches the regex `pattern`, stripped; None if none does."""
        self._log.flush()
        self._log.seek(0)
        found = re.search(pattern, self._log.read())  # leaves the shared offset at the end, where the server writes
        return found.group(0).strip() if found else None

    def last_lines(self, n: int = 3) -> str:
        self._log.flush()
        self._log.seek(0)
        lines = [line.strip() for line in self._log.read().splitlines() if line.strip()]
        return " | ".join(lines[-n:])

    def stop(self) -> None:
        pids = process_tree(self.proc.pid)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
        for pid in pids:  # whatever of its tree is left (Ray's raylet/GCS, worker processes)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()
        self._tmp.cleanup()
