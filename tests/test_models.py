"""CNN and BiLSTM beside DAN: masking of padded positions, short and empty texts, ONNX export."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn

from training.architectures import ARCHITECTURES
from training.model import BiLSTM, FullEmbedding, KimCNN, LowRankEmbedding, reverse_within_length
from training.onnx_export import check_dynamic_axes, export_onnx
from training.sizes import Shape, total_params

V, D = 60, 8


def make(arch: str, rank: int | None = None, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    w = torch.randn(V, D)
    w[0] = 0.0
    emb = FullEmbedding(w) if rank is None else LowRankEmbedding(torch.randn(V, rank), torch.randn(rank, D))
    kwargs = {"dan": {"hidden": (16,)}, "cnn": {"maps": 6}, "bilstm": {"hidden": 7}}[arch]
    return ARCHITECTURES[arch].cls(emb, 3, **kwargs).eval()


def batch(rows: list[list[int]], width: int | None = None, fill: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    t = width or max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), t), fill, dtype=torch.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.int64)
    return ids, torch.tensor([len(r) for r in rows], dtype=torch.int64)


ROWS = [[5, 9, 3, 22, 7, 41, 2], [4, 8], [17], [3, 3, 3, 3, 3], []]


@pytest.mark.parametrize("arch", ["dan", "cnn", "bilstm"])
@pytest.mark.parametrize("rank", [None, 3])
def test_padding_never_changes_a_text_s_logits(arch, rank):
    model = make(arch, rank)
    with torch.no_grad():
        alone = torch.cat([model(*batch([r])) for r in ROWS])  # each text on its own, no padding
        padded = model(*batch(ROWS, width=12))  # padded to 12 with PAD
        garbage = model(*batch(ROWS, width=12, fill=13))  # real word ids beyond each length
    assert padded.shape == (len(ROWS), 3)
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(garbage, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["dan", "cnn", "bilstm"])
def test_empty_text_gives_finite_logits_and_gradients(arch):
    model = make(arch).train()
    ids, lengths = batch([[], [4, 5]])
    out = model(ids, lengths)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_cnn_short_text_uses_one_zero_padded_window_per_width():
    model = make("cnn")
    ids, lengths = batch([[7, 9]])  # shorter than widths 3, 4 and 5
    with torch.no_grad():
        x = model.embedding(ids).transpose(1, 2)  # (1, d, 2)
        pooled = [torch.relu(conv(nn.functional.pad(x, (0, w - 2))))[:, :, 0] for w, conv in
                  zip(model.widths, model.convs, strict=True)]  # the only window: the text then zeros
        expected = model.out(torch.cat(pooled, 1))
        torch.testing.assert_close(model(ids, lengths), expected, atol=1e-6, rtol=0)


def test_cnn_max_pool_ignores_windows_that_start_in_padding():
    model = make("cnn")
    with torch.no_grad():
        for conv in model.convs:  # a bias so large that any window over pure padding would win the max
            conv.bias.fill_(50.0)
        short, long_ = model(*batch([[7, 9, 11]], width=3)), model(*batch([[7, 9, 11]], width=20))
    torch.testing.assert_close(short, long_, atol=1e-5, rtol=0)


def test_bilstm_matches_torch_bidirectional_lstm_on_unpadded_texts():
    model = make("bilstm")
    ref = nn.LSTM(D, 7, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for suffix, lstm in (("", model.forward_lstm), ("_reverse", model.backward_lstm)):
            for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                getattr(ref, name + suffix).copy_(getattr(lstm, name))
        for r in ROWS[:4]:
            ids, lengths = batch([r])
            states, _ = ref(model.embedding(ids))  # (1, T, 2h), no padding at all
            expected = model.out(states.mean(1))
            torch.testing.assert_close(model(*batch([r], width=10)), expected, atol=1e-5, rtol=0)


def test_reverse_within_length_keeps_padding_in_place():
    x = torch.arange(8.0).reshape(2, 4, 1)  # (B=2, T=4, 1)
    out = reverse_within_length(x, torch.tensor([3, 0]))
    assert out[0, :, 0].tolist() == [2.0, 1.0, 0.0, 3.0]
    assert out[1, :, 0].tolist() == [4.0, 5.0, 6.0, 7.0]


def test_model_constructors_validate():
    with pytest.raises(ValueError):
        KimCNN(FullEmbedding(torch.randn(5, 4)), 2, widths=())
    assert isinstance(make("bilstm"), BiLSTM)


@pytest.mark.parametrize("arch", ["dan", "cnn", "bilstm"])
@pytest.mark.parametrize("rank", [None, 3])
def test_onnx_export_is_dynamic_and_matches_pytorch(tmp_path, arch, rank):
    model = make(arch, rank)
    path = tmp_path / "m.onnx"
    export_onnx(model, path)
    check_dynamic_axes(path)
    graph = onnx.load(str(path)).graph
    dims = [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim]
    assert all(dims), f"input_ids axes fixed: {dims}"
    # the analytic parameter count (training/sizes.py) is what the file holds
    n_float = sum(int(np.prod(t.dims)) for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT)
    kwargs = {"dan": {"hidden": (16,)}, "cnn": {"maps": 6}, "bilstm": {"lstm_hidden": 7}}[arch]
    assert n_float == total_params(Shape(arch=arch, vocab=V, dim=D, n_classes=3, rank=rank, **kwargs))
    assert n_float == sum(p.numel() for p in model.parameters())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for b, t in ((1, 1), (5, 9), (3, 30)):
        lengths = rng.integers(0, t + 1, size=b).astype(np.int64)
        ids = np.where(np.arange(t) < lengths[:, None], rng.integers(2, V, size=(b, t)), 0).astype(np.int64)
        got = session.run(["logits"], {"input_ids": ids, "lengths": lengths})[0]
        with torch.no_grad():
            expected = model(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
        assert got.shape == (b, 3)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
