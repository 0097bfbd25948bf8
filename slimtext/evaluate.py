"""Evaluate an exported model folder on labelled texts with onnxruntime only (no torch, no onnx):
accuracy, per-class precision / recall / F1 and the confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from slimtext.api import TextClassifier
from slimtext.data import datasets_root, read_examples, split_path
from slimtext.manifest import MANIFEST_FILE


def scores(gold: list[str], predicted: list[str], labels: list[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, macro F1 and the confusion matrix
    (`confusion[i][j]`: texts of gold label `labels[i]` predicted as `labels[j]`)."""
    unknown = sorted(set(gold) - set(labels))
    if unknown:
        raise ValueError(f"gold label(s) {unknown[:10]} are not among the model's labels {labels}")
    index = {lab: i for i, lab in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(matrix, ([index[g] for g in gold], [index[p] for p in predicted]), 1)
    tp, per_class = np.diag(matrix), {}
    for i, lab in enumerate(labels):
        pred_n, gold_n = int(matrix[:, i].sum()), int(matrix[i].sum())
        p = tp[i] / pred_n if pred_n else 0.0
        r = tp[i] / gold_n if gold_n else 0.0
        per_class[lab] = {"precision": float(p), "recall": float(r),
                          "f1": float(2 * p * r / (p + r)) if p + r else 0.0, "support": gold_n}
    n = int(matrix.sum())
    return {"n": n, "accuracy": float(tp.sum() / n) if n else 0.0,
            "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])) if per_class else 0.0,
            "per_class": per_class, "confusion": {"labels": labels, "matrix": matrix.tolist()}}


def evaluate_folder(folder: str | Path, file: str | Path | None = None, split: str = "test",
                    text_col: str = "text", label_col: str = "label") -> dict[str, Any]:
    """Score an exported model folder on a labelled .tsv/.csv/.jsonl file, or on a split of the dataset it
    was trained on (the folder recorded in its manifest)."""
    folder = Path(folder)
    if not (folder / MANIFEST_FILE).is_file():
        raise FileNotFoundError(f"{folder}: not an exported model folder (no {MANIFEST_FILE})")
    clf = TextClassifier(folder)
    if file is None:
        path, text_col, label_col = _recorded_split(clf, split)
    else:
        path = Path(file)
    ex = read_examples(path, text_col, label_col)
    labels = clf.labels
    predicted = [labels[i] for i in clf.predict_proba(ex.texts).argmax(1).tolist()]
    return {"target": str(folder), "file": str(path), "engine": "onnxruntime", **scores(ex.labels, predicted, labels)}


def _recorded_split(clf: TextClassifier, split: str) -> tuple[Path, str, str]:
    """The split file of the dataset the model was trained on, from its manifest: `training.data_folder`
    (exported runs) or `training.config.dataset` under the dataset root (`python -m training run`)."""
    training = clf.manifest.training
    source = training if "data_folder" in training else training.get("config", {})
    if "data_folder" in source:
        folder = Path(source["data_folder"])
    elif "dataset" in source:
        folder = datasets_root(source.get("data_root")) / source["dataset"]
    else:
        raise ValueError(f"{clf.manifest.name}: the manifest records no dataset; pass --file")
    return split_path(folder, split), source.get("text_col", "text"), source.get("label_col", "label")


def format_report(result: dict[str, Any]) -> str:
    """The result as text tables: per-class scores, then the confusion matrix (rows gold, columns predicted)."""
    labels = result["confusion"]["labels"]
    w = max(9, *(len(lab) for lab in labels))
    lines = [f"{result['target']} on {result['file']}: n={result['n']}, accuracy {result['accuracy']:.4f}, "
             f"macro F1 {result['macro_f1']:.4f}", "",
             f"{'label':<{w}}  precision  recall      f1  support"]
    for lab, c in result["per_class"].items():
        lines.append(f"{lab:<{w}}  {c['precision']:>9.4f}  {c['recall']:>6.4f}  {c['f1']:>6.4f}  {c['support']:>7}")
    lines += ["", "confusion matrix (rows: gold, columns: predicted)",
              " " * w + "".join(f"  {lab:>{w}}" for lab in labels)]
    for lab, row in zip(labels, result["confusion"]["matrix"], strict=True):
        lines.append(f"{lab:<{w}}" + "".join(f"  {n:>{w}}" for n in row))
    return "\n".join(lines)
