"""Analytic parameter counts, bytes and FLOPs per model and compression method.

Counted from the architecture alone (no model is built), so that a test can hold them against the
initializers of the exported ONNX file. FLOPs count a multiply-add as 2, per sentence of T tokens.
"""

from __future__ import annotations

import math

from training.architectures import get_architecture
from training.shape import Shape


def embedding_params(s: Shape) -> int:
    return s.vocab * s.dim if s.rank is None else s.rank * (s.vocab + s.dim)


def body_params(s: Shape) -> int:
    """Everything after the embedding (the architecture's own formula)."""
    return get_architecture(s.arch).body_params(s)


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
    return emb + get_architecture(s.arch).body_quantized_bytes(s, q)


def flops(s: Shape, tokens: int = 20) -> int:
    """Forward FLOPs for one sentence of `tokens` tokens (lookups free, multiply-add = 2)."""
    return get_architecture(s.arch).flops(s, tokens)
