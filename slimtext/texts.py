"""Unlabelled texts for `slimtext predict`: one per line (.txt or stdin), or one column of a
.csv / .tsv (header row) or .jsonl file."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import TextIO

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")


def lines(stream: TextIO) -> Iterator[str]:
    """Every line without its line break: an empty line is a text too, so outputs stay aligned with inputs."""
    for line in stream:
        yield line.rstrip("\r\n")


def read_texts(path: str | Path, text_col: str = "text") -> Iterator[str]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:  # .txt or anything else: one text per line
        with open(path, encoding="utf-8") as f:
            yield from lines(f)
        return
    with open(path, encoding="utf-8", newline="") as f:
        if suffix == ".jsonl":
            rows: Iterable[dict] = (_json_row(path, i, line) for i, line in enumerate(f, 1) if line.strip())
        else:
            quoting = csv.QUOTE_NONE if suffix == ".tsv" else csv.QUOTE_MINIMAL  # as slimtext.data reads TSVs
            reader = csv.DictReader(f, dialect="excel-tab" if suffix == ".tsv" else "excel", quoting=quoting)
            if reader.fieldnames is None or text_col not in reader.fieldnames:
                raise ValueError(f"{path}: no column {text_col!r}; found {reader.fieldnames or []} (use --text-col)")
            rows = reader
        for i, row in enumerate(rows, 1):
            if text_col not in row or row[text_col] is None:
                raise ValueError(f"{path}: row {i} has no {text_col!r} (use --text-col)")
            yield str(row[text_col])


def _json_row(path: Path, i: int, line: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: line {i} is not JSON: {e.msg}") from e
    if not isinstance(row, dict):
        raise ValueError(f"{path}: line {i} is not a JSON object")
    return row


def batches(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(texts)
    while batch := list(islice(it, size)):
        yield batch
