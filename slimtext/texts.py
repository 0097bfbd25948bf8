"""Unlabelled texts for `slimtext predict`: one per line (.txt or stdin), or one column of a
.csv / .tsv (header row) or .jsonl file."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import TextIO

from slimtext.data import iter_rows

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
        rows = iter_rows(path, f)  # read as slimtext.data reads training data
        if isinstance(rows, csv.DictReader) and (rows.fieldnames is None or text_col not in rows.fieldnames):
            raise ValueError(f"{path}: no column {text_col!r}; found {rows.fieldnames or []} (use --text-col)")
        for i, row in enumerate(rows, 1):
            if text_col not in row or row[text_col] is None:
                raise ValueError(f"{path}: row {i} has no {text_col!r} (use --text-col)")
            yield str(row[text_col])


def batches(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(texts)
    while batch := list(islice(it, size)):
        yield batch
