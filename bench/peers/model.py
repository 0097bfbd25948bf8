"""What every peer app runs: one exported model folder through slimtext's own runtime (tokenizer + onnxruntime,
intra-op threads 1), answers shaped like slimtext's `/classify` predictions (label, score, probabilities).

The folder comes from $SLIMTEXT_PEER_MODEL, so each framework's own launcher can start the app unchanged; the
frameworks' own worker knob (LitServe `workers_per_device`, BentoML `workers`, Ray Serve `num_replicas`) reads
$SLIMTEXT_PEER_WORKERS (default 1), so the driver can run a 2-worker variant of the same app.
"""

from __future__ import annotations

import os

from slimtext.runtime import OnnxClassifier

MODEL_ENV = "SLIMTEXT_PEER_MODEL"
WORKERS_ENV = "SLIMTEXT_PEER_WORKERS"


def workers() -> int:
    """The framework's worker (process / replica) count for this run: $SLIMTEXT_PEER_WORKERS, default 1."""
    n = int(os.environ.get(WORKERS_ENV, "1"))
    if n < 1:
        raise RuntimeError(f"{WORKERS_ENV} must be at least 1, not {n}")
    return n


def load_model() -> OnnxClassifier:
    folder = os.environ.get(MODEL_ENV)
    if not folder:
        raise RuntimeError(f"set {MODEL_ENV} to an exported model folder")
    return OnnxClassifier(folder, intra_op_threads=1)


def classify(model: OnnxClassifier, texts: list[str]) -> list[dict]:
    """One prediction per text, as plain dicts (what a user would return from any framework)."""
    pred = model.predict(texts)
    labels = model.labels
    out = []
    for row in pred.probs.tolist():
        best = row.index(max(row))
        out.append({"label": labels[best], "score": row[best], "probabilities": dict(zip(labels, row, strict=True))})
    return out


def split(flat: list, sizes: list[int]) -> list[list]:
    """Undo the flattening of a batch of requests: `sizes[i]` items back to request i."""
    out, start = [], 0
    for n in sizes:
        out.append(flat[start: start + n])
        start += n
    return out
