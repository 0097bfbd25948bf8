"""Loading and measuring one version folder.

Loading is blocking work (file reads, hashing, onnxruntime): it runs in one loader thread, never on the event
loop. Each folder is read as untrusted input (slimtext.safefs): a bad file is a ModelLoadError naming it. What a
model costs is measured as the process's RSS growth across its load, with glibc's free heap handed back before
and after, so that the load's transient peak (reading, parsing) is not counted. A warm-up load of the smallest
model first keeps onnxruntime's one-time start-up memory from being charged to whichever model loads first.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from service.memory import rss_bytes
from service.registry.scan import LoadedModel, Slot
from slimtext.manifest import MANIFEST_FILE
from slimtext.runtime import ModelLoadError, OnnxClassifier, TextGraphClassifier, open_classifier
from slimtext.safefs import FileLimits

T = TypeVar("T")


class Loader:
    """Opens version folders with one set of onnxruntime options, in its own single thread."""

    def __init__(self, intra_op_threads: int, limits: FileLimits, cpu_arena: bool):
        self.intra_op_threads, self.limits, self.cpu_arena = intra_op_threads, limits, cpu_arena
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slimtext-loader")
        self._warmed = False

    def _open(self, folder: Path) -> OnnxClassifier | TextGraphClassifier:
        return open_classifier(folder, intra_op_threads=self.intra_op_threads, limits=self.limits,
                               cpu_arena=self.cpu_arena)

    def warm_up(self, slots: Iterable[Slot]) -> None:
        """Load and drop the smallest model once (the first call only), so that onnxruntime's one-time start-up
        memory is not charged to whichever model happens to load first."""
        if self._warmed:
            return
        self._warmed = True
        candidates = [s for s in slots if 0 < s.onnx_bytes <= self.limits.model_bytes]
        for slot in sorted(candidates, key=lambda s: s.onnx_bytes)[:3]:  # the smallest one that loads
            with contextlib.suppress(ModelLoadError):  # reported properly when the folder is loaded for real
                self._open(slot.folder)
                return

    def build(self, slot: Slot) -> LoadedModel:
        """Read, check and load one version folder (blocking), measuring the RSS it adds."""
        if slot.folder.is_symlink():
            raise ModelLoadError(f"{slot.folder}: the folder is a symlink; not followed")
        _trim_heap()  # hand freed heap back first, and again after: the growth is what the model keeps, not the
        before = rss_bytes()  # load's transient peak (reading, parsing) that glibc would otherwise keep mapped
        classifier = self._open(slot.folder)
        if classifier.manifest.name != slot.name:
            where = "folder" if slot.folder.name == slot.name else "model folder"
            raise ModelLoadError(f"{slot.folder / MANIFEST_FILE}: name {classifier.manifest.name!r} "
                                 f"differs from its {where} {slot.name!r}")
        _trim_heap()
        return LoadedModel(classifier, max(0, rss_bytes() - before), slot.version)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in the loader thread (from the event loop)."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def trim_later(self) -> None:
        """Hand freed pages back to the OS in the loader thread (glibc keeps them otherwise)."""
        self._thread.submit(_trim_heap)

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)


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
