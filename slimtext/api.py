"""Use an exported model folder from Python (needs only the `serve` extra: onnxruntime, no torch, no onnx).

    import slimtext
    clf = slimtext.load("models/sst2-dan-lowrank")
    clf.predict("a gorgeous , witty , seductive movie .")          # [Label(label='positive', score=0.99...)]
    clf.predict(["a dull mess .", "great fun"], k=2)             # one list of k (label, score) per text
    clf.predict_proba(["a dull mess ."])                          # numpy (N, C), columns in clf.labels order
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple, overload

import numpy as np

from slimtext.manifest import Manifest
from slimtext.runtime import open_classifier


class Label(NamedTuple):
    label: str
    score: float  # the label's probability


class TextClassifier:
    """A model folder run by onnxruntime: its string-input model (manifest `text_model`, tokenizer and labels in
    the graph) when it has one, else model.onnx + vocab.json as the service runs it."""

    def __init__(self, folder: str | Path, threads: int = 1, batch_size: int = 256, graph_tokenizer: bool = True):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        # the string-input model (tokenizer inside the graph) when the folder has one and `graph_tokenizer`, else
        # model.onnx + vocab.json (a folder with only the string-input model always uses it)
        self._model = open_classifier(folder, prefer_text=graph_tokenizer, intra_op_threads=threads)
        self.batch_size = batch_size

    @property
    def labels(self) -> list[str]:
        return list(self._model.labels)

    @property
    def manifest(self) -> Manifest:
        return self._model.manifest

    @property
    def name(self) -> str:
        return self._model.manifest.name

    def __repr__(self) -> str:
        m = self.manifest
        return f"TextClassifier({m.name!r}, kind={m.kind!r}, labels={m.labels!r}, onnx_bytes={m.onnx_bytes})"

    def predict_proba(self, texts: str | Iterable[str]) -> np.ndarray:
        """Probabilities, shape (N, C) float32, columns in `labels` order (N = 1 for a single string)."""
        batch = _as_list(texts)
        if not batch:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        parts = [self._model.predict(batch[i: i + self.batch_size]).probs
                 for i in range(0, len(batch), self.batch_size)]
        return np.concatenate(parts)

    @overload
    def predict(self, texts: str, k: int = 1) -> list[Label]: ...
    @overload
    def predict(self, texts: Iterable[str], k: int = 1) -> list[list[Label]]: ...

    def predict(self, texts, k: int = 1):
        """The k most likely labels with their probabilities, best first: a list for one string, a list of
        lists for several texts. k=-1 (or any k above the number of labels) returns every label."""
        if k == 0 or k < -1:
            raise ValueError(f"k must be >= 1 or -1 (every label), not {k}")
        probs = self.predict_proba(texts)
        k = probs.shape[1] if k == -1 else min(k, probs.shape[1])
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        labels = self.labels
        out = [[Label(labels[j], float(row[j])) for j in idx] for row, idx in zip(probs, order, strict=True)]
        return out[0] if isinstance(texts, str) else out


def load(folder: str | Path, threads: int = 1, batch_size: int = 256, graph_tokenizer: bool = True) -> TextClassifier:
    """Load an exported model folder (e.g. models/sst2-dan-lowrank); raises ModelLoadError with the file
    and the reason when the folder is not a valid model. `graph_tokenizer`: use the folder's string-input model
    (model.text.onnx: tokenizer inside the graph, docs/tokenizer-graph.md) when it has one."""
    return TextClassifier(folder, threads=threads, batch_size=batch_size, graph_tokenizer=graph_tokenizer)


def _as_list(texts: str | Iterable[str]) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    batch = list(texts)
    bad = [i for i, t in enumerate(batch) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"texts must be strings; item(s) {bad[:5]} are not")
    return batch
