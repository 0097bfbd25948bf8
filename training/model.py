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

    rank = None  # not factorized

    @property
    def dim(self) -> int:
        return self.table.embedding_dim

    @property
    def vocab_size(self) -> int:
        return self.table.num_embeddings

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

    @property
    def rank(self) -> int:
        return self.b.shape[0]

    @property
    def vocab_size(self) -> int:
        return self.a.num_embeddings

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


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence's first `length` steps, leave its padding where it is."""
    t = torch.arange(x.shape[1], device=x.device).unsqueeze(0)  # (1, T)
    n = lengths.unsqueeze(1)  # (B, 1)
    index = torch.where(t < n, n - 1 - t, t)  # (B, T)
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[2]))  # (B, T, ·)


class KimCNN(nn.Module):
    """Kim (2014): convolutions of widths 3/4/5 over the word vectors, ReLU, max over time, dropout.

    Padded positions are zeroed and never win the max: a window counts only if it starts inside
    the text (so a text shorter than the widest filter still has one window, zero-padded on the
    right, as in Kim's own padding). A text of no tokens pools to zeros (the classifier's bias)."""

    def __init__(self, embedding: FullEmbedding | LowRankEmbedding, n_classes: int,
                 widths: tuple[int, ...] = (3, 4, 5), maps: int = 100, dropout: float = 0.5):
        super().__init__()
        if not widths or min(widths) < 1 or maps < 1:
            raise ValueError("need at least one filter width >= 1 and maps >= 1")
        self.embedding = embedding
        self.widths = tuple(widths)
        self.convs = nn.ModuleList(nn.Conv1d(embedding.dim, maps, w) for w in self.widths)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(maps * len(self.widths), n_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = length_mask(ids, lengths)  # (B, T)
        x = self.embedding(ids) * mask.unsqueeze(-1).to(torch.float32)  # (B, T, d), pads zeroed
        x = nn.functional.pad(x.transpose(1, 2), (0, max(self.widths) - 1))  # (B, d, T + w_max - 1)
        has_tokens = (lengths > 0).unsqueeze(1)  # (B, 1)
        pooled = []
        for w, conv in zip(self.widths, self.convs, strict=True):
            h = torch.relu(conv(x[:, :, : x.shape[2] - max(self.widths) + w]))  # (B, maps, T)
            starts = torch.arange(h.shape[2], device=h.device).unsqueeze(0)  # (1, T)
            valid = starts < (lengths - w + 1).clamp(min=1).unsqueeze(1)  # (B, T): window inside the text
            h = h.masked_fill(~valid.unsqueeze(1), 0.0)  # ReLU outputs are >= 0: 0 never beats a real window
            pooled.append(torch.where(has_tokens, h.amax(2), torch.zeros_like(h[:, :, 0])))  # (B, maps)
        return self.out(self.dropout(torch.cat(pooled, 1)))  # (B, 3*maps) -> (B, C)


class BiLSTM(nn.Module):
    """Bidirectional LSTM over the word vectors, mean-pooled over the real tokens, then logits.

    The two directions are two LSTMs; the backward one reads each text reversed within its own
    length, so padding never enters a real position's state (no packed sequences needed, and the
    graph exports as two plain ONNX LSTM ops)."""

    def __init__(self, embedding: FullEmbedding | LowRankEmbedding, n_classes: int,
                 hidden: int = 100, dropout: float = 0.5):
        super().__init__()
        self.embedding = embedding
        self.forward_lstm = nn.LSTM(embedding.dim, hidden, batch_first=True)
        self.backward_lstm = nn.LSTM(embedding.dim, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden, n_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = length_mask(ids, lengths)  # (B, T)
        x = self.embedding(ids)  # (B, T, d)
        fwd, _ = self.forward_lstm(x)  # (B, T, h)
        bwd, _ = self.backward_lstm(reverse_within_length(x, lengths))  # (B, T, h), reversed order
        states = torch.cat([fwd, reverse_within_length(bwd, lengths)], 2)  # (B, T, 2h)
        return self.out(self.dropout(masked_mean(states, mask)))  # (B, 2h) -> (B, C)

