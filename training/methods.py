"""Compression methods: one registry entry per kind of method, and the named variants the sweep runs.

    bench = Workbench(task, "dan", seed=0, cache_dir=...)
    outcome = apply_method(METHODS["online"], bench, reduction=0.9)

A `MethodKind` is the code (an `apply(bench, method, reduction) -> Outcome` function) plus the flags
callers ask instead of comparing names: `low_rank` (factorizes the embedding; the rank comes from
the target reduction p or from the share of singular-value energy kept), `retrains` (re-trains after
compressing, so `retrain` settings apply), `quantizes` (stores b-bit weights; needs `bits`).
A `Method` is a named setting of a kind (bits, scope, energy, first-training and re-training overrides,
what it is served as, the report groups it belongs to). The named methods are data: training/variants/*.json,
read in file-name order (the order breaks dev ties in reports), one entry per method; adding a variant is one
line there. Kinds (code):

- full          the trained model, uncompressed;
- online        SVD of the *trained* embedding, then re-train the whole network (the paper);
- noretrain     the same factors, evaluated without re-training (ablation);
- offline       SVD of the *pretrained GloVe* rows before training; the factors A, B stay frozen and
                only the rest of the network trains (the paper's offline baseline re-trains no factor);
- quant         simulated post-training b-bit per-row quantization of the embedding or of every
                weight (evaluated dequantized; named `sim-int<b>-per-row-<scope>`, not the served int8);
- online_quant  online low-rank + re-train, then b-bit factors (and weights, scope="model").

A method's `train` overrides the first training (its full model is then cached under its own key): the
`teacher-*` variants distill from the fine-tuned MiniLM teacher's cached logits there and/or in the
re-training (`distill_from="teacher"`; training/distill.py, docs/distill-pilot.md).

The workbench takes plain inputs (fit configs, a rank, a word dropout); a method turns itself and a target
reduction into them (`Method.first_training`, `Method.retraining`, `Method.rank_for`).

Every method returns an `Outcome`: the model to evaluate (weights dequantized where quantized) and
the bytes each quantized parameter is stored in. Adding one: docs/extending.md.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn as nn
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from training.lowrank import factorize, rank_for_energy, rank_for_reduction, reduction_of_rank
from training.model import LowRankEmbedding
from training.quantize import fake_quantize_, model_bytes
from training.train import FitConfig, accuracy, fit, seed_everything
from training.workbench import Workbench

VARIANTS = Path(__file__).resolve().parent / "variants"


@dataclass
class Outcome:
    model: nn.Module
    quantized: dict[str, int] = field(default_factory=dict)  # parameter name -> stored bytes
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def rank(self) -> int | None:
        return self.model.embedding.rank


Apply = Callable[[Workbench, "Method", "float | None"], Outcome]


@dataclass(frozen=True)
class MethodKind:
    name: str
    apply: Apply
    low_rank: bool = False
    retrains: bool = False
    quantizes: bool = False


KINDS: dict[str, MethodKind] = {}
METHODS: dict[str, Method] = {}


def register_kind(kind: MethodKind) -> MethodKind:
    KINDS[kind.name] = kind
    return kind


class Method(BaseModel):
    """One compression method with its settings; `retrain` overrides the model's re-training FitConfig."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: str
    bits: int | None = Field(default=None, description="quantizing kinds: 8, 4 or 2")
    scope: Literal["embedding", "model"] = "embedding"
    energy: float | None = Field(default=None, gt=0, le=1, description="rank from the energy kept, not p")
    retrain: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict, description="overrides of the first training's FitConfig "
                                  "(e.g. distillation from the cached teacher); the full model is then its own")
    word_dropout: float | None = Field(default=None, ge=0, lt=1, description="DAN word dropout while re-training")
    served_as: Literal["lowrank"] | None = Field(default=None, description="the artifact name `run` exports it "
                                                 "under (<prefix>-lowrank); None: <prefix>-<method name>")
    groups: tuple[str, ...] = Field(default=(), description="report groups (`in_group`): main (the CLI's short "
                                    "list), recipes, family-<model>, schedules, teacher-grid, phrase-*")
    note: str = Field(default="", description="why the variant exists, or what it showed")

    @model_validator(mode="after")
    def _check(self) -> Method:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}; choose from {sorted(KINDS)}")
        if (self.bits is not None) != self.quantizes:
            raise ValueError(f"{self.name}: bits go with quantizing kinds only, and those need them")
        if self.bits is not None and self.bits not in (2, 4, 8):
            raise ValueError(f"{self.name}: bits must be 8, 4 or 2")
        if self.energy is not None and not self.low_rank:
            raise ValueError(f"{self.name}: energy-based rank needs a low-rank method")
        if (self.retrain or self.word_dropout is not None) and not self.retrains:
            raise ValueError(f"{self.name}: only re-training methods take re-training settings")
        FitConfig(**self.retrain)  # unknown or invalid keys fail here, not mid-sweep
        first = FitConfig(**self.train)
        if self.train and self.kind == "offline":
            raise ValueError(f"{self.name}: the offline kind trains its own model; it takes no first-training settings")
        if first.distill_alpha > 0 and first.distill_from != "teacher":
            raise ValueError(f"{self.name}: the first training has no full model to distill from; "
                             "set distill_from='teacher' (the cached teacher's logits)")
        return self

    @property
    def uses_teacher(self) -> bool:
        """Whether the first training or the re-training reads the cached teacher's logits."""
        return any(c.get("distill_from") == "teacher" and c.get("distill_alpha", 1.0) > 0
                   for c in (self.train, self.retrain))

    @property
    def spec(self) -> MethodKind:
        return KINDS[self.kind]

    @property
    def low_rank(self) -> bool:
        return self.spec.low_rank

    @property
    def retrains(self) -> bool:
        return self.spec.retrains

    @property
    def quantizes(self) -> bool:
        return self.spec.quantizes

    @property
    def uses_reduction(self) -> bool:
        return self.low_rank and self.energy is None

    def check_reduction(self, reduction: float | None) -> None:
        """The one check that a method gets the target reduction p it needs (config validation,
        `apply_method` and `rank_for` call it)."""
        if self.uses_reduction and reduction is None:
            raise ValueError(f"method {self.name} needs a target reduction (--reduction)")

    def first_training(self, base: FitConfig) -> FitConfig:
        """The first training's config: `base` with this method's `train` overrides."""
        return base.model_copy(update=self.train) if self.train else base

    def retraining(self, base: FitConfig) -> FitConfig:
        """The re-training's config: `base` with this method's `retrain` overrides."""
        return base.model_copy(update=self.retrain) if self.retrain else base

    def rank_for(self, embedding: torch.Tensor, reduction: float | None) -> int:
        """The factor rank k for a |V| x d embedding: from the energy kept, or from the target reduction p."""
        v, d = embedding.shape
        if self.energy is not None:
            return rank_for_energy(torch.linalg.svdvals(embedding.detach().double()), self.energy)
        self.check_reduction(reduction)
        return rank_for_reduction(v, d, reduction)

    @property
    def quantization(self) -> str | None:
        """The name of what this method does to weights, as recorded in manifests: simulated (fake)
        per-row quantization, evaluated and exported dequantized; distinct from the served
        `int8-weights-per-row` (slimtext.manifest.QUANTIZATIONS)."""
        return f"sim-int{self.bits}-per-row-{self.scope}" if self.quantizes else None


def register_method(method: Method) -> Method:
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r} is registered twice")
    METHODS[method.name] = method
    return method


def load_variants(folder: Path = VARIANTS) -> None:
    """Register the named methods of every `*.json` in `folder`, in file-name order, then entry order."""
    for path in sorted(folder.glob("*.json")):
        for entry in json.loads(path.read_text())["methods"]:
            try:
                register_method(Method(**entry))
            except ValidationError as e:
                what = "; ".join(f"{'.'.join(map(str, x['loc'])) or entry.get('name')}: {x['msg']}" for x in e.errors())
                raise ValueError(f"{path.name}: {what}") from None
            except ValueError as e:
                raise ValueError(f"{path.name}: {e}") from None


def in_group(group: str) -> list[str]:
    """The names of the methods in a report group, in registration order."""
    return [m.name for m in METHODS.values() if group in m.groups]


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {sorted(METHODS)}")
    return METHODS[name]


# --- the kinds: (bench, method, reduction) -> Outcome ----------------------------------------------

def _first(bench: Workbench, method: Method) -> FitConfig:
    return method.first_training(bench.train_cfg)


def _rank(bench: Workbench, method: Method, reduction: float | None) -> int:
    return method.rank_for(bench.full(_first(bench, method)).embedding.table.weight, reduction)


def factorized(bench: Workbench, method: Method, reduction: float | None) -> nn.Module:
    """The method's full model with the rank-k factors in place of its embedding, not re-trained (`noretrain`,
    and the no-retrain score `run` records for a low-rank method)."""
    return bench.factorized(_rank(bench, method, reduction), _first(bench, method))


def _online_model(bench: Workbench, method: Method, reduction: float | None) -> nn.Module:
    return bench.online(_rank(bench, method, reduction), method.retraining(bench.retrain_cfg),
                        word_dropout=method.word_dropout, train=_first(bench, method))


def _full(bench: Workbench, method: Method, reduction: float | None) -> Outcome:
    return Outcome(bench.full(_first(bench, method)))


def _online(bench: Workbench, method: Method, reduction: float | None) -> Outcome:
    return Outcome(_online_model(bench, method, reduction),
                   info={"retrain": method.retraining(bench.retrain_cfg).model_dump()})


def _noretrain(bench: Workbench, method: Method, reduction: float | None) -> Outcome:
    return Outcome(factorized(bench, method, reduction))


def _offline(bench: Workbench, method: Method, reduction: float | None) -> Outcome:
    e = bench.task.initial_embedding(bench.seed)  # the pretrained rows, before any training
    rank = method.rank_for(e, reduction)

    def make():
        a, b, _ = factorize(e, rank)
        embedding = LowRankEmbedding(a, b)
        embedding.requires_grad_(False)  # frozen: the offline baseline trains the network around fixed factors
        seed_everything(bench.seed)
        model = bench.build(embedding)
        model, history = fit(model, bench.task.train, bench.task.dev, bench.train_cfg, bench.seed, log=bench.log)
        return model, {"history": history}
    return Outcome(bench.cached(f"offline-r{rank}", make))


def _quant(bench: Workbench, method: Method, reduction: float | None) -> Outcome:
    model = copy.deepcopy(bench.full(_first(bench, method)))
    return Outcome(model, quantized=fake_quantize_(model, method.bits, method.scope))


def _online_quant(bench: Workbench, method: Method, reduction: float | None) -> Outcome:
    model = copy.deepcopy(_online_model(bench, method, reduction))
    return Outcome(model, quantized=fake_quantize_(model, method.bits, method.scope))


register_kind(MethodKind("full", _full))
register_kind(MethodKind("online", _online, low_rank=True, retrains=True))
register_kind(MethodKind("noretrain", _noretrain, low_rank=True))
register_kind(MethodKind("offline", _offline, low_rank=True))
register_kind(MethodKind("quant", _quant, quantizes=True))
register_kind(MethodKind("online_quant", _online_quant, low_rank=True, retrains=True, quantizes=True))
load_variants()


# --- the grids the benches step through, read back from the variants' settings ----------------------------------

def schedule_tag(epochs: int, lr_high: float, lr_low: float = 1e-4, cycles: int = 1) -> str:
    """The name suffix of a short CALR schedule: -r<epochs>-h<lr_high>[-l<lr_low>][-c<cycles per epoch>]."""
    return (f"-r{epochs}-h{lr_high:g}" + (f"-l{lr_low:g}" if lr_low != 1e-4 else "")
            + (f"-c{cycles}" if cycles != 1 else ""))


def _teacher_setting(name: str) -> tuple[float, float]:
    train = METHODS[name].train
    return train["distill_alpha"], train["distill_temperature"]


# the distillation pilot's (alpha, T) grid (docs/distill-pilot.md) and the phrase-level SST-2 one
TEACHER_GRID = [_teacher_setting(n) for n in in_group("teacher-grid")]
PHRASE_TEACHER_GRID = [_teacher_setting(n) for n in in_group("phrase-teacher")]
# the short re-training schedules tried on phrase-level SST-2: (epochs, lr_high, lr_low, cycles per epoch)
PHRASE_SCHEDULES = [(r["epochs"], r["lr_high"], r.get("lr_low", 1e-4), r.get("calr_cycles", 1))
                    for r in (METHODS[n].retrain for n in in_group("phrase-schedules"))]


def apply_method(method: Method, bench: Workbench, reduction: float | None = None) -> Outcome:
    method.check_reduction(reduction)
    if method.uses_teacher:
        bench.teacher_logits()  # a missing or stale teacher cache fails here, before any training
    return method.spec.apply(bench, method, reduction if method.uses_reduction else None)


def evaluate(bench: Workbench, method: Method, reduction: float | None) -> dict[str, Any]:
    """Apply a method and measure it: dev/test accuracy, rank, parameters, bytes, seconds."""
    started = time.time()
    return measure(bench, method, reduction, apply_method(method, bench, reduction), started)


def measure(bench: Workbench, method: Method, reduction: float | None, outcome: Outcome,
            started: float | None = None) -> dict[str, Any]:
    model = outcome.model.eval()
    total_bytes, emb_bytes = model_bytes(model, outcome.quantized)
    v, d = len(bench.task.tok), model.embedding.dim
    return {
        "dataset": bench.task.name, "vocab": "extended" if bench.task.vocab_extra else "train",
        "vocab_size": v, "dim": d, "model": bench.arch, "method": method.name, "kind": method.kind,
        "reduction": reduction if method.uses_reduction else None, "seed": bench.seed,
        "bits": method.bits, "scope": method.scope if method.bits else None, "energy": method.energy,
        "rank": outcome.rank,
        "embedding_reduction_params": reduction_of_rank(v, d, outcome.rank) if outcome.rank else 0.0,
        "dev_acc": accuracy(model, bench.task.dev), "test_acc": accuracy(model, bench.task.test),
        "params": sum(p.numel() for p in model.parameters()),
        "model_bytes": total_bytes, "embedding_bytes": emb_bytes,
        "embedding_bytes_reduction": 1.0 - emb_bytes / (4 * v * d),
        "model_bytes_reduction": 1.0 - total_bytes / _full_bytes(model, v, d),
        "seconds": round(time.time() - started, 2) if started else None, **outcome.info,
    }


def _full_bytes(model: nn.Module, v: int, d: int) -> int:
    body = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("embedding."))
    return 4 * (v * d + body)
