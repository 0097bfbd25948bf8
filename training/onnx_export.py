"""ONNX mechanics: export full and factorized models, an int8-weights copy, and the artifact folder.

Graph inputs: `input_ids (B, T) int64`, `lengths (B,) int64`; output: `logits (B, C)`.
The factorized model keeps A (|V|xk, read by Gather) and B (kxd, used by MatMul) as two
initializers; `check_lowrank_initializers` proves the |V|xd product never lands in the file.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper

from slimtext.manifest import MODEL_FILE, TEXT_MODEL_FILE, VOCAB_FILE, Manifest, TextModel, sha256_file
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


INT8_WEIGHTS = "int8-weights-per-row"  # slimtext.manifest.QUANTIZATIONS
_WEIGHT_INPUTS = {"MatMul": (1,), "Gemm": (1,), "Conv": (1,), "LSTM": (1, 2), "Gather": (0,)}


def _per_row_int8(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 with one fp32 scale per slice along `axis`: (q, scales)."""
    moved = np.moveaxis(w, axis, 0)
    scales = np.abs(moved.reshape(moved.shape[0], -1)).max(1) / 127.0  # (rows,)
    scales = np.where(scales > 0, scales, 1.0).astype(np.float32)  # an all-zero row (PAD) stays zero
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scales.reshape(shape)), -127, 127).astype(np.int8)
    return q, scales


def quantize_int8_weights(src: str | Path, dst: str | Path) -> None:
    """Weight-only int8: every weight of a MatMul / Gemm / Conv / LSTM / Gather (the embedding) is stored
    as symmetric int8 with one fp32 scale per row and dequantized inside the graph; activations stay
    fp32 and no scale depends on the input, so a text's answer does not depend on its batch companions
    (onnxruntime's dynamic quantization computes activation scales per batch).

    Embedding tables are gathered as int8 rows and scaled after the lookup (never dequantized whole);
    other weights go through DequantizeLinear (per-axis: the first axis longer than 1)."""
    model = onnx.load(str(src))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    uses: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            uses.setdefault(name, []).append((node, i))
    front: list[onnx.NodeProto] = []
    after: dict[int, list[onnx.NodeProto]] = {}  # id(Gather node) -> nodes that scale its output
    for name, init in list(inits.items()):
        w = numpy_helper.to_array(init)
        users = uses.get(name, [])
        if w.dtype != np.float32 or w.ndim < 2 or not users or not all(
                i in _WEIGHT_INPUTS.get(n.op_type, ()) for n, i in users):
            continue
        gathers = [n for n, _ in users if n.op_type == "Gather"]
        axis = 0 if gathers else next(a for a, n in enumerate(w.shape) if n > 1 or a == w.ndim - 1)
        if gathers and (len(gathers) != len(users) or w.ndim != 2
                        or any(a.name == "axis" and a.i != 0 for n in gathers for a in n.attribute)):
            continue
        q, scales = _per_row_int8(w, axis)
        graph.initializer.remove(init)
        graph.initializer.extend([numpy_helper.from_array(q, f"{name}_int8"),
                                  numpy_helper.from_array(scales, f"{name}_scale")])
        if not gathers:
            front.append(onnx.helper.make_node("DequantizeLinear", [f"{name}_int8", f"{name}_scale"], [name],
                                               axis=axis, name=f"{name}_dequantize"))
            continue
        for k, g in enumerate(gathers):
            out, ids, p = g.output[0], g.input[1], f"{name}_{k}"
            g.input[0], g.output[0] = f"{name}_int8", f"{p}_rows_int8"  # (B, T, d) int8
            after[id(g)] = [
                onnx.helper.make_node("Gather", [f"{name}_scale", ids], [f"{p}_row_scale"], name=f"{p}_gather_scale"),
                onnx.helper.make_node("Unsqueeze", [f"{p}_row_scale", f"{p}_last_axis"], [f"{p}_row_scale_1"],
                                      name=f"{p}_unsqueeze"),
                onnx.helper.make_node("Cast", [f"{p}_rows_int8"], [f"{p}_rows"], to=onnx.TensorProto.FLOAT,
                                      name=f"{p}_cast"),
                onnx.helper.make_node("Mul", [f"{p}_rows", f"{p}_row_scale_1"], [out], name=f"{p}_scale_rows"),
            ]
            graph.initializer.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), f"{p}_last_axis"))
    nodes = [*front]
    for node in graph.node:
        nodes += [node, *after.get(id(node), [])]
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


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


def add_text_model(folder: str | Path, tok: Tokenizer) -> Manifest:
    """Write `folder/model.text.onnx`, the folder's model with the tokenizer and the label names inside the graph
    (string input; training/graph_tokenizer.py), and record it in the manifest."""
    from training.graph_tokenizer import NONSTANDARD_OPS, save_text_model

    folder = Path(folder)
    manifest = Manifest.load(folder)
    path = folder / TEXT_MODEL_FILE
    size = save_text_model(path, folder / MODEL_FILE, tok, manifest.labels)
    manifest = manifest.model_copy(update={"text_model": TextModel(file=TEXT_MODEL_FILE, sha256=sha256_file(path),
                                                                   bytes=size, ops=NONSTANDARD_OPS)})
    manifest.save(folder)
    return manifest
