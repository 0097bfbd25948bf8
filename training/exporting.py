"""`export` and `evaluate` for run folders: a servable model folder, and accuracy anywhere.

An exported folder is what the service loads (model.onnx, vocab.json, manifest.json). A quantized
run (int8, int4, ...) is exported with its dequantized fp32 weights, i.e. exactly the numbers that
were evaluated; `--int8` instead stores an onnxruntime-quantized copy (kind int8).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slimtext.data import read_examples, split_path
from slimtext.manifest import MANIFEST_FILE, Accuracy, Manifest, ParamCounts, is_valid_name
from slimtext.runtime import OnnxClassifier
from slimtext.tokenizer import Tokenizer
from training.export import check_lowrank_initializers, export_onnx, quantize_int8, scratch_dir, write_artifact
from training.model import LowRankEmbedding
from training.runs import load_run_model
from training.train import accuracy, encode


def export_run(run_dir: str | Path, out_dir: str | Path, name: str, int8: bool = False) -> Manifest:
    if not is_valid_name(name):
        raise ValueError(f"model name {name!r} must match [a-z0-9][a-z0-9._-]*")
    run_dir = Path(run_dir)
    model, results, train_cfg = load_run_model(run_dir)
    tok = Tokenizer.load(run_dir / "vocab.json")
    tmp = scratch_dir()
    export_onnx(model, tmp / "fp32.onnx")
    emb = model.embedding
    v, d = len(tok), emb.dim
    rank = emb.b.shape[0] if isinstance(emb, LowRankEmbedding) else None
    if rank is not None:
        check_lowrank_initializers(tmp / "fp32.onnx", v, d, rank)
    src, kind = tmp / "fp32.onnx", "lowrank" if rank is not None else "full"
    if int8:
        quantize_int8(src, tmp / "int8.onnx")
        src, kind = tmp / "int8.onnx", "int8"
    emb_params = sum(p.numel() for p in emb.parameters())
    folder = Path(out_dir) / name
    data = train_cfg.data
    write_artifact(
        folder, src, tok, name=name, kind=kind, rank=rank, architecture=train_cfg.model,
        dataset=data.folder().name, labels=results["labels"], embedding_dim=d,
        params=ParamCounts(embedding=emb_params, embedding_full=v * d,
                           total=sum(p.numel() for p in model.parameters())),
        embedding_compression=1 - emb_params / (v * d), accuracy=Accuracy(),
        training={"run": str(run_dir), "results": results, "data_folder": str(data.folder()),
                  "text_col": data.text_col, "label_col": data.label_col},
    )
    served = OnnxClassifier(folder)  # loaded exactly as the service loads it, then scored
    splits = {s: read_examples(split_path(data.folder(), s), data.text_col, data.label_col) for s in ("dev", "test")}
    manifest = served.manifest.model_copy(update={"accuracy": Accuracy(
        dev=served.accuracy(splits["dev"].texts, splits["dev"].labels),
        test=served.accuracy(splits["test"].texts, splits["test"].labels))})
    manifest.save(folder)
    return manifest


def evaluate_target(target: str | Path, split: str = "test", file: str | Path | None = None,
                    text_col: str = "text", label_col: str = "label") -> dict[str, Any]:
    """Accuracy of an exported folder (onnxruntime) or a run folder (PyTorch) on a split or a file."""
    target = Path(target)
    if (target / MANIFEST_FILE).exists():
        served = OnnxClassifier(target)
        training = served.manifest.training
        path = Path(file) if file else split_path(Path(training["data_folder"]), split)
        cols = (text_col, label_col) if file else (training["text_col"], training["label_col"])
        ex = read_examples(path, *cols)
        return {"target": str(target), "file": str(path), "n": len(ex), "engine": "onnxruntime",
                "accuracy": served.accuracy(ex.texts, ex.labels)}
    model, results, train_cfg = load_run_model(target)
    data = train_cfg.data
    path = Path(file) if file else split_path(data.folder(), split)
    ex = read_examples(path, *((text_col, label_col) if file else (data.text_col, data.label_col)))
    tok = Tokenizer.load(target / "vocab.json")
    encoded = encode(tok, ex.texts, ex.labels, {lab: i for i, lab in enumerate(results["labels"])})
    return {"target": str(target), "file": str(path), "n": len(ex), "engine": "pytorch",
            "accuracy": accuracy(model, encoded)}
