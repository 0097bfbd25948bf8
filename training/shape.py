"""What decides a model's size, in one value: read by the architectures' formulas and by training/sizes.py."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Shape(BaseModel):
    """What decides a model's size: architecture, vocabulary, width, rank (None = full), classes, and the
    architecture-specific widths its formulas read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: str
    vocab: int
    dim: int
    n_classes: int
    rank: int | None = None
    hidden: tuple[int, ...] = (300, 300)  # DAN
    widths: tuple[int, ...] = (3, 4, 5)  # CNN
    maps: int = 100  # CNN
    lstm_hidden: int = 100  # BiLSTM, per direction
