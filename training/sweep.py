"""The sweep: datasets x model x method x reduction x seeds, resumable, one results CSV.

Cells are grouped by (dataset, vocabulary, model, seed): a group loads its data once, trains the full
model once and shares it (and each online model) between its cells through the workbench cache.
A cell whose result JSON exists is skipped, so an interrupted sweep resumes where it stopped.

    runs/sweep/<dataset>-<vocab>-<model>-s<seed>/<method>@<p>.json   one result per cell
    runs/sweep/<dataset>-<vocab>-<model>-s<seed>/cache/*.pt           trained models
    runs/sweep/config.json                                            the sweep's configuration
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from training.architectures import ARCHITECTURES, get_architecture
from training.checkpoint import write_json
from training.methods import METHODS, evaluate
from training.train import FitConfig
from training.workbench import DataConfig, Workbench


def _known(what: str, values: list[str], allowed) -> list[str]:
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; choose from {sorted(allowed)}")
    return values


class Block(BaseModel):
    """A product of settings; a sweep is the union of its blocks' cells."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    datasets: list[str] = Field(min_length=1)
    models: list[str] = Field(default=["dan"], min_length=1)
    methods: list[str] = Field(min_length=1)
    reductions: list[float] = Field(default=[0.9], min_length=1)
    seeds: list[int] = Field(default=[0, 1, 2], min_length=1)
    vocab_extra: int = Field(default=0, ge=0, description="also add the N most frequent GloVe words")

    @field_validator("models")
    @classmethod
    def _models(cls, v: list[str]) -> list[str]:
        return _known("model(s)", v, ARCHITECTURES)

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str]) -> list[str]:
        return _known("method(s)", v, METHODS)

    @field_validator("reductions")
    @classmethod
    def _reductions(cls, v: list[float]) -> list[float]:
        if any(not 0.0 < p < 1.0 for p in v):
            raise ValueError("target reductions must be in (0, 1)")
        return v


class SweepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    blocks: list[Block] = Field(min_length=1)
    data_root: Path | None = None
    text_col: str = "text"
    label_col: str = "label"
    out_dir: Path = Path("runs/sweep")
    csv: Path | None = Field(default=None, description="results CSV; default <out_dir>/results.csv")
    limit_train: int | None = Field(default=None, ge=10)
    train: dict[str, FitConfig] = Field(default_factory=dict, description="per model ('dan') or per dataset "
                                        "and model ('trec:dan'); default the architecture's")
    retrain: dict[str, FitConfig] = Field(default_factory=dict, description="per model or per dataset and model; "
                                          "default the architecture's")
    workers: int = Field(default=1, ge=1)
    vectors: Literal["glove50", "spacy300"] = Field(default="glove50", description="pretrained vectors")
    vectors_path: Path | None = Field(default=None, description="spacy300: an archive instead of the pinned wheel")
    threads: int = Field(default=1, ge=1, description="torch threads per worker")

    @model_validator(mode="after")
    def _check(self) -> SweepConfig:
        for d in (self.train, self.retrain):
            unknown = sorted(k for k in d if k.rpartition(":")[2] not in ARCHITECTURES)
            if unknown:
                raise ValueError(f"train/retrain given for unknown model(s) {unknown}")
        return self

    def fit_config(self, kind: str, dataset: str, arch: str) -> FitConfig:
        """`kind` is 'train' or 'retrain': the dataset-specific entry, else the model's, else the default."""
        spec = get_architecture(arch)
        given, default = (self.train, spec.train) if kind == "train" else (self.retrain, spec.retrain)
        return given.get(f"{dataset}:{arch}", given.get(arch, default))

    def data(self, dataset: str, vocab_extra: int) -> DataConfig:
        return DataConfig(dataset=dataset, data_root=self.data_root, text_col=self.text_col,
                          label_col=self.label_col, limit_train=self.limit_train, vocab_extra=vocab_extra,
                          vectors=self.vectors, vectors_path=self.vectors_path)

    @property
    def csv_path(self) -> Path:
        return self.csv or self.out_dir / "results.csv"


Group = tuple[str, int, str, int]  # dataset, vocab_extra, model, seed
Cell = tuple[str, float | None]  # method, reduction


def plan(cfg: SweepConfig) -> dict[Group, list[Cell]]:
    """All cells, grouped, without duplicates (reduction is None for methods that ignore it)."""
    groups: dict[Group, list[Cell]] = {}
    for b in cfg.blocks:
        for ds in b.datasets:
            for arch in b.models:
                for seed in b.seeds:
                    cells = groups.setdefault((ds, b.vocab_extra, arch, seed), [])
                    for name in b.methods:
                        for p in (b.reductions if METHODS[name].uses_reduction else [None]):
                            if (name, p) not in cells:
                                cells.append((name, p))
    return groups


def in_grid_order(cfg: SweepConfig) -> list[tuple[Group, list[Cell]]]:
    """Each block's groups in turn, each (group, cell) once: a sweep cut short has run its first blocks."""
    seen: set[tuple[Group, Cell]] = set()
    out = []
    for b in cfg.blocks:
        for g, cells in plan(cfg.model_copy(update={"blocks": [b]})).items():
            new = [c for c in cells if (g, c) not in seen]
            seen.update((g, c) for c in new)
            if new:
                out.append((g, new))
    return out


def group_dir(cfg: SweepConfig, g: Group) -> Path:
    ds, extra, arch, seed = g
    return cfg.out_dir / f"{ds}-{'v' + str(extra) if extra else 'train'}-{arch}-s{seed}"


def cell_path(cfg: SweepConfig, g: Group, cell: Cell) -> Path:
    name, p = cell
    return group_dir(cfg, g) / f"{name.replace('+', '_')}@{'-' if p is None else f'{p:g}'}.json"


def run_group(cfg: SweepConfig, g: Group, cells: list[Cell]) -> list[dict[str, Any]]:
    """Run a group's unfinished cells (in a worker process); return all of its results."""
    import torch

    torch.set_num_threads(cfg.threads)
    todo = [c for c in cells if not cell_path(cfg, g, c).exists()]
    if todo:
        ds, extra, arch, seed = g
        task = cfg.data(ds, extra).load()
        bench = Workbench(task, arch, seed, group_dir(cfg, g) / "cache", cfg.fit_config("train", ds, arch),
                          cfg.fit_config("retrain", ds, arch), log=lambda *_: None)
        for cell in todo:
            write_json(cell_path(cfg, g, cell), evaluate(bench, METHODS[cell[0]], cell[1]))
    return [json.loads(cell_path(cfg, g, c).read_text()) for c in cells]


def _cost(g: Group) -> float:
    return get_architecture(g[2]).cost * (2.0 if g[1] else 1.0)


def run_sweep(cfg: SweepConfig, progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Run every unfinished cell (in `cfg.workers` processes) and write the results CSV."""
    groups = plan(cfg)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    (cfg.out_dir / "config.json").write_text(cfg.model_dump_json(indent=2))
    order = sorted(groups, key=_cost, reverse=True)  # longest first: the pool finishes evenly
    n_cells = sum(len(c) for c in groups.values())
    n_todo = sum(not cell_path(cfg, g, c).exists() for g, cells in groups.items() for c in cells)
    rows: list[dict[str, Any]] = []
    started = time.time()
    if cfg.workers == 1:  # in the grid's order (its first blocks matter most), the CSV rewritten as cells finish
        done: dict[Path, dict[str, Any]] = {}
        for g, cells in in_grid_order(cfg):
            for cell, row in zip(cells, run_group(cfg, g, cells), strict=True):
                done[cell_path(cfg, g, cell)] = row
            write_csv(cfg.csv_path, list(done.values()))
            if progress:
                progress(len(cells), n_cells)
        rows = list(done.values())
    else:
        with ProcessPoolExecutor(max_workers=cfg.workers) as pool:
            futures = {pool.submit(run_group, cfg, g, groups[g]): g for g in order}
            for f in as_completed(futures):
                rows += f.result()
                if progress:
                    progress(len(groups[futures[f]]), n_cells)
    write_csv(cfg.csv_path, rows)
    if n_todo:
        record_timing(cfg.out_dir / "timing.json", round(time.time() - started, 1), n_todo, n_cells, cfg.workers)
    return rows


def collect(cfg: SweepConfig) -> list[dict[str, Any]]:
    """Write the results CSV from the cells already finished, running nothing (a sweep cut short)."""
    rows = [json.loads(path.read_text()) for g, cells in in_grid_order(cfg) for c in cells
            if (path := cell_path(cfg, g, c)).exists()]
    write_csv(cfg.csv_path, rows)
    return rows


def record_timing(path: Path, seconds: float, cells_run: int, cells: int, workers: int) -> None:
    """Add one invocation's wall time to timing.json; `seconds` is the sum over the invocations that ran
    cells (a resumed sweep adds its own time, one with nothing left to do adds nothing)."""
    old = json.loads(path.read_text()) if path.exists() else {}
    runs = old.get("runs", [{k: old[k] for k in ("seconds", "cells_run", "workers") if k in old}] if old else [])
    runs.append({"seconds": seconds, "cells_run": cells_run, "workers": workers})
    path.write_text(json.dumps({"seconds": round(sum(r["seconds"] for r in runs), 1), "cells": cells,
                                "workers": workers, "runs": runs}, indent=2))


CSV_COLUMNS = ["dataset", "vocab", "vocab_size", "dim", "model", "method", "kind", "reduction", "seed", "bits",
               "scope", "energy", "rank", "embedding_reduction_params", "dev_acc", "test_acc", "params",
               "model_bytes", "embedding_bytes", "embedding_bytes_reduction", "model_bytes_reduction", "seconds"]


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda r: (r["dataset"], r["vocab"], r["model"], r["method"],
                                       -1.0 if r["reduction"] is None else r["reduction"], r["seed"]))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None or (isinstance(r.get(k), float) and math.isnan(r[k]))
                            else r[k]) for k in CSV_COLUMNS})
