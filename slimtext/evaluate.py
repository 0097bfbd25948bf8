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
                    text_col: str | None = None, label_col: str | None = None) -> dict[str, Any]:
    """Score an exported model folder on a labelled .tsv/.csv/.jsonl file, or on a split of the dataset it
    was trained on (the folder recorded in its manifest). Columns default to the training data's."""
    folder = Path(folder)
    if not (folder / MANIFEST_FILE).is_file():
        raise FileNotFoundError(f"{folder}: not an exported model folder (no {MANIFEST_FILE})")
    clf = TextClassifier(folder)
    data_folder, recorded_text, recorded_label = _recorded_data(clf)
    if file is None:
        if data_folder is None:
            raise ValueError(f"{folder / MANIFEST_FILE} does not name its training data; pass --file")
        path = split_path(data_folder, split)
    else:
        path = Path(file)
    text_col, label_col = text_col or recorded_text, label_col or recorded_label
    ex = read_examples(path, text_col, label_col)
    labels = clf.labels
    predicted = [labels[i] for i in clf.predict_proba(ex.texts).argmax(1).tolist()]
    return {"target": str(folder), "file": str(path), "engine": "onnxruntime", **scores(ex.labels, predicted, labels)}


def _recorded_data(clf: TextClassifier) -> tuple[Path | None, str, str]:
    """The dataset folder the model was trained on and its columns, from the manifest: `training.data`
    (a DataConfig dump: `data`, or `dataset` under `data_root`), or the older `training.data_folder` /
    `training.config.dataset`. The folder is None when the manifest names none."""
    training = clf.manifest.training
    source = training.get("data") or (training if "data_folder" in training else training.get("config") or {})
    cols = source.get("text_col", "text"), source.get("label_col", "label")
    folder = source.get("data") or source.get("data_folder")
    if folder:
        return Path(folder), *cols
    if source.get("dataset"):
        return datasets_root(source.get("data_root")) / source["dataset"], *cols
    return None, *cols


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
