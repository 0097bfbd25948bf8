"""Scanning the models folder: which models and versions there are (blocking: directory listings).

Layout: `models/<name>/<version>/` (version: digits) holding manifest.json, model.onnx and vocab.json; a flat
`models/<name>/` holding those files is version "1" (what `make run` writes). The folder is untrusted input: a
symlinked folder is reported and not followed, a folder whose name is not a valid model name is reported and
skipped, and the files themselves are checked when a version loads (service/registry/loading.py).
"""

from __future__ import annotations

import asyncio
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimtext.manifest import MANIFEST_FILE, MODEL_FILE, is_valid_name
from slimtext.runtime import ModelLoadError, OnnxClassifier, TextGraphClassifier
from slimtext.safefs import lstat_size

VERSION_PATTERN = r"^[0-9]{1,9}$"
_VERSION = re.compile(VERSION_PATTERN)
FLAT_VERSION = "1"  # a flat folder models/<name>/ is version 1

READY, UNAVAILABLE, LOADING = "READY", "UNAVAILABLE", "LOADING"
NOT_LOADED, EVICTED, UNLOADED = "not loaded", "evicted (memory budget)", "unloaded"

Report = Callable[[str, Exception], None]  # (folder or name/version, why it is not served)


@dataclass(eq=False)
class LoadedModel:
    classifier: OnnxClassifier | TextGraphClassifier  # the latter: a string-only folder (model.text.onnx)
    rss_growth_bytes: int  # process RSS after loading minus before
    version: str = FLAT_VERSION
    batcher: Any = None  # a MicroBatcher, made by the Classifier on first use when batching is on

    @property
    def name(self) -> str:
        return self.classifier.manifest.name

    @property
    def sha256(self) -> str:
        return self.classifier.manifest.sha256


@dataclass(eq=False)
class Slot:
    """One version folder of a model."""

    name: str
    version: str
    folder: Path
    loaded: LoadedModel | None = None
    state: str = UNAVAILABLE
    reason: str = NOT_LOADED
    memory_bytes: int = 0  # charged against the budget: the RSS growth measured at its last load, >= ONNX bytes
    onnx_bytes: int = 0
    last_used: int = 0
    loads: int = 0
    loading: asyncio.Future | None = None

    @property
    def key(self) -> str:
        return self.name if self.version == FLAT_VERSION and not self.folder.name.isdigit() \
            else f"{self.name}/{self.version}"


@dataclass(eq=False)
class Entry:
    """One model name and its versions."""

    name: str
    versions: dict[str, Slot] = field(default_factory=dict)
    pinned: bool = False
    unloaded: bool = False  # POST .../unload: not served until loaded again

    @property
    def latest(self) -> Slot | None:
        return self.versions[max(self.versions, key=int)] if self.versions else None


def find(models_dir: Path, bad: Report) -> dict[str, dict[str, Path]]:
    """name -> version -> folder of every model folder under `models_dir`; a bad one goes to `bad`."""
    seen: dict[str, dict[str, Path]] = {}
    for p in _children(models_dir):
        mode = _lmode(p)
        if mode is None:
            continue
        if stat.S_ISLNK(mode):
            if p.is_dir():
                bad(p.name, ModelLoadError(f"{p}: the folder is a symlink; not followed"))
            continue
        if not stat.S_ISDIR(mode):
            continue
        if _holds_model(p):
            if not is_valid_name(p.name):
                bad(p.name, ModelLoadError(f"{p}: folder name is not a valid model name"))
                continue
            seen[p.name] = {FLAT_VERSION: p}
            continue
        versions = {}
        for v in _children(p):
            vmode = _lmode(v)
            if vmode is None or not _VERSION.match(v.name):
                continue
            if stat.S_ISLNK(vmode):
                bad(f"{p.name}/{v.name}", ModelLoadError(f"{v}: the folder is a symlink; not followed"))
            elif stat.S_ISDIR(vmode) and _holds_model(v):
                versions[str(int(v.name))] = v
        if versions:
            if not is_valid_name(p.name):
                bad(p.name, ModelLoadError(f"{p}: folder name is not a valid model name"))
                continue
            seen[p.name] = versions
    return seen


def merge(entries: dict[str, Entry], seen: dict[str, dict[str, Path]], pinned: set[str], keep: str | None) -> None:
    """Bring `entries` up to date with the folders `find` saw. Folders already known keep their state; a folder
    that disappeared is kept while loaded (it keeps serving) and dropped otherwise, as is a model (except `keep`,
    the default)."""
    for name, versions in seen.items():
        entry = entries.setdefault(name, Entry(name, pinned=name in pinned))
        for version, folder in versions.items():
            slot = entry.versions.get(version)
            if slot is None or slot.folder != folder:
                if slot is not None and slot.loaded is not None:
                    continue  # the same version moved between flat and versioned: keep serving the loaded one
                size = lstat_size(folder / MODEL_FILE) or 0
                entry.versions[version] = Slot(name, version, folder, onnx_bytes=size)
        for version in [v for v in entry.versions if v not in versions and entry.versions[v].loaded is None]:
            del entry.versions[version]
    gone = [n for n, e in entries.items() if n not in seen and not any(s.loaded for s in e.versions.values())]
    for name in gone:
        if name != keep:
            del entries[name]


def slots(entries: dict[str, Entry]) -> list[Slot]:
    """Every version of every model."""
    return [s for e in entries.values() for s in e.versions.values()]


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _lmode(path: Path) -> int | None:
    try:
        return path.lstat().st_mode
    except OSError:
        return None


def _holds_model(folder: Path) -> bool:
    """A manifest or model file (as an entry of any type: a symlinked or special file is reported when
    loading, not silently ignored)."""
    return any(_lmode(folder / n) is not None for n in (MANIFEST_FILE, MODEL_FILE))
