"""Open vocabulary: an embedding with a row for every word the pretrained vectors know, not only the training words.

    vec = vector_vocabulary(words, vectors)                 # every string the tokenizer can produce, one row each
    rows = build_open_rows(task.tok, vec)                   # training vocabulary first, then the vectors' other words
    full = open_full_model(trained, rows)                   # trained rows + pretrained rows: |V_open| x d
    low = open_lowrank_model(trained, rows, k)              # SVD of that |V_open| x d matrix, A split in two
    fit(low, train, dev, cfg, seed)                         # re-trains B, the body and the training words' rows of A
    low = merged(low)                                       # one plain LowRankEmbedding(A, B) for export

Words absent from the training data get no gradient (no example holds them), so training the full open model
would leave their pretrained rows exactly where they are (Adam, no weight decay): stitching the trained rows of
the training-vocabulary model onto the pretrained rows of the others is that model, for the price of the
training-vocabulary one. After factorization the same holds for A: only the training words' rows of A (and B,
and the classifier) are re-trained; the other rows stay the SVD's and follow B as it moves, since every word's
vector is its row of A times B. The SVD of the |V_open| x d matrix comes from its d x d Gram matrix, and the
rows that share a pretrained vector (the 300-d table serves 684k strings from 20,000 rows) are counted once
with their multiplicity, so nothing of |V_open| x d is built until a full model is exported.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from slimtext.tokenizer import OOV, PAD, Tokenizer, TokenizerConfig
from training.model import FullEmbedding, LowRankEmbedding


@dataclass
class VectorVocabulary:
    """The vectors' words as the tokenizer can see them, each with its row in `table`."""

    words: list[str]
    rows: np.ndarray  # (N,) int64 into table
    table: np.ndarray  # (R, d) float32
    source_strings: int  # strings in the vectors file (before lower-casing and the one-token filter)


def vector_vocabulary(words: list[str], vectors, config: TokenizerConfig | None = None) -> VectorVocabulary:
    """Every vectors string that the tokenizer turns into exactly itself (lower-cased when it lower-cases):
    strings with spaces or punctuation inside can never be looked up, and "The" is only ever seen as "the".
    When several strings fold to one word, the word's own string wins (its row), else the first variant.
    `vectors` is a (N, d) array or a `RowMapped` (rows shared by many strings, stored once)."""
    probe = Tokenizer(config or TokenizerConfig(), [PAD, OOV])
    if hasattr(vectors, "rows") and hasattr(vectors, "table"):
        table, rows = np.asarray(vectors.table), np.asarray(vectors.rows, dtype=np.int64)
    else:
        table, rows = np.asarray(vectors, dtype=np.float32), np.arange(len(words), dtype=np.int64)
    chosen: dict[str, int] = {}
    for s, r in zip(words, rows.tolist(), strict=True):
        w = s.lower() if probe.config.lowercase else s
        if w in (PAD, OOV) or probe.tokenize(w) != [w]:
            continue
        if w not in chosen or s == w:
            chosen[w] = r
    return VectorVocabulary(list(chosen), np.fromiter(chosen.values(), dtype=np.int64, count=len(chosen)),
                            table.astype(np.float32, copy=False), len(words))


@dataclass
class OpenRows:
    """The open vocabulary: the training tokenizer's words first (ids unchanged), then the vectors' other words,
    whose rows are `table[rest_rows]`."""

    tok: Tokenizer
    n_train: int
    table: np.ndarray  # (R, d)
    rest_rows: np.ndarray  # (|V_open| - n_train,) int64

    @property
    def size(self) -> int:
        return len(self.tok)


def build_open_rows(train_tok: Tokenizer, vec: VectorVocabulary) -> OpenRows:
    extra = [(w, r) for w, r in zip(vec.words, vec.rows.tolist(), strict=True) if w not in train_tok.stoi]
    tok = Tokenizer(train_tok.config, [*train_tok.itos, *(w for w, _ in extra)])
    rest = np.fromiter((r for _, r in extra), dtype=np.int64, count=len(extra))
    return OpenRows(tok, len(train_tok), vec.table, rest)


def full_open_embedding(e_train: torch.Tensor, rows: OpenRows) -> torch.Tensor:
    """(|V_open|, d): the trained rows, then the pretrained rows of the words absent from training."""
    if e_train.shape[0] != rows.n_train:
        raise ValueError(f"embedding has {e_train.shape[0]} rows, the training vocabulary {rows.n_train}")
    rest = torch.from_numpy(rows.table[rows.rest_rows]).to(e_train.dtype)
    return torch.cat([e_train.detach(), rest])


def open_factors(e_train: torch.Tensor, rows: OpenRows, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A (|V_open|, k) = U_k and B (k, d) = S_k V_k^T of the rank-k truncated SVD of the open embedding,
    from its Gram matrix E^T E (d x d, float64; shared pretrained rows counted with their multiplicity)."""
    e = e_train.detach().double().numpy()
    table = rows.table.astype(np.float64)
    d = e.shape[1]
    if not 1 <= k <= d:
        raise ValueError(f"rank {k} out of range for width {d}")
    counts = np.bincount(rows.rest_rows, minlength=len(table)).astype(np.float64)  # (R,)
    gram = e.T @ e + (table * counts[:, None]).T @ table  # (d, d)
    evals, evecs = np.linalg.eigh(gram)
    order = np.argsort(evals)[::-1][:k]
    s = np.sqrt(np.clip(evals[order], 0.0, None))  # (k,)
    v = evecs[:, order]  # (d, k)
    proj = v / np.where(s > 0, s, 1.0)  # (d, k): E V_k S_k^-1 = U_k
    a = np.concatenate([e @ proj, (table @ proj)[rows.rest_rows]])
    b = s[:, None] * v.T  # (k, d)
    return torch.from_numpy(a).float(), torch.from_numpy(b).float()


class SplitRows(nn.Module):
    """A lookup table whose rows [0, n) are trained and rows [n, V) are a frozen buffer: re-training touches
    only the training words' rows of A (the others could never get a gradient anyway)."""

    def __init__(self, train_rows: torch.Tensor, rest_rows: torch.Tensor):
        super().__init__()
        self.train_rows = nn.Embedding.from_pretrained(train_rows, freeze=False, padding_idx=0)
        self.register_buffer("rest", rest_rows.clone())

    @property
    def num_embeddings(self) -> int:
        return self.train_rows.num_embeddings + self.rest.shape[0]

    @property
    def embedding_dim(self) -> int:
        return self.train_rows.embedding_dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        n = self.train_rows.num_embeddings
        trained = self.train_rows(ids.clamp(max=n - 1))  # (B, T, k)
        if self.rest.shape[0] == 0:
            return trained
        frozen = self.rest[(ids - n).clamp(min=0, max=self.rest.shape[0] - 1)]  # (B, T, k)
        return torch.where((ids >= n).unsqueeze(-1), frozen, trained)

    def merged(self) -> torch.Tensor:
        return torch.cat([self.train_rows.weight.detach(), self.rest])


def open_full_model(trained: nn.Module, rows: OpenRows) -> nn.Module:
    """A copy of the trained training-vocabulary model whose embedding covers the open vocabulary."""
    model = copy.deepcopy(trained)
    model.embedding = FullEmbedding(full_open_embedding(trained.embedding.table.weight, rows))
    return model.eval()


def open_lowrank_model(trained: nn.Module, rows: OpenRows, k: int) -> nn.Module:
    """The trained model with the open embedding factorized at rank k; A's training rows trainable, the rest frozen."""
    a, b = open_factors(trained.embedding.table.weight, rows, k)
    model = copy.deepcopy(trained)
    emb = LowRankEmbedding(a[: rows.n_train], b)
    emb.a = SplitRows(a[: rows.n_train], a[rows.n_train:])
    model.embedding = emb
    return model


def projected_lowrank_model(lowrank: nn.Module, rows: OpenRows) -> nn.Module:
    """The training-vocabulary low-rank model, re-trained as usual, with a row of A for every other word: the
    least-squares fit of its pretrained vector through the trained B (v ~ a B, a = v B^+). No re-training; the
    training words keep their rows, so sentences without out-of-training words get the very same answers."""
    emb = lowrank.embedding
    if emb.vocab_size != rows.n_train:
        raise ValueError(f"A has {emb.vocab_size} rows, the training vocabulary {rows.n_train}")
    pinv = torch.linalg.pinv(emb.b.detach().double())  # (d, k)
    rest = (torch.from_numpy(rows.table).double() @ pinv)[torch.from_numpy(rows.rest_rows)].float()  # (V_rest, k)
    model = copy.deepcopy(lowrank)
    model.embedding = LowRankEmbedding(torch.cat([emb.a.weight.detach(), rest]), emb.b.detach())
    return model.eval()


def merged(model: nn.Module) -> nn.Module:
    """The same model with A as one plain table (what is exported: one [|V|, k] initializer)."""
    out = copy.deepcopy(model)
    emb = out.embedding
    if isinstance(emb, LowRankEmbedding) and isinstance(emb.a, SplitRows):
        out.embedding = LowRankEmbedding(emb.a.merged(), emb.b.detach())
    return out.eval()
