"""The sweep on a Ray cluster: `python -m training sweep ... --backend ray [--address ADDR]`.

Imported only for `--backend ray` (the local backend never imports Ray). Every unfinished cell is one Ray
task asking for `threads` CPUs; the driver (this process) writes each result to the same cell JSON and the
same results CSV as the local backend, so a sweep can be resumed with either backend.

- Shared models: a cell trains the models it needs (the group's full model, an online model) in a private
  cache and publishes them into `<out>/<group>/cache` with an atomic rename; it starts from whatever that
  folder already holds. A group's first cell runs alone, the rest once it is done, so the full model is
  trained once per group. On a cluster without a shared file system each node keeps its own copy of the
  folder and trains what it lacks (same seed, same weights).
- A failed cell (an exception, or its worker or node died) is submitted again up to `retries` times, then
  reported; the other cells go on and the CSV holds every finished cell.
- Ctrl-C cancels (force-kills) every task of the sweep still queued or running on the cluster.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray

from training.sweep import Cell, Group, SweepConfig, cell_path, group_dir, in_grid_order, record_timing, write_csv


class CellsFailed(RuntimeError):
    """Some cells failed after every retry; the finished ones are in the CSV."""

    def __init__(self, failed: dict[str, str], attempts: int):
        self.failed = failed
        lines = "\n".join(f"  {k}: {v}" for k, v in failed.items())
        super().__init__(f"{len(failed)} cell(s) failed after {attempts} attempt(s) each:\n{lines}")


def run_cell(cfg_json: str, group: Group, cell: Cell, cache_dir: str) -> dict[str, Any]:
    """One cell, in a Ray worker: the result row and where it ran."""
    import torch

    from training.methods import METHODS, evaluate
    from training.workbench import Workbench

    cfg = SweepConfig.model_validate_json(cfg_json)
    torch.set_num_threads(cfg.threads)
    shared = Path(cache_dir)
    shared.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="slimtext-cell-") as tmp:
        private = Path(tmp)
        for p in shared.glob("*.pt"):  # read-only: the workbench loads these instead of training them
            (private / p.name).symlink_to(p)
        ds, extra, arch, seed = group
        task = _load(cfg.data(ds, extra))
        bench = Workbench(task, arch, seed, private, cfg.fit_config("train", ds, arch),
                          cfg.fit_config("retrain", ds, arch), log=lambda *_: None)
        row = evaluate(bench, METHODS[cell[0]], cell[1])
        for p in private.glob("*.pt"):
            if not p.is_symlink() and not (shared / p.name).exists():
                part = shared / f".{p.name}.{uuid.uuid4().hex}.part"
                shutil.copyfile(p, part)
                os.replace(part, shared / p.name)
    return {"row": row, "node": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
            "pid": os.getpid()}


@functools.lru_cache(maxsize=1)
def _load(data):
    """A worker keeps its last dataset: Ray reuses workers, so a group's next cells skip loading it."""
    return data.load()


def _absolute(cfg: SweepConfig) -> SweepConfig:
    """Paths as the driver sees them: a worker's current directory is not the driver's."""
    update = {k: Path(v).resolve() for k in ("out_dir", "data_root", "vectors_path", "csv")
              if (v := getattr(cfg, k)) is not None}
    return cfg.model_copy(update=update)


def _label(g: Group, cell: Cell) -> str:
    ds, extra, arch, seed = g
    name, p = cell
    return f"{ds}/{'v' + str(extra) if extra else 'train'}/{arch}/s{seed}/{name}@{'-' if p is None else f'{p:g}'}"


def run_sweep_ray(cfg: SweepConfig, address: str | None = None, retries: int = 1,
                  progress: Callable[[int, int], None] | None = None, log: Callable[[str], None] = print,
                  cell_fn: Callable[..., dict[str, Any]] = run_cell) -> list[dict[str, Any]]:
    """Run every unfinished cell as a Ray task and write the results CSV; raise CellsFailed at the end
    when some cells failed `retries` + 1 times. `address` None: $RAY_ADDRESS, else a local Ray."""
    if retries < 0:
        raise ValueError("retries must be >= 0")
    cfg = _absolute(cfg)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    (cfg.out_dir / "config.json").write_text(cfg.model_dump_json(indent=2))
    order = in_grid_order(cfg)
    n_cells = sum(len(cells) for _, cells in order)
    done: dict[Path, dict[str, Any]] = {}
    waiting: dict[Group, list[Cell]] = {}  # cells held back until their group's first cell has finished
    todo: list[tuple[Group, Cell]] = []
    for g, cells in order:
        finished = [c for c in cells if cell_path(cfg, g, c).exists()]
        for c in finished:
            done[cell_path(cfg, g, c)] = json.loads(cell_path(cfg, g, c).read_text())
        left = [c for c in cells if c not in finished]
        if not left:
            continue
        if finished or (group_dir(cfg, g) / "cache" / "full.pt").exists():
            todo += [(g, c) for c in left]
        else:
            todo.append((g, left[0]))
            if left[1:]:
                waiting[g] = left[1:]
    n_todo = len(todo) + sum(map(len, waiting.values()))
    if progress and done:
        progress(len(done), n_cells)
    if not n_todo:
        write_csv(cfg.csv_path, list(done.values()))
        return list(done.values())

    started_ray = not ray.is_initialized()
    if started_ray:
        kwargs: dict[str, Any] = {"address": address, "log_to_driver": False}
        if address is None and not os.environ.get("RAY_ADDRESS"):
            kwargs["include_dashboard"] = False  # a local Ray of its own
        ray.init(**kwargs)
    cpus = int(ray.cluster_resources().get("CPU", 0))
    log(f"ray: {len(ray.nodes())} node(s), {cpus} CPU(s); {n_todo} of {n_cells} cells to run, "
        f"{cfg.threads} CPU(s) each")
    # retries are the driver's (max_retries=0): one count for exceptions and dead workers or nodes
    remote = ray.remote(cell_fn).options(num_cpus=cfg.threads, max_retries=0)
    cfg_json = cfg.model_dump_json()
    pending: dict[Any, tuple[Group, Cell]] = {}
    attempts: dict[tuple[Group, Cell], int] = {}
    failed: dict[str, str] = {}
    where: dict[str, dict[str, Any]] = {}

    def submit(g: Group, c: Cell) -> None:
        attempts[(g, c)] = attempts.get((g, c), 0) + 1
        pending[remote.remote(cfg_json, g, c, str(group_dir(cfg, g) / "cache"))] = (g, c)

    def release(g: Group) -> None:
        for c in waiting.pop(g, []):
            submit(g, c)

    started = time.time()
    try:
        for g, c in todo:
            submit(g, c)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)  # a timeout: Ctrl-C is seen at once
            if not ready:
                continue
            g, c = pending.pop(ready[0])
            try:
                out = ray.get(ready[0])
            except ray.exceptions.RayError as e:
                reason = " ".join(str(getattr(e, "cause", None) or e).split())[-400:]
                if attempts[(g, c)] <= retries:
                    log(f"ray: {_label(g, c)} failed (attempt {attempts[(g, c)]} of {retries + 1}), "
                        f"retrying: {reason}")
                    submit(g, c)
                    continue
                failed[_label(g, c)] = reason
                log(f"ray: {_label(g, c)} FAILED after {attempts[(g, c)]} attempt(s): {reason}")
                release(g)
                continue
            from training.checkpoint import write_json

            write_json(cell_path(cfg, g, c), out["row"])
            done[cell_path(cfg, g, c)] = json.loads(cell_path(cfg, g, c).read_text())
            where[_label(g, c)] = {k: out[k] for k in ("node", "host", "pid")} | {"attempts": attempts[(g, c)]}
            release(g)
            write_csv(cfg.csv_path, list(done.values()))
            if progress:
                progress(1, n_cells)
    except BaseException:  # Ctrl-C (KeyboardInterrupt) or anything else: nothing of this sweep keeps running
        for ref in pending:
            ray.cancel(ref, force=True)
        log(f"ray: cancelled {len(pending)} task(s) of this sweep")
        raise
    finally:
        write_csv(cfg.csv_path, list(done.values()))
        _record_nodes(cfg.out_dir / "ray-cells.json", where)
        if started_ray:
            ray.shutdown()
    record_timing(cfg.out_dir / "timing.json", round(time.time() - started, 1), n_todo, n_cells, max(cpus, 1))
    if failed:
        raise CellsFailed(failed, retries + 1)
    return list(done.values())


def _record_nodes(path: Path, where: dict[str, dict[str, Any]]) -> None:
    """Which node ran which cell (merged over resumed runs): cells -> {node, host, pid, attempts}."""
    if not where:
        return
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **where}, indent=2, sort_keys=True))
