"""The model repository: every model folder under the models dir, its versions, and which are loaded.

One module per job: `scan` finds the model folders and versions, `names` resolves a request's model name (aliases,
the default model), `loading` loads and measures one version folder, `budget` keeps the loaded ones within the
memory budget, `index` reports them (the index, /metrics figures, messages for clients). `ModelRegistry` composes
them and holds the state, configured by one `RegistryConfig`.

Loading is blocking work: it runs in one loader thread, never on the event loop. The registry's own state is
touched on the event loop only, so a swap is one dict assignment: requests in flight keep the object they took
and finish on it. With a memory budget (SLIMTEXT_MEMORY_BUDGET_MB) models load on first use (pinned ones and the
default at start-up); concurrent first requests share one load. What a request can get wrong is raised as a
domain error (service/domain.py), which each transport renders; a reload that fails raises ModelLoadError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from service.domain import Conflict, ModelUnavailable
from service.registry import budget, index, names, scan
from service.registry.budget import Budget
from service.registry.config import RegistryConfig
from service.registry.loading import Loader, _trim_heap
from service.registry.scan import (
    EVICTED,
    FLAT_VERSION,
    LOADING,
    NOT_LOADED,
    READY,
    UNAVAILABLE,
    UNLOADED,
    VERSION_PATTERN,
    Entry,
    LoadedModel,
    Slot,
)
from slimtext.runtime import ModelLoadError

__all__ = ["EVICTED", "FLAT_VERSION", "LOADING", "NOT_LOADED", "READY", "UNAVAILABLE", "UNLOADED", "VERSION_PATTERN",
           "Budget", "Entry", "LoadedModel", "Loader", "ModelRegistry", "RegistryConfig", "Slot", "_trim_heap"]
log = logging.getLogger("slimtext.registry")


class ModelRegistry:
    FIGURES = index.FIGURES  # what figures() reports, for /metrics: name -> (type, help)

    def __init__(self, config: RegistryConfig):
        self.config = config
        self.models_dir, self.strict, self.pinned = config.models_dir, config.strict, set(config.pinned)
        self.configured_default = config.default
        self.default: str | None = None
        self.default_reason = ""
        self.entries: dict[str, Entry] = {}
        self.errors: dict[str, str] = {}  # folder (or name/version) -> why it is not served
        self.aliases: dict[str, str] = {}
        self.models: dict[str, LoadedModel] = {}  # name -> its loaded highest version (what a plain request gets)
        self.on_loaded: Callable[[LoadedModel], object] | None = None  # e.g. the metrics' per-model gauges
        self.loads = self.load_failures = 0
        self.loader = Loader(config.intra_op_threads, config.limits, config.cpu_arena)
        self.budget = Budget(config.budget_bytes)

    @property
    def budget_bytes(self) -> int | None:
        return self.budget.limit

    @property
    def evictions(self) -> int:
        return self.budget.evictions

    # --- start-up -------------------------------------------------------------------------------
    @classmethod
    def load(cls, config: RegistryConfig, on_loaded: Callable[[LoadedModel], object] | None = None) -> ModelRegistry:
        """Scan `config.models_dir` and load what start-up loads (blocking; call it from a thread in a server):
        every model's highest version, or with a memory budget only the pinned ones and the default. Each
        folder is read as untrusted input (slimtext.safefs); a bad one is logged with its file and reason
        and skipped, unless `config.strict`. `on_loaded` is called with each model loaded at start-up, and
        then with every model loaded later."""
        reg = cls(config)
        reg.scan()
        reg.aliases = names.read_aliases(config.models_dir, config.limits, reg.entries, reg._bad)
        reg._warm_up()
        eager = config.budget_bytes is None
        default = names.configured_default(config.default, reg.aliases)
        for entry in [e for e in reg.entries.values() if eager or e.name in reg.pinned or e.name == default]:
            if entry.latest is not None:
                reg._load_now(entry.latest)
        if not reg.models and eager:
            raise ModelLoadError(f"{config.models_dir}: no servable model folder "
                                 f"(errors: {reg.errors or 'none found'})")
        reg.default, reg.default_reason = names.choose_default(config.default, reg.aliases, reg.entries,
                                                               reg.models, budgeted=not eager)
        if reg.default is not None:
            reg.entries[reg.default].pinned = True
        reg._enforce_budget()
        reg.strict = False  # strict is about start-up; a bad folder met later is reported, not fatal
        if on_loaded is not None:
            for m in reg.models.values():
                on_loaded(m)
            reg.on_loaded = on_loaded
        return reg

    def scan(self) -> None:
        """Register every model folder and version (blocking: directory listings). Folders already known keep
        their state; a folder that disappeared is kept while loaded (it keeps serving) and dropped otherwise."""
        scan.merge(self.entries, scan.find(self.models_dir, self._bad), self.pinned, keep=self.default)

    def _bad(self, key: str, error: Exception) -> None:
        self.errors[key] = str(error)
        log.error("model %s not served: %s", key, error)
        if self.strict:
            raise error if isinstance(error, ModelLoadError) else ModelLoadError(str(error))

    def _warm_up(self) -> None:
        self.loader.warm_up(scan.slots(self.entries))

    def _load_now(self, slot: Slot) -> LoadedModel | None:
        """Blocking load at start-up (no event loop yet)."""
        try:
            loaded = self.loader.build(slot)
        except ModelLoadError as e:
            self._failed(slot, e)
            return None
        self._install(slot, loaded)
        return loaded

    # --- state changes (event loop, or start-up) ---------------------------------------------------
    def _install(self, slot: Slot, loaded: LoadedModel) -> None:
        slot.loaded, slot.state, slot.reason = loaded, READY, ""
        self.budget.charge(slot, loaded.rss_growth_bytes)
        slot.loads += 1
        self.loads += 1
        self.budget.touch(slot)
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

    def used_bytes(self) -> int:
        return budget.used_bytes(self.entries)

    def _enforce_budget(self, keep: Slot | None = None, extra: int = 0) -> None:
        if self.budget.enforce(self.entries, self.default, self._drop, keep, extra):
            self.loader.trim_later()

    # --- lookups ----------------------------------------------------------------------------------
    def resolve(self, name: str | None) -> str:
        return names.resolve(name, self.default, self.entries, self.aliases)

    def get(self, name: str | None, version: str | None = None) -> LoadedModel | None:
        """The loaded model (and version) a request names, or None when it is not loaded (no waiting)."""
        name = self.default if name is None else names.lookup(name, self.entries, self.aliases)
        entry = self.entries.get(name) if name is not None else None
        if entry is None:
            return None
        slot = entry.latest if version is None else entry.versions.get(version)
        if slot is None or slot.loaded is None:
            return None
        self.budget.touch(slot)
        return slot.loaded

    def slot(self, name: str | None, version: str | None = None) -> Slot:
        """The version folder a request names; UnknownModel naming the model or version when there is none."""
        return names.find_slot(self.entries, self.resolve(name), version)

    async def acquire(self, name: str | None, version: str | None = None) -> LoadedModel:
        """The loaded model a request names, loading it first (once, however many requests wait for it)."""
        slot = self.slot(name, version)
        if slot.loaded is not None:
            self.budget.touch(slot)
            return slot.loaded
        if self.entries[slot.name].unloaded:
            raise ModelUnavailable(f"model {slot.name!r} is unloaded; "
                                   f"POST /v2/repository/models/{slot.name}/load serves it again")
        if slot.loading is None:
            slot.loading = asyncio.ensure_future(self._load_async(slot, swap=False))
        try:
            loaded = await asyncio.shield(slot.loading)
        except ModelLoadError:  # a reload from the repository API that failed
            loaded = None
        if loaded is None:
            raise ModelUnavailable(f"model {slot.name!r} version {slot.version} cannot be loaded: {slot.reason}")
        self.budget.touch(slot)
        return loaded

    async def _load_async(self, slot: Slot, swap: bool) -> LoadedModel | None:
        """Load `slot` in the loader thread and install it (the old object keeps serving whoever holds it)."""
        try:
            self._enforce_budget(extra=self.budget.estimate(slot))
            if slot.loaded is None:
                slot.state, slot.reason = LOADING, "loading"
            await self.loader.run(self._warm_up)
            try:
                loaded = await self.loader.run(self.loader.build, slot)
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
        before = {s.key for s in scan.slots(self.entries)}
        await self.loader.run(self.scan)
        after = {s.key for s in scan.slots(self.entries)}
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
            raise Conflict(f"model {slot.name!r} is the default model; it cannot be unloaded", code="default_model")
        entry = self.entries[slot.name]
        for s in entry.versions.values():
            self._drop(s, UNLOADED)
        entry.unloaded = True
        log.info("unloaded %s", slot.name)
        self.loader.trim_later()

    def index(self, ready_only: bool = False) -> list[dict]:
        return index.index(self.entries, self.default, ready_only)

    def figures(self) -> dict[str, float]:
        return index.figures(self.entries, self.budget_bytes, self.loads, self.evictions, self.load_failures)

    def public_message(self, message: str) -> str:
        return index.public_message(self.models_dir, message)

    def public_errors(self) -> dict[str, str]:
        """`errors` for clients: the folder's name and the reason, without absolute paths."""
        return index.public_errors(self.models_dir, self.errors)

    def close(self) -> None:
        self.loader.close()
