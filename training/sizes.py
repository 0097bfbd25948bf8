"""Analytic parameter counts, bytes and FLOPs per model and compression method.

Counted from the architecture alone (no model is built), so that a test can hold them against the
initializers of the exported ONNX file. FLOPs count a multiply-add as 2, per sentence of T tokens.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict


class Shape(BaseModel):
    """What decides a model's size: architecture, vocabulary, width, rank (None = full), classes."""

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


def embedding_params(s: Shape) -> int:
    return s.vocab * s.dim if s.rank is None else s.rank * (s.vocab + s.dim)


def body_params(s: Shape) -> int:
    """Everything after the embedding."""
    if s.arch == "dan":
        sizes = [s.dim, *s.hidden, s.n_classes]
        return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    if s.arch == "cnn":
        return sum(s.maps * s.dim * w + s.maps for w in s.widths) + s.maps * len(s.widths) * s.n_classes + s.n_classes
    if s.arch == "bilstm":
        h = s.lstm_hidden
        per_direction = 4 * h * (s.dim + h) + 8 * h  # W_ih, W_hh, b_ih, b_hh
        return 2 * per_direction + 2 * h * s.n_classes + s.n_classes
    raise ValueError(f"unknown architecture {s.arch!r}")


def total_params(s: Shape) -> int:
    return embedding_params(s) + body_params(s)


def fp32_bytes(s: Shape) -> int:
    return 4 * total_params(s)


def quantized_bytes(s: Shape, bits: int, scope: str) -> int:
    """Bytes with b-bit weights and fp32 per-row scales (see training/quantize.py); biases fp32."""
    def q(rows: int, cols: int) -> int:
        return math.ceil(rows * cols * bits / 8) + 4 * rows

    emb = q(s.vocab, s.dim) if s.rank is None else q(s.rank, s.vocab) + q(s.rank, s.dim)  # A: one scale per column
    if scope == "embedding":
        return emb + 4 * body_params(s)
    if s.arch == "dan":
        sizes = [s.dim, *s.hidden, s.n_classes]
        body = sum(q(b, a) + 4 * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    elif s.arch == "cnn":
        body = sum(q(s.maps, s.dim * w) + 4 * s.maps for w in s.widths)
        body += q(s.n_classes, s.maps * len(s.widths)) + 4 * s.n_classes
    else:
        h = s.lstm_hidden
        body = 2 * (q(4 * h, s.dim) + q(4 * h, h) + 4 * 8 * h) + q(s.n_classes, 2 * h) + 4 * s.n_classes
    return emb + body


def flops(s: Shape, tokens: int = 20) -> int:
    """Forward FLOPs for one sentence of `tokens` tokens (lookups free, multiply-add = 2)."""
    t, d, k = tokens, s.dim, s.rank
    if s.arch == "dan":
        sizes = [d, *s.hidden, s.n_classes]
        mlp = sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        pool = t * d if k is None else t * k + 2 * k * d  # average first, then one k x d product
        return pool + mlp
    project = 0 if k is None else 2 * t * k * d  # per-token A rows times B
    if s.arch == "cnn":
        conv = sum(2 * t * s.maps * d * w for w in s.widths)
        return project + conv + 2 * s.maps * len(s.widths) * s.n_classes
    if s.arch == "bilstm":
        h = s.lstm_hidden
        return project + 2 * t * 2 * 4 * h * (d + h) + 2 * 2 * h * s.n_classes
    raise ValueError(f"unknown architecture {s.arch!r}")
