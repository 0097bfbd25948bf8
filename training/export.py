"""ONNX export: full and factorized models, an int8 copy, and the artifact folder around each.

Graph inputs: `input_ids (B, T) int64`, `lengths (B,) int64`; output: `logits (B, C)`.
The factorized model keeps A (|V|xk, read by Gather) and B (kxd, used by MatMul) as two
initializers; `check_lowrank_initializers` proves the |V|xd product never lands in the file.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper

from slimtext.manifest import MODEL_FILE, VOCAB_FILE, Accuracy, Manifest, ParamCounts, sha256_file
from slimtext.tokenizer import Tokenizer

OPSET = 17
INPUTS, OUTPUTS = ["input_ids", "lengths"], ["logits", "probabilities"]


class WithProbabilities(nn.Module):
    """Adds softmax(logits) as a second graph output: onnxruntime computes it in ~1 us, numpy in ~12."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(ids, lengths)  # (B, C)
        return logits, torch.softmax(logits, dim=-1)


def export_onnx(model: nn.Module, path: str | Path) -> None:
    """TorchScript exporter (dynamo=False): one self-contained file, dynamic batch and sequence
    axes, and LSTM as one op that the int8 quantizer understands."""
    wrapped = WithProbabilities(model).eval()
    ids = torch.tensor([[2, 3, 4, 0], [5, 6, 7, 8]], dtype=torch.int64)  # (B=2, T=4)
    lengths = torch.tensor([3, 4], dtype=torch.int64)
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, and chosen on purpose
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapped, (ids, lengths), str(path), dynamo=False, opset_version=OPSET,
            input_names=INPUTS, output_names=OUTPUTS,
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "lengths": {0: "batch"}, "logits": {0: "batch"},
                          "probabilities": {0: "batch"}},
        )
    check_dynamic_axes(path)


def check_dynamic_axes(path: str | Path) -> None:
    graph = onnx.load(str(path), load_external_data=False).graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    if not (isinstance(dims["input_ids"][0], str) and isinstance(dims["input_ids"][1], str)):
        raise RuntimeError(f"{path}: batch/sequence axes were fixed at export: {dims['input_ids']}")


def quantize_int8(src: str | Path, dst: str | Path) -> None:
    """Dynamic int8 quantization with onnxruntime: weights of MatMul/Gemm/Gather (the embedding
    included, one scale per tensor) stored as 8-bit; Conv excluded (slower quantized here)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QUInt8,
                     op_types_to_quantize=["MatMul", "Gemm", "Gather", "LSTM"])


def initializer_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    graph = onnx.load(str(path)).graph
    return {t.name: tuple(t.dims) for t in graph.initializer}


def check_lowrank_initializers(path: str | Path, vocab_size: int, dim: int, k: int) -> None:
    """Exactly one [|V|,k] and one [k,d] embedding initializer; nothing of |V|xd elements."""
    shapes = initializer_shapes(path).values()
    a = [s for s in shapes if s == (vocab_size, k)]
    b = [s for s in shapes if s == (k, dim)]
    big = [s for s in shapes if vocab_size in s and s != (vocab_size, k) or int(np.prod(s)) == vocab_size * dim]
    if len(a) != 1 or len(b) != 1 or big:
        raise RuntimeError(f"{path}: expected one [{vocab_size},{k}] and one [{k},{dim}] initializer and "
                           f"no |V|xd one; found A={a} B={b} large={big}")


def count_onnx_params(path: str | Path) -> int:
    graph = onnx.load(str(path)).graph
    return sum(int(np.prod(t.dims)) for t in graph.initializer)


def onnx_param_bytes_by_dtype(path: str | Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in onnx.load(str(path)).graph.initializer:
        arr = numpy_helper.to_array(t)
        out[str(arr.dtype)] = out.get(str(arr.dtype), 0) + arr.nbytes
    return out


def package_versions() -> dict[str, str]:
    names = ["torch", "onnx", "onnxruntime", "numpy", "slimtext"]
    out = {}
    for n in names:
        try:
            out[n] = importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            out[n] = "not installed"
    return out


def write_artifact(folder: str | Path, onnx_src: str | Path, tok: Tokenizer, **fields) -> Manifest:
    """Copy the ONNX file and the vocabulary into `folder` and write its manifest. `fields` are the
    manifest's remaining entries (name, kind, labels, params, accuracy, ...)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_src, folder / MODEL_FILE)
    tok.save(folder / VOCAB_FILE)
    manifest = Manifest(
        tokenizer=tok.config, vocab_size=len(tok), onnx_bytes=(folder / MODEL_FILE).stat().st_size,
        param_bytes_by_dtype=onnx_param_bytes_by_dtype(folder / MODEL_FILE),
        sha256=sha256_file(folder / MODEL_FILE), versions=package_versions(), **fields,
    )
    manifest.save(folder)
    return manifest


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="slimtext-export-"))


__all__ = [
    "Accuracy", "ParamCounts", "export_onnx", "quantize_int8", "check_lowrank_initializers",
    "count_onnx_params", "onnx_param_bytes_by_dtype", "write_artifact", "scratch_dir",
]
