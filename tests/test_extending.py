"""A new architecture and a new compression method, defined in this file alone (no other file touched),
reach `run` (train -> compress -> export), the sweep, the report and serving: docs/extending.md."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

from research.report import write_report
from service.registry import ModelRegistry, RegistryConfig
from slimtext.runtime import OnnxClassifier
from training.architectures import ARCHITECTURES, Architecture, register_architecture
from training.cli import main
from training.methods import KINDS, METHODS, Method, MethodKind, Outcome, register_kind, register_method
from training.model import masked_mean
from training.onnx_export import initializer_shapes
from training.sizes import Shape, total_params
from training.sweep import Block, SweepConfig, run_sweep
from training.train import FitConfig


class BagOfWords(nn.Module):
    """The toy architecture: mean of the word vectors -> one linear layer."""

    def __init__(self, embedding: nn.Module, n_classes: int, scale: float = 1.0):
        super().__init__()
        self.embedding, self.scale = embedding, scale
        self.out = nn.Linear(embedding.dim, n_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = torch.arange(ids.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
        return self.out(masked_mean(self.embedding(ids), mask) * self.scale)  # (B, C)


def _prune(bench, method: Method, reduction: float | None) -> Outcome:
    """The toy method: zero the embedding rows with the smallest norms (a tenth of the vocabulary)."""
    model = copy.deepcopy(bench.full())
    table = model.embedding.table.weight
    with torch.no_grad():
        table[table.norm(dim=1).argsort()[: len(table) // 10]] = 0.0
    return Outcome(model)


@pytest.fixture(scope="module", autouse=True)
def toys():
    register_architecture(Architecture(
        name="bag", cls=BagOfWords, defaults={"scale": 1.0}, cost=0.5,
        train=FitConfig(epochs=2, lr=5e-3, batch_size=64), retrain=FitConfig(epochs=1, batch_size=64),
        body_params=lambda s: s.dim * s.n_classes + s.n_classes,
        body_quantized_bytes=lambda s, q: q(s.n_classes, s.dim) + 4 * s.n_classes,
        flops=lambda s, t: t * s.dim + 2 * s.dim * s.n_classes))
    register_kind(MethodKind("prune", _prune))
    register_method(Method(name="prune10", kind="prune"))
    yield
    for registry, key in ((ARCHITECTURES, "bag"), (KINDS, "prune"), (METHODS, "prune10")):
        registry.pop(key)


def test_a_new_architecture_and_method_reach_run_and_serving(tmp_path, sst2):
    models = tmp_path / "models"
    assert main(["run", "--dataset", "sst2", "--vectors", "glove50", "--limit-train", "2000", "--model", "bag",
                 "--method", "prune10",
                 "--out", str(models), "--threads", "1"]) == 0
    registry = ModelRegistry.load(RegistryConfig(models))  # exactly what the service loads at start-up
    assert sorted(registry.models) == ["sst2-bag-full", "sst2-bag-int8", "sst2-bag-prune10"]
    pruned = registry.models["sst2-bag-prune10"].classifier
    assert pruned.manifest.architecture == "bag" and pruned.manifest.method == "prune10"
    assert pruned.manifest.accuracy.test > 0.6
    probs = pruned.predict(sst2["test"].texts[:20]).probs
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    # the analytic size formula registered with the architecture agrees with the exported file
    m = OnnxClassifier(models / "sst2-bag-full").manifest
    shape = Shape(arch="bag", vocab=m.vocab_size, dim=m.embedding_dim, n_classes=2)
    params = sum(int(np.prod(s)) for s in initializer_shapes(models / "sst2-bag-full" / "model.onnx").values())
    assert total_params(shape) == m.params.total == params


def test_a_new_architecture_and_method_reach_the_sweep_and_the_report(tmp_path):
    cfg = SweepConfig(blocks=[Block(datasets=["sst2"], models=["bag"], methods=["full", "prune10", "online"],
                                    seeds=[0])], limit_train=2000, out_dir=tmp_path / "sweep")
    rows = run_sweep(cfg)
    assert sorted(r["method"] for r in rows) == ["full", "online", "prune10"]
    assert all(r["model"] == "bag" and r["test_acc"] > 0.5 for r in rows)
    paths = write_report(cfg.csv_path, tmp_path / "docs")
    text = paths[0].read_text()
    assert "| sst2 | bag | prune10 |" in text  # the report's table of methods it has no section for
    assert "| bag | full |" in text  # the analytic size table, from the registered formula
