"""The commands' jobs: `train`, `compress`, `export`, `evaluate`, and `run` composed from the first three.

    run = train_run -> compress_run -> export_run (the full model, the compressed one, an int8 copy)

A run folder holds `full.pt` (a trained model; `compress` runs hold `model.pt`), `vocab.json`,
`config.json` (everything needed to rebuild its data and redo it) and `results.json`.
The same config and seed give the same numbers (one torch thread, seeded shuffles and dropout).
An exported folder is what the service loads (model.onnx, vocab.json, manifest.json).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.nn as nn
from pydantic import BaseModel, ConfigDict, Field, model_validator

from slimtext.data import read_examples, split_path
from slimtext.manifest import (
    ALIASES_FILE,
    MANIFEST_FILE,
    TEXT_MODEL_FILE,
    Accuracy,
    Manifest,
    ParamCounts,
    is_valid_name,
    write_default_alias,
)
from slimtext.runtime import OnnxClassifier, open_classifier
from slimtext.tokenizer import Tokenizer
from training.architectures import get_architecture
from training.checkpoint import load_model, save_model, write_json
from training.graph_tokenizer import write_triton_repo
from training.methods import METHODS, Method, apply_method, evaluate, factorized, get_method, measure
from training.onnx_export import (
    INT8_WEIGHTS,
    add_text_model,
    check_lowrank_initializers,
    export_onnx,
    quantize_int8_weights,
    write_artifact,
)
from training.train import FitConfig, accuracy, encode
from training.workbench import DataConfig, Task, Workbench


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data: DataConfig
    model: str = "dan"
    seed: int = 0
    fit: FitConfig | None = Field(default=None, description="default: the architecture's training recipe")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        get_architecture(self.model)
        return self


class CompressConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Path = Field(description="a `train` run folder")
    method: str
    reduction: float | None = Field(default=None, gt=0, lt=1)
    retrain: FitConfig | None = Field(default=None, description="default: the architecture's re-training recipe")

    @model_validator(mode="after")
    def _check(self) -> CompressConfig:
        get_method(self.method).check_reduction(self.reduction)
        return self


def _bench(cfg: TrainConfig, run_dir: Path, task: Task, retrain: FitConfig | None = None, log=print) -> Workbench:
    return Workbench(task, cfg.model, cfg.seed, run_dir, cfg.fit, retrain, log=log)


def train_run(cfg: TrainConfig, run_dir: str | Path, log=print) -> dict[str, Any]:
    """Train the full model into `run_dir` (skipped if it is there) and write config + results."""
    run_dir = Path(run_dir)
    task = cfg.data.load()  # data errors surface before anything is written
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps({"command": "train", **cfg.model_dump(mode="json")}, indent=2))
    task.tok.save(run_dir / "vocab.json")
    results = evaluate(_bench(cfg, run_dir, task, log=log), METHODS["full"], None)
    results["labels"] = task.labels
    write_json(run_dir / "results.json", results)
    return results


def _read_config(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run folder (no config.json)")
    return json.loads(path.read_text())


def load_train_config(run_dir: str | Path) -> TrainConfig:
    data = _read_config(Path(run_dir))
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
    if method.retrains and method.low_rank:  # what the factors alone score, before re-training
        results["no_retrain_dev_acc"] = accuracy(factorized(bench, method, cfg.reduction), task.dev)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_model(run_dir / "model.pt", outcome.model, len(task.labels), bench.model_kwargs, {"method": cfg.method})
    task.tok.save(run_dir / "vocab.json")
    (run_dir / "config.json").write_text(json.dumps(
        {"command": "compress", **cfg.model_dump(mode="json"), "train": train_cfg.model_dump(mode="json")}, indent=2))
    results["labels"] = task.labels
    write_json(run_dir / "results.json", results)
    return results


@dataclass
class RunModel:
    model: nn.Module
    results: dict[str, Any]
    train: TrainConfig
    method: Method
    retrain: FitConfig | None


def load_run_model(run_dir: str | Path) -> RunModel:
    """The model of a train or compress run, its results, the training config and method behind it."""
    run_dir = Path(run_dir)
    config = _read_config(run_dir)
    trained = config["command"] == "train"
    model, _ = load_model(run_dir / ("full.pt" if trained else "model.pt"))
    train_cfg = load_train_config(run_dir if trained else Path(config["source"]))
    method = METHODS["full"] if trained else get_method(config["method"])
    retrain = None if trained or not method.retrains else (
        FitConfig.model_validate(config["retrain"]) if config.get("retrain")
        else get_architecture(train_cfg.model).retrain).model_copy(update=method.retrain)
    return RunModel(model, json.loads((run_dir / "results.json").read_text()), train_cfg, method, retrain)


def _scored(folder: Path, data: DataConfig) -> Manifest:
    """Load the folder exactly as the service does, score it on dev and test, and record that."""
    served = OnnxClassifier(folder)
    splits = {s: read_examples(split_path(data.folder(), s), data.text_col, data.label_col) for s in ("dev", "test")}
    manifest = served.manifest.model_copy(update={"accuracy": Accuracy(
        dev=served.accuracy(splits["dev"].texts, splits["dev"].labels),
        test=served.accuracy(splits["test"].texts, splits["test"].labels))})
    manifest.save(folder)
    return manifest


def export_run(run_dir: str | Path, out_dir: str | Path, name: str, int8_name: str | None = None,
               with_tokenizer: bool = False, triton: str | Path | None = None) -> list[Manifest]:
    """Write `out_dir/name` (the run's model in fp32) and, with `int8_name`, also `out_dir/int8_name`
    (its int8-weights copy); each is loaded back and scored on dev and test. `with_tokenizer`: each folder also
    gets model.text.onnx (tokenizer and labels inside the graph, string input); `triton`: a Triton model repository
    of those string-input models (implies `with_tokenizer`)."""
    for n in (name, int8_name):
        if n is not None and not is_valid_name(n):
            raise ValueError(f"model name {n!r} must match [a-z0-9][a-z0-9._-]*")
    run_dir = Path(run_dir)
    run = load_run_model(run_dir)
    model, data = run.model, run.train.data
    tok = Tokenizer.load(run_dir / "vocab.json")
    emb = model.embedding
    v, d = len(tok), emb.dim
    emb_params = sum(p.numel() for p in emb.parameters())
    training = {"method": run.method.name, "model": run.train.model, "seed": run.train.seed,
                "data": data.model_dump(mode="json"),
                "config": {"train": (run.train.fit or get_architecture(run.train.model).train).model_dump(),
                           "retrain": run.retrain.model_dump() if run.retrain else None},
                "results": run.results}
    if "no_retrain_dev_acc" in run.results:
        training["no_retrain_dev_acc"] = run.results["no_retrain_dev_acc"]
    common = dict(rank=emb.rank, architecture=run.train.model, dataset=data.folder().name, labels=run.results["labels"],
                  embedding_dim=d, method=run.method.name, accuracy=Accuracy(), training=training,
                  params=ParamCounts(embedding=emb_params, embedding_full=v * d,
                                     total=sum(p.numel() for p in model.parameters())),
                  embedding_compression=1 - emb_params / (v * d))
    manifests = []
    with tempfile.TemporaryDirectory(prefix="slimtext-export-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_onnx(model, fp32)
        if emb.rank is not None:
            check_lowrank_initializers(fp32, v, d, emb.rank)
        kind = "lowrank" if emb.rank is not None else "full"
        write_artifact(Path(out_dir) / name, fp32, tok, name=name, kind=kind,
                       quantization=run.method.quantization, **common)
        manifests.append(_scored(Path(out_dir) / name, data))
        if int8_name is not None:
            quantize_int8_weights(fp32, Path(tmp) / "int8.onnx")
            write_artifact(Path(out_dir) / int8_name, Path(tmp) / "int8.onnx", tok, name=int8_name, kind="int8",
                           quantization=INT8_WEIGHTS, **common)
            manifests.append(_scored(Path(out_dir) / int8_name, data))
    if with_tokenizer or triton is not None:
        manifests = [add_text_model(Path(out_dir) / m.name, tok) for m in manifests]
    if triton is not None:
        for m in manifests:
            write_triton_repo(triton, m.name, Path(out_dir) / m.name / TEXT_MODEL_FILE, len(m.labels))
    return manifests


def _check_labels(path: Path, labels: list[str], known: list[str]) -> None:
    unknown = sorted(set(labels) - set(known))
    if unknown:
        raise ValueError(f"{path}: labels {unknown[:5]} are not the model's labels {known}")


def evaluate_target(target: str | Path, split: str = "test", file: str | Path | None = None,
                    text_col: str | None = None, label_col: str | None = None) -> dict[str, Any]:
    """Accuracy of an exported folder (onnxruntime) or a run folder (PyTorch) on its dataset's split or on
    any labelled file (columns default to the training data's)."""
    target = Path(target)
    if (target / MANIFEST_FILE).exists():
        served = open_classifier(target)  # model.onnx + vocab.json, or a string-only folder's model.text.onnx
        data_dump = served.manifest.training.get("data")
        if data_dump is None and file is None:
            raise ValueError(f"{target / MANIFEST_FILE}: does not name its training data; pass --file")
        data = DataConfig.model_validate(data_dump) if data_dump else None
        labels, engine = served.labels, "onnxruntime"
    else:
        run = load_run_model(target)
        data, labels, engine = run.train.data, run.results["labels"], "pytorch"
    path = Path(file) if file else split_path(data.folder(), split)
    ex = read_examples(path, text_col or (data.text_col if data else "text"),
                       label_col or (data.label_col if data else "label"))
    _check_labels(path, ex.labels, labels)
    if engine == "onnxruntime":
        acc = served.accuracy(ex.texts, ex.labels)
    else:
        tok = Tokenizer.load(target / "vocab.json")
        acc = accuracy(run.model, encode(tok, ex.texts, ex.labels, {lab: i for i, lab in enumerate(labels)}))
    return {"target": str(target), "file": str(path), "n": len(ex), "engine": engine, "accuracy": acc}


# --- `run`: the main job, composed of the three commands above -------------------------------------

class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data: DataConfig = DataConfig(dataset="sst2")
    model: str = "dan"
    method: str = "online"
    reduction: float | None = Field(default=0.9, gt=0, lt=1)
    seed: int = 0
    out_dir: Path = Path("models")
    name: str | None = Field(default=None, description="artifact name prefix; default <dataset>-<model>")
    train: FitConfig | None = Field(default=None, description="default: the architecture's training recipe")
    retrain: FitConfig | None = Field(default=None, description="default: the architecture's re-training recipe")
    int8: bool = Field(default=True, description="also export an int8-weights copy of the full model")
    runs_dir: Path | None = Field(default=None, description="keep the run folders here (default: a temporary "
                                  "folder, removed at the end)")

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        get_architecture(self.model)
        get_method(self.method)
        for suffix in ("full", "int8", self.suffix):
            if not is_valid_name(f"{self.prefix}-{suffix}"):
                raise ValueError(f"artifact name {self.prefix}-{suffix!r} must match [a-z0-9][a-z0-9._-]*")
        return self

    @property
    def prefix(self) -> str:
        return self.name or f"{self.data.folder().name if self.data.data else self.data.dataset}-{self.model}"

    @property
    def suffix(self) -> str:
        """`lowrank` for the methods served as it (Method.served_as: the paper's online method and its d = 300
        DAN recipes; the manifest names the method), else the method's name."""
        return get_method(self.method).served_as or self.method.replace("+", "-")


@dataclass
class RunResult:
    manifests: list[Manifest]
    full: nn.Module
    compressed: nn.Module | None
    tokenizer: Tokenizer

    @property
    def lowrank(self) -> nn.Module | None:
        return self.compressed


def run(cfg: RunConfig, log=print) -> RunResult:
    """train -> compress -> export: `<prefix>-full`, `<prefix>-<int8>` and `<prefix>-lowrank` (or the
    method's name), each scored as the service loads it."""
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="slimtext-run-") as tmp:
        runs = Path(cfg.runs_dir or tmp)
        # a method with first-training overrides (the teacher in the first training): the full model exported is
        # the one its low-rank model is factorized from, trained once
        method = get_method(cfg.method)
        fit = method.first_training(cfg.train or get_architecture(cfg.model).train) if method.train else cfg.train
        log(f"training the full {cfg.model}" + (f" ({cfg.method}'s first training)" if method.train else ""))
        train_run(TrainConfig(data=cfg.data, model=cfg.model, seed=cfg.seed, fit=fit), runs / "train", log=log)
        manifests = export_run(runs / "train", cfg.out_dir, f"{cfg.prefix}-full",
                               int8_name=f"{cfg.prefix}-int8" if cfg.int8 else None)
        compressed = None
        if cfg.method != "full":
            log(f"compressing: {cfg.method}")
            results = compress_run(CompressConfig(source=runs / "train", method=cfg.method, reduction=cfg.reduction,
                                                  retrain=cfg.retrain), runs / "compress", log=log)
            log(f"rank {results['rank']}, dev accuracy {results['dev_acc']:.4f}")
            manifests[1:1] = export_run(runs / "compress", cfg.out_dir, f"{cfg.prefix}-{cfg.suffix}")
            compressed = load_run_model(runs / "compress").model
        full = load_run_model(runs / "train").model
        tok = Tokenizer.load(runs / "train" / "vocab.json")
    served = f"{cfg.prefix}-{cfg.suffix}" if cfg.method != "full" else f"{cfg.prefix}-full"
    if write_default_alias(cfg.out_dir, served):  # requests that name no model get it (service/registry.py)
        log(f"default model of {cfg.out_dir}: {served} ({ALIASES_FILE})")
    log(summary_table(manifests))
    log(f"done in {time.time() - started:.0f} s")
    return RunResult(manifests, full, compressed, tok)


def summary_table(manifests: list[Manifest]) -> str:
    rows = ["| model | kind | k | params | embedding params | ONNX bytes | dev acc | test acc |",
            "|---|---|---|---|---|---|---|---|"]
    for m in manifests:
        rows.append(f"| {m.name} | {m.kind} | {m.rank or '-'} | {m.params.total:,} | {m.params.embedding:,} | "
                    f"{m.onnx_bytes:,} | {m.accuracy.dev:.4f} | {m.accuracy.test:.4f} |")
    return "\n".join(rows)
