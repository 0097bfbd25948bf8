"""The model repository: every model folder under the models dir, its versions, and which are loaded.

Layout: `models/<name>/<version>/` (version: digits) holding manifest.json, model.onnx and vocab.json; a flat
`models/<name>/` holding those files is version "1" (what `make run` writes). A request names a model (or an
alias of `aliases.json`) and optionally a version; no version means the highest one. The default model is
explicit: SLIMTEXT_DEFAULT_MODEL, else `aliases.json`'s "default", else the only servable model; never picked
by name order.

Loading is blocking work (file reads, hashing, onnxruntime): it runs in one loader thread, never on the event
loop. The registry's own state is touched on the event loop only, so a swap is one dict assignment: requests
in flight keep the object they took and finish on it. With a memory budget (SLIMTEXT_MEMORY_BUDGET_MB) models
load on first use (pinned ones and the default at start-up) and the least recently used unpinned model is
evicted when the budget would be exceeded; concurrent first requests share one load.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import re
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from service.errors import ApiError
from service.memory import rss_bytes
from slimtext.manifest import ALIASES_FILE, MANIFEST_FILE, MODEL_FILE, is_valid_name
from slimtext.runtime import ModelLoadError, OnnxClassifier, TextGraphClassifier, open_classifier
from slimtext.safefs import DEFAULT_LIMITS, FileLimits, FileRejected, lstat_size, read_capped

log = logging.getLogger("slimtext.registry")
_ABS_PATH = re.compile(r"(?<![\w.-])/[^\s'\"(),:]+")  # an absolute path, not "folder/file"
VERSION_PATTERN = r"^[0-9]{1,9}$"
_VERSION = re.compile(VERSION_PATTERN)
FLAT_VERSION = "1"  # a flat folder models/<name>/ is version 1

READY, UNAVAILABLE, LOADING = "READY", "UNAVAILABLE", "LOADING"
NOT_LOADED, EVICTED, UNLOADED = "not loaded", "evicted (memory budget)", "unloaded"


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


class ModelRegistry:
    def __init__(self, models_dir: Path, default: str | None = None, intra_op_threads: int = 1,
                 strict: bool = False, limits: FileLimits = DEFAULT_LIMITS, budget_bytes: int | None = None,
                 pinned: tuple[str, ...] = (), cpu_arena: bool = True):
        self.cpu_arena = cpu_arena
        self.models_dir, self.intra_op_threads, self.strict, self.limits = models_dir, intra_op_threads, strict, limits
        self.budget_bytes, self.pinned = budget_bytes, set(pinned)
        self.configured_default = default
        self.default: str | None = None
        self.default_reason = ""
        self.entries: dict[str, Entry] = {}
        self.errors: dict[str, str] = {}  # folder (or name/version) -> why it is not served
        self.aliases: dict[str, str] = {}
        self.models: dict[str, LoadedModel] = {}  # name -> its loaded highest version (what a plain request gets)
        self.on_loaded = None  # callback(LoadedModel), e.g. the metrics' per-model gauges
        self.loads = self.evictions = self.load_failures = 0
        self._clock = 0
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slimtext-loader")
        self._warmed = False

    # --- start-up -------------------------------------------------------------------------------
    @classmethod
    def load(cls, models_dir: Path, default: str | None = None, intra_op_threads: int = 1,
             strict: bool = False, limits: FileLimits = DEFAULT_LIMITS, budget_bytes: int | None = None,
             pinned: tuple[str, ...] = (), cpu_arena: bool = True) -> ModelRegistry:
        """Scan `models_dir` and load what start-up loads (blocking; call it from a thread in a server):
        every model's highest version, or with a memory budget only the pinned ones and the default. Each
        folder is read as untrusted input (slimtext.safefs); a bad one is logged with its file and reason
        and skipped, unless `strict`."""
        reg = cls(models_dir, default, intra_op_threads, strict, limits, budget_bytes, pinned, cpu_arena)
        reg.scan()
        reg.aliases = reg._read_aliases()
        reg._warm_up()
        eager = budget_bytes is None
        wanted = [e for e in reg.entries.values() if eager or e.name in reg.pinned
                  or e.name == reg._configured_default_name()]
        for entry in wanted:
            slot = entry.latest
            if slot is not None:
                reg._load_now(slot)
        if not reg.models and eager:
            raise ModelLoadError(f"{models_dir}: no servable model folder (errors: {reg.errors or 'none found'})")
        reg._choose_default()
        if reg.default is not None:
            reg.entries[reg.default].pinned = True
        reg._enforce_budget()
        reg.strict = False  # strict is about start-up; a bad folder met later is reported, not fatal
        return reg

    def _configured_default_name(self) -> str | None:
        name = self.configured_default or self.aliases.get("default")
        return self.aliases.get(name, name) if name else None

    def _choose_default(self) -> None:
        if self.configured_default:
            name, why = self.configured_default, "SLIMTEXT_DEFAULT_MODEL"
        elif "default" in self.aliases:
            name, why = self.aliases["default"], f"{ALIASES_FILE} in the models folder"
        elif len(self.models) == 1 and self.budget_bytes is None:
            name, why = next(iter(self.models)), "the only servable model"
        else:
            self.default, self.default_reason = None, "none configured (SLIMTEXT_DEFAULT_MODEL or aliases.json)"
            log.warning("no default model: %s; requests must name a model", self.default_reason)
            return
        name = name if name in self.entries else self.aliases.get(name, name)
        if name not in self.models:
            raise ModelLoadError(f"default model {name!r} ({why}) is not among the loaded models {sorted(self.models)}")
        self.default, self.default_reason = name, why
        log.info("default model: %s (chosen by %s)", name, why)

    def _read_aliases(self) -> dict[str, str]:
        """`aliases.json`: {"alias": "model name", ...}; "default" names the default model."""
        try:
            raw = read_capped(self.models_dir, ALIASES_FILE, self.limits.manifest_bytes,
                              "max_manifest_bytes (SLIMTEXT_MAX_MANIFEST_BYTES)")
        except FileNotFoundError:
            return {}
        except (FileRejected, OSError) as e:
            self._bad(ALIASES_FILE, ModelLoadError(f"{self.models_dir / ALIASES_FILE}: {e}"))
            return {}
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            data, err = None, str(e)
        else:
            err = "expected an object of alias -> model name"
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) and is_valid_name(k)
                                                 and is_valid_name(v) for k, v in data.items()):
            self._bad(ALIASES_FILE, ModelLoadError(f"{self.models_dir / ALIASES_FILE}: {err}"))
            return {}
        clash = sorted(k for k in data if k in self.entries and k != "default")
        if clash:
            log.warning("%s: aliases %s are also model names; the models win", ALIASES_FILE, clash)
        return {k: v for k, v in data.items() if k not in clash}

    # --- scanning the folder --------------------------------------------------------------------
    def scan(self) -> None:
        """Register every model folder and version (blocking: directory listings). Folders already known keep
        their state; a folder that disappeared is kept while loaded (it keeps serving) and dropped otherwise."""
        seen: dict[str, dict[str, Path]] = {}
        for p in _children(self.models_dir):
            mode = _lmode(p)
            if mode is None:
                continue
            if stat.S_ISLNK(mode):
                if p.is_dir():
                    self._bad(p.name, ModelLoadError(f"{p}: the folder is a symlink; not followed"))
                continue
            if not stat.S_ISDIR(mode):
                continue
            if _holds_model(p):
                if not is_valid_name(p.name):
                    self._bad(p.name, ModelLoadError(f"{p}: folder name is not a valid model name"))
                    continue
                seen[p.name] = {FLAT_VERSION: p}
                continue
            versions = {}
            for v in _children(p):
                vmode = _lmode(v)
                if vmode is None or not _VERSION.match(v.name):
                    continue
                if stat.S_ISLNK(vmode):
                    self._bad(f"{p.name}/{v.name}", ModelLoadError(f"{v}: the folder is a symlink; not followed"))
                elif stat.S_ISDIR(vmode) and _holds_model(v):
                    versions[str(int(v.name))] = v
            if versions:
                if not is_valid_name(p.name):
                    self._bad(p.name, ModelLoadError(f"{p}: folder name is not a valid model name"))
                    continue
                seen[p.name] = versions
        for name, versions in seen.items():
            entry = self.entries.setdefault(name, Entry(name, pinned=name in self.pinned))
            for version, folder in versions.items():
                slot = entry.versions.get(version)
                if slot is None or slot.folder != folder:
                    if slot is not None and slot.loaded is not None:
                        continue  # the same version moved between flat and versioned: keep serving the loaded one
                    size = lstat_size(folder / MODEL_FILE) or 0
                    entry.versions[version] = Slot(name, version, folder, onnx_bytes=size)
            for version in [v for v in entry.versions if v not in versions and entry.versions[v].loaded is None]:
                del entry.versions[version]
        gone = [n for n, e in self.entries.items() if n not in seen and not any(s.loaded for s in e.versions.values())]
        for name in gone:
            if name != self.default:
                del self.entries[name]

    def _bad(self, key: str, error: Exception) -> None:
        self.errors[key] = str(error)
        log.error("model %s not served: %s", key, error)
        if self.strict:
            raise error if isinstance(error, ModelLoadError) else ModelLoadError(str(error))

    # --- loading (blocking part: the loader thread) ----------------------------------------------
    def _warm_up(self) -> None:
        """Load and drop the smallest model once, so that onnxruntime's one-time start-up memory is not
        charged to whichever model happens to load first."""
        if self._warmed:
            return
        self._warmed = True
        slots = [s for e in self.entries.values() for s in e.versions.values()
                 if 0 < s.onnx_bytes <= self.limits.model_bytes]
        for slot in sorted(slots, key=lambda s: s.onnx_bytes)[:3]:  # the smallest one that loads
            with contextlib.suppress(ModelLoadError):  # reported properly when the folder is loaded for real
                open_classifier(slot.folder, intra_op_threads=self.intra_op_threads, limits=self.limits,
                                cpu_arena=self.cpu_arena)
                return

    def _build(self, slot: Slot) -> LoadedModel:
        """Read, check and load one version folder (blocking)."""
        if slot.folder.is_symlink():
            raise ModelLoadError(f"{slot.folder}: the folder is a symlink; not followed")
        _trim_heap()  # hand freed heap back first, and again after: the growth is what the model keeps, not the
        before = rss_bytes()  # load's transient peak (reading, parsing) that glibc would otherwise keep mapped
        classifier = open_classifier(slot.folder, intra_op_threads=self.intra_op_threads, limits=self.limits,
                                     cpu_arena=self.cpu_arena)
        if classifier.manifest.name != slot.name:
            where = "folder" if slot.folder.name == slot.name else "model folder"
            raise ModelLoadError(f"{slot.folder / MANIFEST_FILE}: name {classifier.manifest.name!r} "
                                 f"differs from its {where} {slot.name!r}")
        _trim_heap()
        return LoadedModel(classifier, max(0, rss_bytes() - before), slot.version)

    def _load_now(self, slot: Slot) -> LoadedModel | None:
        """Blocking load at start-up (no event loop yet)."""
        try:
            loaded = self._build(slot)
        except ModelLoadError as e:
            self._failed(slot, e)
            return None
        self._install(slot, loaded)
        return loaded

    # --- state changes (event loop, or start-up) ---------------------------------------------------
    def _install(self, slot: Slot, loaded: LoadedModel) -> None:
        slot.loaded, slot.state, slot.reason = loaded, READY, ""
        # charged against the budget: the RSS growth measured at this load (like Triton's memory_usage), at least
        # the ONNX bytes (a reload into memory freed by an eviction may show no growth at all)
        slot.memory_bytes = max(loaded.rss_growth_bytes, slot.onnx_bytes)
        slot.loads += 1
        self.loads += 1
        self._touch(slot)
        self.errors.pop(slot.key, None)
        entry = self.entries[slot.name]
        entry.unloaded = False
        if entry.latest is slot:
            self.models[slot.name] = loaded
        man = loaded.classifier.manifest
        log.info("loaded %s version %s (%s, %d bytes ONNX, RSS +%d bytes, sha256 %s)", slot.name, slot.version,
                 man.kind, man.onnx_bytes, loaded.rss_growth_bytes, man.sha256[:12])
        if self.on_loaded is not None:
            self.on_loaded(loaded)

    def _failed(self, slot: Slot, error: ModelLoadError) -> None:
        self.load_failures += 1
        if slot.loaded is None:
            slot.state, slot.reason = UNAVAILABLE, self.public_message(str(error))
        self._bad(slot.key, error)

    def _drop(self, slot: Slot, reason: str) -> None:
        slot.loaded, slot.state, slot.reason = None, UNAVAILABLE, reason
        if self.models.get(slot.name) is not None and self.models[slot.name].version == slot.version:
            del self.models[slot.name]

    def _touch(self, slot: Slot) -> None:
        self._clock += 1
        slot.last_used = self._clock

    def used_bytes(self) -> int:
        return sum(s.memory_bytes for e in self.entries.values() for s in e.versions.values() if s.loaded)

    def _enforce_budget(self, keep: Slot | None = None, extra: int = 0) -> None:
        """Evict least recently used unpinned versions until the loaded ones (plus `extra`) fit the budget."""
        if self.budget_bytes is None:
            return
        evicted = 0
        while self.used_bytes() + extra > self.budget_bytes:
            candidates = [s for e in self.entries.values() if not e.pinned and e.name != self.default
                          for s in e.versions.values() if s.loaded is not None and s is not keep]
            if not candidates:
                break
            victim = min(candidates, key=lambda s: s.last_used)
            self._drop(victim, EVICTED)
            self.evictions += 1
            evicted += 1
        if evicted:
            self._loader.submit(_trim_heap)  # hand freed pages back to the OS (glibc keeps them otherwise)

    # --- lookups ----------------------------------------------------------------------------------
    def resolve(self, name: str | None) -> str:
        if name is None:
            if self.default is None:
                raise ApiError(400, "no_default_model", "no default model is configured (SLIMTEXT_DEFAULT_MODEL or "
                                                        "aliases.json); name a model")
            return self.default
        return name if name in self.entries else self.aliases.get(name, name)

    def get(self, name: str | None, version: str | None = None) -> LoadedModel | None:
        """The loaded model (and version) a request names, or None when it is not loaded (no waiting)."""
        name = self.default if name is None else name if name in self.entries else self.aliases.get(name, name)
        entry = self.entries.get(name) if name is not None else None
        if entry is None:
            return None
        slot = entry.latest if version is None else entry.versions.get(version)
        if slot is None or slot.loaded is None:
            return None
        self._clock += 1
        slot.last_used = self._clock
        return slot.loaded

    def slot(self, name: str | None, version: str | None = None) -> Slot:
        """The version folder a request names; 404 naming the model or version when there is none."""
        name = self.resolve(name)
        entry = self.entries.get(name)
        if entry is None or not entry.versions:
            raise ApiError(404, "unknown_model", f"no model named {name!r}; see GET /models")
        if version is None:
            return entry.latest
        slot = entry.versions.get(str(int(version)) if version.isdigit() else version)
        if slot is None:
            raise ApiError(404, "unknown_version", f"model {name!r} has no version {version!r} "
                                                   f"(versions: {', '.join(sorted(entry.versions, key=int))})")
        return slot

    async def acquire(self, name: str | None, version: str | None = None) -> LoadedModel:
        """The loaded model a request names, loading it first (once, however many requests wait for it)."""
        slot = self.slot(name, version)
        if slot.loaded is not None:
            self._touch(slot)
            return slot.loaded
        if self.entries[slot.name].unloaded:
            raise ApiError(503, "model_unavailable", f"model {slot.name!r} is unloaded; "
                                                     f"POST /v2/repository/models/{slot.name}/load serves it again")
        if slot.loading is None:
            slot.loading = asyncio.ensure_future(self._load_async(slot, swap=False))
        try:
            loaded = await asyncio.shield(slot.loading)
        except ModelLoadError:  # a reload from the repository API that failed
            loaded = None
        if loaded is None:
            raise ApiError(503, "model_unavailable", f"model {slot.name!r} version {slot.version} cannot be loaded: "
                                                     f"{slot.reason}")
        self._touch(slot)
        return loaded

    async def _load_async(self, slot: Slot, swap: bool) -> LoadedModel | None:
        """Load `slot` in the loader thread and install it (the old object keeps serving whoever holds it)."""
        try:
            estimate = slot.memory_bytes or slot.onnx_bytes * 3 // 2
            self._enforce_budget(extra=estimate)
            if slot.loaded is None:
                slot.state, slot.reason = LOADING, "loading"
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._loader, self._warm_up)
            try:
                loaded = await loop.run_in_executor(self._loader, self._build, slot)
            except ModelLoadError as e:
                self._failed(slot, e)
                if swap:
                    raise
                return None
            self._install(slot, loaded)
            self._enforce_budget(keep=slot)
            return loaded
        finally:
            slot.loading = None

    # --- the repository API --------------------------------------------------------------------
    async def rescan(self, why: str = "") -> None:
        """Scan the folder again (in the loader thread): new folders and versions become known (and load on first
        use), removed ones that are not loaded disappear. Loaded models keep serving until loaded again."""
        before = {s.key for e in self.entries.values() for s in e.versions.values()}
        await asyncio.get_running_loop().run_in_executor(self._loader, self.scan)
        after = {s.key for e in self.entries.values() for s in e.versions.values()}
        if why or before != after:
            log.info("rescanned %s%s: %d model versions, new: %s, gone: %s", self.models_dir.name,
                     f" ({why})" if why else "", len(after), sorted(after - before)[:20], sorted(before - after)[:20])

    async def load_model(self, name: str) -> LoadedModel:
        """(Re)load a model's highest version from disk and swap it in atomically. A folder that fails to
        load leaves what is loaded serving and raises ModelLoadError."""
        await self.rescan()
        slot = self.slot(name)
        while slot.loading is not None:  # a lazy load in progress: let it finish, then load afresh
            with contextlib.suppress(Exception):
                await asyncio.shield(slot.loading)
        slot.loading = asyncio.ensure_future(self._load_async(slot, swap=True))
        loaded = await asyncio.shield(slot.loading)
        entry = self.entries[slot.name]
        for other in entry.versions.values():  # older versions reload from disk when asked for
            if other is not slot and other.loaded is not None:
                self._drop(other, NOT_LOADED)
        return loaded

    def unload_model(self, name: str) -> None:
        slot = self.slot(name)
        if slot.name == self.default:
            raise ApiError(409, "default_model", f"model {slot.name!r} is the default model; it cannot be unloaded")
        entry = self.entries[slot.name]
        for s in entry.versions.values():
            self._drop(s, UNLOADED)
        entry.unloaded = True
        log.info("unloaded %s", slot.name)
        self._loader.submit(_trim_heap)

    def index(self, ready_only: bool = False) -> list[dict]:
        out = []
        for entry in sorted(self.entries.values(), key=lambda e: e.name):
            for version in sorted(entry.versions, key=int):
                s = entry.versions[version]
                if ready_only and s.loaded is None:
                    continue
                out.append({"name": s.name, "version": s.version, "state": s.state, "reason": s.reason,
                            "sha256": s.loaded.sha256 if s.loaded else None,
                            "memory_bytes": s.memory_bytes if s.loaded else 0, "onnx_bytes": s.onnx_bytes,
                            "pinned": entry.pinned or entry.name == self.default, "default": entry.name == self.default,
                            "loads": s.loads})
        return out

    def figures(self) -> dict[str, float]:
        loaded = [s for e in self.entries.values() for s in e.versions.values() if s.loaded]
        return {"models_registered": sum(len(e.versions) for e in self.entries.values()),
                "models_loaded": len(loaded), "models_memory_bytes": sum(s.memory_bytes for s in loaded),
                "memory_budget_bytes": self.budget_bytes or 0, "model_loads": self.loads,
                "model_evictions": self.evictions, "model_load_failures": self.load_failures}

    FIGURES = {"models_registered": ("gauge", "Model versions in the repository"),
               "models_loaded": ("gauge", "Model versions loaded"),
               "models_memory_bytes": ("gauge", "Memory charged to loaded models (RSS growth measured at load)"),
               "memory_budget_bytes": ("gauge", "SLIMTEXT_MEMORY_BUDGET_MB in bytes (0: none)"),
               "model_loads": ("counter", "Model loads (start-up, first use, reloads)"),
               "model_evictions": ("counter", "Models evicted to stay within the memory budget"),
               "model_load_failures": ("counter", "Model loads that failed")}

    def public_message(self, message: str) -> str:
        if self.models_dir is not None:  # "<models_dir>/sst2-dan-int8/model.onnx" -> "sst2-dan-int8/model.onnx"
            message = message.replace(f"{self.models_dir}/", "")
        return _ABS_PATH.sub("<path>", message)[:300]

    def public_errors(self) -> dict[str, str]:
        """`errors` for clients: the folder's name and the reason, without absolute paths."""
        return {name: self.public_message(message) for name, message in self.errors.items()}

    def close(self) -> None:
        self._loader.shutdown(wait=False, cancel_futures=True)


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


def _trim_heap() -> None:
    """glibc's malloc_trim: return free heap pages to the OS (no-op where there is no glibc)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


_LIBC = _libc()
