"""Run folders for the `train` / `compress` / `export` / `evaluate` commands.

A run folder holds `full.pt` (a trained model; `compress` runs hold `model.pt`), `vocab.json`,
`config.json` (everything needed to rebuild its data and redo it) and `results.json`.
The same config and seed give the same numbers (one torch thread, seeded shuffles and dropout).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch.nn as nn
from pydantic import BaseModel, ConfigDict, Field, model_validator

from slimtext.data import datasets_root
from training.checkpoint import load_model, save_model
from training.methods import (
    METHODS,
    RETRAIN,
    TRAIN,
    Method,
    Task,
    Workbench,
    apply_method,
    evaluate,
    measure,
    write_json,
)
from training.model import ARCHITECTURES
from training.train import FitConfig


class DataConfig(BaseModel):
    """Where the examples come from: a folder with train/dev/test .tsv/.csv/.jsonl files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: Path | None = Field(default=None, description="dataset folder (wins over dataset + data_root)")
    dataset: str | None = None
    data_root: Path | None = None
    text_col: str = "text"
    label_col: str = "label"
    limit_train: int | None = Field(default=None, ge=10)
    vocab_extra: int = Field(default=0, ge=0)
    glove: bool = True

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if (self.data is None) == (self.dataset is None):
            raise ValueError("give either a dataset folder (--data) or a dataset name (--dataset)")
        if self.vocab_extra and not self.glove:
            raise ValueError("an extended vocabulary needs GloVe")
        return self

    def folder(self) -> Path:
        return Path(self.data) if self.data is not None else datasets_root(self.data_root) / self.dataset

    def load(self) -> Task:
        return Task.load(self.folder(), self.text_col, self.label_col, self.limit_train, self.vocab_extra,
                         glove=self.glove)


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data: DataConfig
    model: str = "dan"
    seed: int = 0
    fit: FitConfig | None = Field(default=None, description="default: training.methods.TRAIN[model]")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.model not in ARCHITECTURES:
            raise ValueError(f"unknown model {self.model!r}; choose from {sorted(ARCHITECTURES)}")
        return self


class CompressConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Path = Field(description="a `train` run folder")
    method: str
    reduction: float | None = Field(default=None, gt=0, lt=1)
    retrain: FitConfig | None = Field(default=None, description="default: training.methods.RETRAIN[model]")

    @model_validator(mode="after")
    def _check(self) -> CompressConfig:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {sorted(METHODS)}")
        if METHODS[self.method].uses_reduction and self.reduction is None:
            raise ValueError(f"method {self.method} needs --reduction")
        return self


def _bench(cfg: TrainConfig, run_dir: Path, task: Task, retrain: FitConfig | None = None, log=print) -> Workbench:
    return Workbench(task, cfg.model, cfg.seed, run_dir, cfg.fit or TRAIN[cfg.model], retrain or RETRAIN[cfg.model],
                     log=log)


def train_run(cfg: TrainConfig, run_dir: str | Path, log=print) -> dict[str, Any]:
    """Train the full model into `run_dir` (skipped if it is there) and write config + results."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps({"command": "train", **cfg.model_dump(mode="json")}, indent=2))
    task = cfg.data.load()
    task.tok.save(run_dir / "vocab.json")
    results = evaluate(_bench(cfg, run_dir, task, log=log), METHODS["full"], None)
    results["labels"] = task.labels
    write_json(run_dir / "results.json", results)
    return results


def load_train_config(run_dir: str | Path) -> TrainConfig:
    data = json.loads((Path(run_dir) / "config.json").read_text())
    if data.pop("command", None) != "train":
        raise ValueError(f"{run_dir}: not a `train` run folder")
    return TrainConfig.model_validate(data)


def compress_run(cfg: CompressConfig, run_dir: str | Path, log=print) -> dict[str, Any]:
    """Apply a compression method to a trained run; write the model, config and results to `run_dir`."""
    run_dir = Path(run_dir)
    train_cfg = load_train_config(cfg.source)
    task = train_cfg.data.load()
    bench = _bench(train_cfg, Path(cfg.source), task, cfg.retrain, log=log)
    method: Method = METHODS[cfg.method]
    started = time.time()
    outcome = apply_method(method, bench, cfg.reduction)
    results = measure(bench, method, cfg.reduction, outcome, started)
    model = outcome.model
    run_dir.mkdir(parents=True, exist_ok=True)
    save_model(run_dir / "model.pt", model, len(task.labels), bench.model_kwargs, {"method": cfg.method})
    task.tok.save(run_dir / "vocab.json")
    (run_dir / "config.json").write_text(json.dumps(
        {"command": "compress", **cfg.model_dump(mode="json"), "train": train_cfg.model_dump(mode="json")}, indent=2))
    results["labels"] = task.labels
    write_json(run_dir / "results.json", results)
    return results


def load_run_model(run_dir: str | Path) -> tuple[nn.Module, dict[str, Any], TrainConfig]:
    """The model of a train or compress run, its results, and the training config behind it."""
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    path = run_dir / ("full.pt" if config["command"] == "train" else "model.pt")
    model, _ = load_model(path)
    train_cfg = load_train_config(run_dir if config["command"] == "train" else Path(config["source"]))
    return model, json.loads((run_dir / "results.json").read_text()), train_cfg
