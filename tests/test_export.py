"""The exported files: numerically the PyTorch models, and the factors kept apart."""

import numpy as np
import onnx
import pytest
import torch

from slimtext.runtime import OnnxClassifier
from training.onnx_export import check_lowrank_initializers, export_onnx, initializer_shapes


@pytest.mark.parametrize("kind", ["full", "lowrank"])
def test_onnxruntime_logits_match_pytorch_on_real_sentences(quick_run, sst2, kind):
    models_dir, result = quick_run
    model = result.full if kind == "full" else result.lowrank
    served = OnnxClassifier(models_dir / f"sst2-dan-{kind}")
    texts = sst2["test"].texts[:300] + ["", "zzzz qqqq", "a gorgeous , witty , seductive movie ."]
    ids, lengths = served.tokenizer.encode_batch(texts)
    with torch.no_grad():
        expected = model(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
    got = served.logits(ids, lengths)
    assert got.shape == expected.shape == (len(texts), 2)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_lowrank_file_holds_two_factors_and_no_full_table(quick_run):
    models_dir, result = quick_run
    manifest = OnnxClassifier(models_dir / "sst2-dan-lowrank").manifest
    v, d, k = manifest.vocab_size, manifest.embedding_dim, manifest.rank
    assert k * (v + d) <= 0.1 * v * d
    shapes = list(initializer_shapes(models_dir / "sst2-dan-lowrank" / "model.onnx").values())
    assert shapes.count((v, k)) == 1 and shapes.count((k, d)) == 1
    assert not [s for s in shapes if v in s and s != (v, k)]
    assert not [s for s in shapes if int(np.prod(s)) == v * d]
    # the embedding is read by a Gather on A, then multiplied by B
    ops = [n.op_type for n in onnx.load(str(models_dir / "sst2-dan-lowrank" / "model.onnx")).graph.node]
    assert "Gather" in ops and "MatMul" in ops
    check_lowrank_initializers(models_dir / "sst2-dan-lowrank" / "model.onnx", v, d, k)


def test_check_rejects_a_multiplied_back_table(tmp_path):
    from training.model import DAN, FullEmbedding

    model = DAN(FullEmbedding(torch.randn(500, 20)), 2, hidden=(8,))
    export_onnx(model, tmp_path / "m.onnx")
    with pytest.raises(RuntimeError, match="no"):
        check_lowrank_initializers(tmp_path / "m.onnx", 500, 20, 2)


def test_int8_stores_every_weight_matrix_the_embedding_too_as_int8_per_row(quick_run):
    models_dir, _ = quick_run
    manifest = OnnxClassifier(models_dir / "sst2-dan-int8").manifest
    assert manifest.quantization == "int8-weights-per-row" and manifest.method == "full"
    graph = onnx.load(str(models_dir / "sst2-dan-int8" / "model.onnx")).graph
    inits = {t.name: t for t in graph.initializer}
    table = inits["model.embedding.table.weight_int8"]
    assert table.data_type == onnx.TensorProto.INT8 and list(table.dims) == [manifest.vocab_size, 50]
    assert list(inits["model.embedding.table.weight_scale"].dims) == [manifest.vocab_size]  # one scale per row
    assert not [t for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 2]
    assert not {"DynamicQuantizeLinear", "MatMulInteger"} & {n.op_type for n in graph.node}  # weight-only
    sizes = {k: (models_dir / f"sst2-dan-{k}" / "model.onnx").stat().st_size for k in ("full", "lowrank", "int8")}
    assert sizes["lowrank"] < sizes["int8"] < sizes["full"]


@pytest.mark.parametrize(("batch", "seq"), [(1, 1), (1, 37), (9, 5), (64, 120)])
def test_batch_and_sequence_axes_stay_dynamic(quick_run, batch, seq):
    models_dir, result = quick_run
    served = OnnxClassifier(models_dir / "sst2-dan-lowrank")
    ids = np.random.default_rng(0).integers(2, served.manifest.vocab_size, size=(batch, seq))
    lengths = np.full(batch, seq, dtype=np.int64)
    with torch.no_grad():
        expected = result.lowrank(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
    np.testing.assert_allclose(served.logits(ids, lengths), expected, atol=1e-5, rtol=0)


def test_manifests_record_sizes_and_accuracy(quick_run):
    models_dir, _ = quick_run
    for kind in ("full", "lowrank", "int8"):
        m = OnnxClassifier(models_dir / f"sst2-dan-{kind}").manifest
        assert m.kind == kind and m.labels == ["negative", "positive"]
        assert m.onnx_bytes == (models_dir / m.name / "model.onnx").stat().st_size
        assert 0.5 < m.accuracy.dev <= 1 and 0.5 < m.accuracy.test <= 1
        assert m.versions["onnxruntime"] != "not installed"
    low = OnnxClassifier(models_dir / "sst2-dan-lowrank").manifest
    assert low.embedding_compression >= 0.9
    assert low.params.embedding == low.rank * (low.vocab_size + low.embedding_dim)
