"""Post-training fixed-point quantization: b-bit symmetric integers with one fp32 scale per row.

A weight row w becomes q = round(w / s) clipped to [-(2^(b-1)-1), 2^(b-1)-1] with s = max|w| / (2^(b-1)-1),
and the model is evaluated on the dequantized q * s (what an integer kernel would compute, up to
accumulation order). Bytes: b/8 per weight plus 4 per scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from training.model import LowRankEmbedding

SUPPORTED_BITS = (2, 4, 8)


@dataclass(frozen=True)
class QuantizedTensor:
    """Integers q, shape of the weight, and the scales (one per row of the 2-D view)."""

    q: torch.Tensor  # (rows, cols) int8
    scales: torch.Tensor  # (rows,) float32
    shape: tuple[int, ...]
    bits: int

    def dequantize(self) -> torch.Tensor:
        return (self.q.float() * self.scales.unsqueeze(1)).reshape(self.shape)

    @property
    def nbytes(self) -> int:
        return math.ceil(self.q.numel() * self.bits / 8) + 4 * self.scales.numel()


def quantize_rows(w: torch.Tensor, bits: int) -> QuantizedTensor:
    """Symmetric per-row quantization of a weight viewed as (shape[0], rest)."""
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"bits must be one of {SUPPORTED_BITS}, got {bits}")
    rows = w.detach().float().reshape(w.shape[0], -1)  # (rows, cols)
    qmax = 2 ** (bits - 1) - 1
    scales = rows.abs().amax(1) / qmax  # (rows,)
    scales = torch.where(scales > 0, scales, torch.ones_like(scales))  # an all-zero row (PAD) stays zero
    q = torch.round(rows / scales.unsqueeze(1)).clamp(-qmax, qmax).to(torch.int8)  # (rows, cols)
    return QuantizedTensor(q, scales, tuple(w.shape), bits)


def quantizable(model: nn.Module, scope: str) -> dict[str, tuple[nn.Parameter, bool]]:
    """Weights to quantize: {name: (parameter, transpose)}. `scope` "embedding" takes the embedding
    table (or both factors), "model" every weight of two or more dimensions; biases stay fp32.
    The factor A (|V|xk, k tiny) gets one scale per column (transpose=True): per-row scales would
    cost 4 bytes for every k bytes of data."""
    if scope not in ("embedding", "model"):
        raise ValueError(f"scope must be 'embedding' or 'model', got {scope!r}")
    out = {}
    for name, p in model.named_parameters():
        if p.ndim < 2 or (scope == "embedding" and not name.startswith("embedding.")):
            continue
        out[name] = (p, isinstance(model.embedding, LowRankEmbedding) and name == "embedding.a.weight")
    return out


@torch.no_grad()
def fake_quantize_(model: nn.Module, bits: int, scope: str) -> dict[str, int]:
    """Replace weights in place by their dequantized b-bit versions; return {name: stored bytes}."""
    stored = {}
    for name, (p, transpose) in quantizable(model, scope).items():
        qt = quantize_rows(p.t() if transpose else p, bits)
        deq = qt.dequantize()
        p.copy_(deq.t() if transpose else deq)
        stored[name] = qt.nbytes
    return stored


def model_bytes(model: nn.Module, quantized: dict[str, int] | None = None) -> tuple[int, int]:
    """(whole model, embedding) bytes: fp32 for every parameter, or its stored bytes if quantized."""
    quantized = quantized or {}
    total = embedding = 0
    for name, p in model.named_parameters():
        b = quantized.get(name, 4 * p.numel())
        total += b
        embedding += b if name.startswith("embedding.") else 0
    return total, embedding
