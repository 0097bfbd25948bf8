"""Compression methods behind one interface, and the per-(dataset, model, seed) workbench they run on.

    bench = Workbench(task, "dan", seed=0, ...)
    outcome = apply_method(METHODS["online"], bench, reduction=0.9)

Every method returns an `Outcome`: the model to evaluate (weights dequantized where quantized),
the bytes each quantized parameter is stored in, and the rank. Methods:

- full          the trained model, uncompressed;
- online        SVD of the *trained* embedding, then re-train the whole network (the paper);
- noretrain     the same factors, evaluated without re-training (ablation);
- offline       SVD of the *pretrained GloVe* rows before training; the factors A, B stay frozen and
                only the rest of the network trains (the paper's offline baseline re-trains no factor);
- quant         post-training b-bit per-row quantization of the embedding or of every weight;
- online_quant  online low-rank + re-train, then b-bit factors (and weights, scope="model").

The rank comes from the target reduction p, or from the share of singular-value energy kept.
Trained models are cached under the workbench's cache folder, so cells that share a model (the full
model, an online model and its quantized copy) train it once, and a resumed sweep trains it never.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
from pydantic import BaseModel, ConfigDict, Field, model_validator

from slimtext.data import load_splits
from slimtext.tokenizer import Tokenizer, TokenizerConfig
from training.checkpoint import load_model, save_model
from training.glove import init_embedding, load_glove
from training.lowrank import factorize, rank_for_energy, rank_for_reduction, reduction_of_rank
from training.model import ARCHITECTURES, FullEmbedding, LowRankEmbedding
from training.quantize import fake_quantize_, model_bytes
from training.train import Encoded, FitConfig, accuracy, encode, fit, seed_everything

Kind = Literal["full", "online", "noretrain", "offline", "quant", "online_quant"]
_LOW_RANK = ("online", "noretrain", "offline", "online_quant")


class Method(BaseModel):
    """One compression method with its settings; `retrain` overrides the model's re-training FitConfig."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Kind
    bits: int | None = Field(default=None, description="quant / online_quant: 8, 4 or 2")
    scope: Literal["embedding", "model"] = "embedding"
    energy: float | None = Field(default=None, gt=0, le=1, description="rank from the energy kept, not p")
    retrain: dict[str, Any] = Field(default_factory=dict)
    word_dropout: float | None = Field(default=None, ge=0, lt=1, description="DAN word dropout while re-training")

    @model_validator(mode="after")
    def _check(self) -> Method:
        if (self.bits is not None) != (self.kind in ("quant", "online_quant")):
            raise ValueError(f"{self.name}: bits go with quant / online_quant only, and those need them")
        if self.bits is not None and self.bits not in (2, 4, 8):
            raise ValueError(f"{self.name}: bits must be 8, 4 or 2")
        if self.energy is not None and self.kind not in _LOW_RANK:
            raise ValueError(f"{self.name}: energy-based rank needs a low-rank method")
        if (self.retrain or self.word_dropout is not None) and self.kind not in ("online", "online_quant"):
            raise ValueError(f"{self.name}: only online methods re-train")
        FitConfig(**self.retrain)  # unknown or invalid keys fail here, not mid-sweep
        return self

    @property
    def uses_reduction(self) -> bool:
        return self.kind in _LOW_RANK and self.energy is None


_NO_KD = {"distill_alpha": 0.0}
_METHODS = [
    Method(name="full", kind="full"),
    Method(name="online", kind="online"),  # the model's default re-training recipe (CALR + distillation)
    Method(name="online-plain", kind="online", retrain=_NO_KD),  # same, without distillation
    Method(name="online-long", kind="online", retrain={"epochs": 30}),  # twice the re-training
    Method(name="online-hot", kind="online", retrain={"lr_high": 1e-2}),  # a higher CALR peak
    Method(name="online-mild", kind="online", retrain={"distill_alpha": 0.5, "distill_temperature": 2.0}),
    Method(name="online-nowd", kind="online", word_dropout=0.0),  # no word dropout while re-training
    Method(name="online-pure", kind="online", retrain={"distill_alpha": 1.0}),  # teacher's soft targets only
    Method(name="online-e60", kind="online", energy=0.6),
    Method(name="online-e80", kind="online", energy=0.8),
    Method(name="noretrain", kind="noretrain"),
    Method(name="offline", kind="offline"),
    *[Method(name=f"int{b}", kind="quant", bits=b) for b in (8, 4, 2)],
    *[Method(name=f"int{b}-model", kind="quant", bits=b, scope="model") for b in (8, 4, 2)],
    Method(name="online+int8", kind="online_quant", bits=8),
    Method(name="online+int8-model", kind="online_quant", bits=8, scope="model"),
    # re-training schedules, compared without distillation
    Method(name="sched-calr", kind="online", retrain=_NO_KD),
    Method(name="sched-adam", kind="online", retrain={**_NO_KD, "schedule": "adam", "lr": 1e-3}),
    # SGD + momentum 0.9 at three constant rates (0.05 left the DAN at chance on sst2)
    *[Method(name=name, kind="online", retrain={**_NO_KD, "schedule": "sgd", "lr": lr, "momentum": 0.9})
      for name, lr in (("sched-sgd", 0.01), ("sched-sgd-fast", 0.05), ("sched-sgd-slow", 0.002))],
    Method(name="sched-cosine", kind="online", retrain={**_NO_KD, "schedule": "cosine"}),
    Method(name="sched-onecycle", kind="online", retrain={**_NO_KD, "schedule": "onecycle"}),
    Method(name="sched-clr", kind="online", retrain={**_NO_KD, "schedule": "clr"}),
]
METHODS: dict[str, Method] = {m.name: m for m in _METHODS}

# first training and re-training per architecture (DAN's are pipeline.RunConfig's defaults)
TRAIN = {
    "dan": FitConfig(epochs=15, lr=5e-4, batch_size=64),
    "cnn": FitConfig(epochs=6, lr=1e-3, batch_size=64),  # sized to the CPU budget of the sweep
    "bilstm": FitConfig(epochs=6, lr=1e-3, batch_size=64),
}
RETRAIN = {
    "dan": FitConfig(epochs=15, batch_size=64, schedule="calr", lr_low=1e-4, lr_high=3e-3,
                     distill_alpha=0.9, distill_temperature=4.0),
    "cnn": FitConfig(epochs=5, batch_size=64, schedule="calr", lr_low=1e-4, lr_high=3e-3,
                     distill_alpha=0.9, distill_temperature=4.0),
    "bilstm": FitConfig(epochs=5, batch_size=64, schedule="calr", lr_low=1e-4, lr_high=3e-3,
                        distill_alpha=0.9, distill_temperature=4.0),
}
MODEL_KWARGS: dict[str, dict[str, Any]] = {
    "dan": {"hidden": (300, 300), "dropout": 0.5, "word_dropout": 0.3},
    "cnn": {"widths": (3, 4, 5), "maps": 100, "dropout": 0.5},
    "bilstm": {"hidden": 100, "dropout": 0.5},
}


@dataclass
class Task:
    """A dataset encoded with its vocabulary: training words, plus optionally the `vocab_extra` most
    frequent GloVe words (GloVe files list words by frequency)."""

    name: str
    tok: Tokenizer
    labels: list[str]
    train: Encoded
    dev: Encoded
    test: Encoded
    glove: tuple[list[str], np.ndarray] | None
    vocab_extra: int = 0

    @classmethod
    def load(cls, dataset_dir: str | Path, text_col: str = "text", label_col: str = "label",
             limit_train: int | None = None, vocab_extra: int = 0, glove: bool = True,
             glove_path: str | Path | None = None) -> Task:
        if vocab_extra and not glove:
            raise ValueError("an extended vocabulary needs GloVe")
        splits = load_splits(dataset_dir, text_col, label_col)
        texts, labels = splits["train"].texts, splits["train"].labels
        if limit_train:
            texts, labels = texts[:limit_train], labels[:limit_train]
        vectors = load_glove(glove_path) if glove else None
        extra = vectors[0][:vocab_extra] if vectors is not None and vocab_extra else ()
        tok = Tokenizer.build(TokenizerConfig(), texts, extra=extra)
        names = sorted(set(labels))
        index = {lab: i for i, lab in enumerate(names)}
        dev, test = (encode(tok, splits[s].texts, splits[s].labels, index) for s in ("dev", "test"))
        return cls(Path(dataset_dir).name, tok, names, encode(tok, texts, labels, index), dev, test, vectors,
                   vocab_extra)

    def initial_embedding(self, seed: int, dim: int = 50) -> torch.Tensor:
        """GloVe rows for known words, small random rows (seeded) for the rest, zeros for PAD."""
        rng = np.random.default_rng(seed)
        if self.glove is None:
            weight = rng.normal(0, 0.3, size=(len(self.tok), dim)).astype(np.float32)
            weight[0] = 0.0
        else:
            weight, _ = init_embedding(self.tok.itos, self.glove, rng)
        return torch.from_numpy(weight)


@dataclass
class Outcome:
    model: nn.Module
    rank: int | None = None
    quantized: dict[str, int] = field(default_factory=dict)  # parameter name -> stored bytes
    info: dict[str, Any] = field(default_factory=dict)


class Workbench:
    """One task, architecture and seed: builds, trains and caches the models the methods share."""

    def __init__(self, task: Task, arch: str, seed: int, cache_dir: str | Path,
                 train_cfg: FitConfig | None = None, retrain_cfg: FitConfig | None = None,
                 model_kwargs: dict[str, Any] | None = None, log: Callable[[str], None] = print):
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown model {arch!r}; choose from {sorted(ARCHITECTURES)}")
        self.task, self.arch, self.seed, self.log = task, arch, seed, log
        self.cache_dir = Path(cache_dir)
        self.train_cfg = train_cfg or TRAIN[arch]
        self.retrain_cfg = retrain_cfg or RETRAIN[arch]
        self.model_kwargs = {**MODEL_KWARGS[arch], **(model_kwargs or {})}
        self._memory: dict[str, nn.Module] = {}

    def build(self, embedding: FullEmbedding | LowRankEmbedding) -> nn.Module:
        return ARCHITECTURES[self.arch](embedding, len(self.task.labels), **self.model_kwargs)

    def _cached(self, key: str, make: Callable[[], tuple[nn.Module, dict]]) -> nn.Module:
        """Train with `make` once; later calls (and later processes) load the saved weights."""
        if key in self._memory:
            return self._memory[key]
        path = self.cache_dir / f"{key}.pt"
        if path.exists():
            model, _ = load_model(path)
        else:
            model, info = make()
            save_model(path, model, len(self.task.labels), self.model_kwargs, info)
        self._memory[key] = model.eval()
        return model

    def full(self) -> nn.Module:
        def make():
            seed_everything(self.seed)
            model = self.build(FullEmbedding(self.task.initial_embedding(self.seed)))
            model, history = fit(model, self.task.train, self.task.dev, self.train_cfg, self.seed, log=self.log)
            return model, {"history": history}
        return self._cached("full", make)

    def rank(self, embedding: torch.Tensor, method: Method, reduction: float | None) -> int:
        v, d = embedding.shape
        if method.energy is not None:
            return rank_for_energy(torch.linalg.svdvals(embedding.detach().double()), method.energy)
        if reduction is None:
            raise ValueError(f"{method.name} needs a target reduction")
        return rank_for_reduction(v, d, reduction)

    def factorized_full(self, method: Method, reduction: float | None) -> nn.Module:
        full = self.full()
        e = full.embedding.table.weight
        a, b, _ = factorize(e, self.rank(e, method, reduction))
        model = copy.deepcopy(full)
        model.embedding = LowRankEmbedding(a, b)
        return model

    def retrain_cfg_for(self, method: Method) -> FitConfig:
        return self.retrain_cfg.model_copy(update=method.retrain) if method.retrain else self.retrain_cfg

    def online(self, method: Method, reduction: float | None) -> nn.Module:
        cfg = self.retrain_cfg_for(method)
        rank_key = f"e{method.energy}" if method.energy is not None else f"p{reduction}"
        wd = "" if method.word_dropout is None else f"-wd{method.word_dropout}"
        key = f"online-{_digest(cfg.model_dump_json())}-{rank_key}{wd}"
        if method.word_dropout is not None and not hasattr(self.full(), "word_dropout"):
            raise ValueError(f"{method.name}: {self.arch} has no word dropout")

        def make():
            model = self.factorized_full(method, reduction)
            if method.word_dropout is not None:
                model.word_dropout.p = method.word_dropout
            teacher = self.full() if cfg.distill_alpha > 0 else None
            model, history = fit(model, self.task.train, self.task.dev, cfg, self.seed, teacher=teacher, log=self.log)
            return model, {"history": history}
        return self._cached(key, make)


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:10]


# --- the methods: (bench, method, reduction) -> Outcome ---------------------------------------------

def _full(bench: Workbench, method: Method, reduction: float | None) -> Outcome:
    return Outcome(bench.full())


def _online(bench: Workbench, method: Method, reduction: float | None) -> Outcome:
    model = bench.online(method, reduction)
    return Outcome(model, rank=model.embedding.b.shape[0], info={"retrain": bench.retrain_cfg_for(method).model_dump()})


def _noretrain(bench: Workbench, method: Method, reduction: float | None) -> Outcome:
    model = bench.factorized_full(method, reduction)
    return Outcome(model, rank=model.embedding.b.shape[0])


def _offline(bench: Workbench, method: Method, reduction: float | None) -> Outcome:
    def make():
        e = bench.task.initial_embedding(bench.seed)  # the pretrained rows, before any training
        a, b, _ = factorize(e, bench.rank(e, method, reduction))
        embedding = LowRankEmbedding(a, b)
        embedding.requires_grad_(False)  # frozen: the offline baseline trains the network around fixed factors
        seed_everything(bench.seed)
        model = bench.build(embedding)
        model, history = fit(model, bench.task.train, bench.task.dev, bench.train_cfg, bench.seed, log=bench.log)
        return model, {"history": history}
    rank_key = f"e{method.energy}" if method.energy is not None else f"p{reduction}"
    model = bench._cached(f"offline-{rank_key}", make)
    return Outcome(model, rank=model.embedding.b.shape[0])


def _quant(bench: Workbench, method: Method, reduction: float | None) -> Outcome:
    model = copy.deepcopy(bench.full())
    return Outcome(model, quantized=fake_quantize_(model, method.bits, method.scope))


def _online_quant(bench: Workbench, method: Method, reduction: float | None) -> Outcome:
    model = copy.deepcopy(bench.online(method, reduction))
    return Outcome(model, rank=model.embedding.b.shape[0], quantized=fake_quantize_(model, method.bits, method.scope))


APPLY: dict[str, Callable[[Workbench, Method, float | None], Outcome]] = {
    "full": _full, "online": _online, "noretrain": _noretrain, "offline": _offline,
    "quant": _quant, "online_quant": _online_quant,
}


def apply_method(method: Method, bench: Workbench, reduction: float | None = None) -> Outcome:
    if method.uses_reduction and reduction is None:
        raise ValueError(f"{method.name} needs a target reduction")
    return APPLY[method.kind](bench, method, reduction if method.uses_reduction else None)


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


def write_json(path: str | Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)
