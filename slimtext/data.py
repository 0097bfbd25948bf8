"""Labelled text datasets: TSV / CSV / JSONL readers and the dataset-root setting.

A dataset is a folder with train/dev/test files; each example has a string label and a text.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

DATASETS_ENV = "SLIMTEXT_DATASETS"
_SPLITS = ("train", "dev", "test")
_SUFFIXES = (".tsv", ".csv", ".jsonl")


@dataclass(frozen=True)
class Examples:
    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def read_examples(path: str | Path, text_col: str = "text", label_col: str = "label") -> Examples:
    """Read a .tsv/.csv (header row) or .jsonl (one object a line) file of labelled texts.

    TSV and CSV follow the csv module's excel / excel-tab dialects, which is what Python's csv writer
    and pandas write: a field that starts with `"` is quoted (`""` inside stands for one `"`), and a
    `"` anywhere else is an ordinary character (as in SST-style files)."""
    path = Path(path)
    if path.suffix not in _SUFFIXES:
        raise ValueError(f"{path}: unsupported file type (use one of {', '.join(_SUFFIXES)})")
    try:
        rows = _read_rows(path)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from e
    except csv.Error as e:
        raise ValueError(f"{path}: unreadable {path.suffix[1:].upper()}: {e}") from e
    if not rows:
        raise ValueError(f"{path}: no examples")
    missing = {text_col, label_col} - set(rows[0])
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; found {sorted(rows[0])}")
    texts, labels = [], []
    for i, row in enumerate(rows):
        text, label = row.get(text_col), row.get(label_col)
        if text is None or label is None or str(label).strip() == "":
            raise ValueError(f"{path}: example {i + 1} has no text or no label")
        texts.append(str(text))
        labels.append(str(label).strip())
    return Examples(texts, labels)


def _read_rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(iter_rows(path, f))


def iter_rows(path: Path, f: TextIO) -> Iterator[dict]:
    """The rows of an open .jsonl / .tsv / .csv file (a header row for the last two; csv-module quoting, so
    fields a csv writer or pandas quoted read back as their text, and a bare `"` inside a field stays)."""
    if path.suffix.lower() == ".jsonl":
        return (json_row(path, i, line) for i, line in enumerate(f, 1) if line.strip())
    return csv.DictReader(f, dialect="excel-tab" if path.suffix.lower() == ".tsv" else "excel")


def json_row(path: Path, i: int, line: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: line {i} is not JSON ({e.msg})") from e
    if not isinstance(row, dict):
        raise ValueError(f"{path}: line {i} is not a JSON object")
    return row


def datasets_root(explicit: str | Path | None = None) -> Path:
    """The folder holding `<name>/{train,dev,test}.<ext>`: the argument, else $SLIMTEXT_DATASETS,
    else `../shared/datasets` next to the project, else a clear error."""
    candidates = [explicit, os.environ.get(DATASETS_ENV)]
    for c in candidates:
        if c:
            root = Path(c).expanduser()
            if not root.is_dir():
                raise FileNotFoundError(f"dataset root {root} does not exist")
            return root
    default = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
    if default.is_dir():
        return default
    raise FileNotFoundError(
        f"no dataset root: pass --data-root, set ${DATASETS_ENV}, or put datasets under {default} "
        "as <name>/train.tsv, dev.tsv, test.tsv (header row: label<TAB>text)"
    )


def split_path(dataset_dir: Path, split: str) -> Path:
    for suffix in _SUFFIXES:
        p = dataset_dir / f"{split}{suffix}"
        if p.exists():
            return p
    raise FileNotFoundError(f"{dataset_dir}: no {split} file ({'/'.join(split + s for s in _SUFFIXES)})")


def load_splits(dataset_dir: str | Path, text_col: str = "text", label_col: str = "label") -> dict[str, Examples]:
    dataset_dir = Path(dataset_dir)
    return {s: read_examples(split_path(dataset_dir, s), text_col, label_col) for s in _SPLITS}
