"""bench/fasttext_anchor.py on a tiny dataset made here: real fastText (PyPI fasttext-numpy2), small buckets."""

from __future__ import annotations

import csv
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from bench.fasttext_anchor import CSV_COLUMNS, csv_rows, label_token, run_cell, tokenizer, write_csv, write_dataset

pytest.importorskip("fasttext", reason="pip install 'slimtext[fasttext]'")  # the dev extra installs it


def _dataset(root):
    rng = np.random.default_rng(0)
    folder = root / "tiny"
    folder.mkdir(parents=True)
    words = [f"w{i}" for i in range(400)]  # enough distinct rows for product quantization (256 centroids)
    for split, n in (("train", 300), ("dev", 60), ("test", 60)):
        lines = ["label\ttext"]
        for i in range(n):
            label = ["very good", "bad"][i % 2]
            cue = "Great" if i % 2 == 0 else "Awful"
            lines.append(f"{label}\t{cue} , it {'does' if i % 3 else 'is'}n't " + " ".join(rng.choice(words, 6)))
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def test_texts_get_slimtexts_tokens_and_labels_one_token(tmp_path):
    paths = write_dataset(_dataset(tmp_path), tmp_path / "work")
    first = paths["train"].read_text().splitlines()[0]
    assert first.startswith("__label__very_good great , it is n't ")  # lower-cased, PTB contraction, comma split
    assert label_token("very good") == "__label__very_good"
    assert tokenizer().tokenize("Doesn't") == ["does", "n't"]


def _quiet(_message: str) -> None:
    pass


def test_run_cell_chooses_on_dev_and_quantizes(tmp_path):
    paths = write_dataset(_dataset(tmp_path), tmp_path / "work")
    fixed = {"wordNgrams": 2, "epoch": 25, "loss": "softmax", "minCount": 1, "bucket": 100_000, "thread": 1}
    for attempt in range(3):  # fasttext-numpy2 0.10.4 now and then stops with "Encountered NaN." (see train())
        try:  # each attempt in a fresh process, as the bench runs each cell: a NaN can poison the process's library
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                cell = pool.submit(run_cell, paths, 10, [0, 1], lrs=(0.05, 0.2),
                                   quant_grid=((True, 300), (False, 1_000)), fixed=fixed, log=_quiet).result(300)
            break
        except RuntimeError as e:
            if "NaN" not in str(e) or attempt == 2:
                raise
    assert cell["lr"] in (0.05, 0.2) and (cell["qnorm"], cell["cutoff"]) in ((True, 300), (False, 1_000))
    assert set(cell["dev_by_lr"]) == {"0.05", "0.2"}
    for r in cell["seeds"]:
        assert r["test_acc"] > 0.9  # the cue word decides the label
        assert r["ftz_bytes"] < r["bytes"] / 4  # .bin holds (words + 100,000 buckets) x 10 floats
    rows = csv_rows("tiny", cell)
    assert len(rows) == 4 and {r["quantized"] for r in rows} == {0, 1}
    write_csv(rows, tmp_path / "ft.csv")
    with open(tmp_path / "ft.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == CSV_COLUMNS
        assert [r["model"] for r in reader] == ["fasttext"] * 4
