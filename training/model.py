"""Classifiers over a (possibly factorized) word embedding. Read top to bottom.

Shapes: B batch, T tokens, V vocabulary, d embedding width, k rank, C classes.
Every model takes `ids (B, T) int64` (0 = PAD) and `lengths (B,) int64`, and returns logits (B, C).
"""

from __future__ import annotations

import torch
import torch.nn as nn


def length_mask(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    positions = torch.arange(ids.shape[1], device=ids.device)  # (T,)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)  # (B, T) bool


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the tokens that the mask keeps; an empty row gives zeros."""
    m = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, ·)


class FullEmbedding(nn.Module):
    """The |V|xd table E."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.table = nn.Embedding.from_pretrained(weight, freeze=False, padding_idx=0)

    @property
    def dim(self) -> int:
        return self.table.embedding_dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table(ids)  # (B, T, d)

    def pooled_mean(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_mean(self.table(ids), mask)  # (B, d)


class LowRankEmbedding(nn.Module):
    """E ~ A @ B with A = U_k (|V|xk) and B = S_k V_k^T (kxd): k(|V|+d) parameters instead of |V|d.
    A stays a lookup table (Gather) and B a matrix (MatMul); their product is never formed."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.a = nn.Embedding.from_pretrained(a, freeze=False, padding_idx=0)  # (V, k)
        self.b = nn.Parameter(b.clone())  # (k, d)

    @property
    def dim(self) -> int:
        return self.b.shape[1]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.a(ids) @ self.b  # (B, T, k) @ (k, d) -> (B, T, d)

    def pooled_mean(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # mean and a linear map commute: average the k-wide rows first, project once per sentence
        return masked_mean(self.a(ids), mask) @ self.b  # (B, k) @ (k, d) -> (B, d)


class WordDropout(nn.Module):
    """Drops whole tokens while training (Iyyer et al. 2015), keeping at least one per sentence."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return mask
        keep = (torch.rand(mask.shape, device=mask.device) >= self.p) & mask  # (B, T)
        empty = ~keep.any(1, keepdim=True) & mask.any(1, keepdim=True)  # (B, 1)
        return torch.where(empty, mask, keep)


class MLP(nn.Module):
    """Hidden ReLU layers, then the class logits."""

    def __init__(self, d_in: int, hidden: tuple[int, ...], n_classes: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(d_in, h), nn.ReLU(), nn.Dropout(dropout)]
            d_in = h
        layers.append(nn.Linear(d_in, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, C)


class DAN(nn.Module):
    """Deep averaging network: mean of the word vectors -> MLP -> logits."""

    def __init__(
        self,
        embedding: FullEmbedding | LowRankEmbedding,
        n_classes: int,
        hidden: tuple[int, ...] = (300, 300),
        dropout: float = 0.5,
        word_dropout: float = 0.3,
    ):
        super().__init__()
        self.embedding = embedding
        self.word_dropout = WordDropout(word_dropout)
        self.mlp = MLP(embedding.dim, hidden, n_classes, dropout)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = self.word_dropout(length_mask(ids, lengths))  # (B, T)
        sentence = self.embedding.pooled_mean(ids, mask)  # (B, d)
        return self.mlp(sentence)  # (B, C)
