"""Model checkpoints as plain data (the architecture, its constructor arguments and a state dict), and
result files written atomically.

Loaded with `torch.load(..., weights_only=True)`: no pickled code runs when a checkpoint is read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from training.architectures import architecture_of, get_architecture
from training.model import FullEmbedding, LowRankEmbedding


def save_model(path: str | Path, model: nn.Module, n_classes: int, model_kwargs: dict[str, Any],
               info: dict[str, Any] | None = None) -> None:
    emb = model.embedding
    data = {"arch": architecture_of(model), "n_classes": n_classes, "vocab": emb.vocab_size, "dim": emb.dim,
            "rank": emb.rank,
            "kwargs": {k: list(v) if isinstance(v, tuple) else v for k, v in model_kwargs.items()},
            "state_dict": model.state_dict(), "info": info or {}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(data, tmp)
    tmp.replace(path)


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode, the info saved with it)."""
    data = torch.load(path, weights_only=True)
    v, d, k = data["vocab"], data["dim"], data["rank"]
    emb = FullEmbedding(torch.zeros(v, d)) if k is None else LowRankEmbedding(torch.zeros(v, k), torch.zeros(k, d))
    kwargs = {key: tuple(val) if isinstance(val, list) else val for key, val in data["kwargs"].items()}
    model = get_architecture(data["arch"]).cls(emb, data["n_classes"], **kwargs)
    model.load_state_dict(data["state_dict"])
    return model.eval(), data["info"]


def write_json(path: str | Path, data: dict) -> None:
    """Write atomically (a temp file, then rename): a killed run never leaves half a result."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)
