"""One registry entry per architecture: class, constructor defaults, training recipes, cost and size.

Everything that needs to know about an architecture (the CLI's choices, the workbench, checkpoints,
the sweep's scheduling, the analytic sizes in training/sizes.py, the report's ordering) reads it
from here. Adding one is `register_architecture(Architecture(...))`; see docs/extending.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from training.model import DAN, BiLSTM, KimCNN
from training.shape import Shape
from training.train import FitConfig


def _retrain(epochs: int) -> FitConfig:
    """CALR re-training with distillation, chosen on SST-2 dev (3 seeds) against plain Adam, CALR alone
    and other distillation settings."""
    return FitConfig(epochs=epochs, batch_size=64, schedule="calr", lr_low=1e-4, lr_high=3e-3,
                     distill_alpha=0.9, distill_temperature=4.0)


@dataclass(frozen=True)
class Architecture:
    """`body_params(shape)` counts everything after the embedding; `body_quantized_bytes(shape, q)` is
    the same with every weight matrix stored by `q(rows, cols)` bytes (biases fp32); `flops(shape,
    tokens)` is the forward cost of one sentence after the embedding lookup (multiply-add = 2)."""

    name: str
    cls: type[nn.Module]
    train: FitConfig
    retrain: FitConfig
    body_params: Callable[[Shape], int]
    body_quantized_bytes: Callable[[Shape, Callable[[int, int], int]], int]
    flops: Callable[[Shape, int], int]
    defaults: dict[str, Any] = field(default_factory=dict)  # constructor keyword arguments
    cost: float = 1.0  # relative training time, so the sweep starts the longest groups first

    def build(self, embedding: nn.Module, n_classes: int, **overrides: Any) -> nn.Module:
        return self.cls(embedding, n_classes, **{**self.defaults, **overrides})


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(arch: Architecture) -> Architecture:
    ARCHITECTURES[arch.name] = arch
    return arch


def get_architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def architecture_of(model: nn.Module) -> str:
    for name, arch in ARCHITECTURES.items():
        if type(model) is arch.cls:
            return name
    raise ValueError(f"not a known architecture: {type(model).__name__}")


# --- DAN: mean of word vectors -> hidden ReLU layers -> logits ----------------------------------------

def _dan_layers(s: Shape) -> list[tuple[int, int]]:
    sizes = [s.dim, *s.hidden, s.n_classes]
    return list(zip(sizes[:-1], sizes[1:], strict=True))


def _dan_flops(s: Shape, t: int) -> int:
    pool = t * s.dim if s.rank is None else t * s.rank + 2 * s.rank * s.dim  # average first, then one k x d product
    return pool + sum(2 * a * b for a, b in _dan_layers(s))


register_architecture(Architecture(
    name="dan", cls=DAN, defaults={"hidden": (300, 300), "dropout": 0.5, "word_dropout": 0.3},
    train=FitConfig(epochs=15, lr=5e-4, batch_size=64), retrain=_retrain(15), cost=1.0,
    body_params=lambda s: sum(a * b + b for a, b in _dan_layers(s)),
    body_quantized_bytes=lambda s, q: sum(q(b, a) + 4 * b for a, b in _dan_layers(s)),
    flops=_dan_flops,
))


# --- Kim CNN: convolutions of widths 3/4/5, max over time ---------------------------------------------

def _project(s: Shape, t: int) -> int:
    return 0 if s.rank is None else 2 * t * s.rank * s.dim  # per-token A rows times B


register_architecture(Architecture(
    name="cnn", cls=KimCNN, defaults={"widths": (3, 4, 5), "maps": 100, "dropout": 0.5},
    train=FitConfig(epochs=6, lr=1e-3, batch_size=64), retrain=_retrain(5), cost=2.0,  # sized to the sweep's CPU
    body_params=lambda s: (sum(s.maps * s.dim * w + s.maps for w in s.widths)
                           + s.maps * len(s.widths) * s.n_classes + s.n_classes),
    body_quantized_bytes=lambda s, q: (sum(q(s.maps, s.dim * w) + 4 * s.maps for w in s.widths)
                                       + q(s.n_classes, s.maps * len(s.widths)) + 4 * s.n_classes),
    flops=lambda s, t: (_project(s, t) + sum(2 * t * s.maps * s.dim * w for w in s.widths)
                        + 2 * s.maps * len(s.widths) * s.n_classes),
))


# --- BiLSTM: two LSTMs, mean-pooled -------------------------------------------------------------------

register_architecture(Architecture(
    name="bilstm", cls=BiLSTM, defaults={"hidden": 100, "dropout": 0.5},
    train=FitConfig(epochs=6, lr=1e-3, batch_size=64), retrain=_retrain(5), cost=3.0,
    body_params=lambda s: (2 * (4 * s.lstm_hidden * (s.dim + s.lstm_hidden) + 8 * s.lstm_hidden)
                           + 2 * s.lstm_hidden * s.n_classes + s.n_classes),  # W_ih, W_hh, b_ih, b_hh per direction
    body_quantized_bytes=lambda s, q: (2 * (q(4 * s.lstm_hidden, s.dim) + q(4 * s.lstm_hidden, s.lstm_hidden)
                                            + 4 * 8 * s.lstm_hidden)
                                       + q(s.n_classes, 2 * s.lstm_hidden) + 4 * s.n_classes),
    flops=lambda s, t: (_project(s, t) + 2 * t * 2 * 4 * s.lstm_hidden * (s.dim + s.lstm_hidden)
                        + 2 * 2 * s.lstm_hidden * s.n_classes),
))
