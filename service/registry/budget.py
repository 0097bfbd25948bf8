"""The memory budget (SLIMTEXT_MEMORY_BUDGET_MB) and least-recently-used eviction.

With a budget, models load on first use (pinned ones and the default at start-up) and the least recently used
unpinned model is evicted when the budget would be exceeded. A loaded version is charged the RSS growth measured
at its load (like Triton's memory_usage), at least its ONNX bytes: a reload into memory freed by an eviction may
show no growth at all. Without a budget nothing is evicted.
"""

from __future__ import annotations

from collections.abc import Callable

from service.registry.scan import EVICTED, Entry, Slot, slots


def used_bytes(entries: dict[str, Entry]) -> int:
    """Memory charged to the loaded versions."""
    return sum(s.memory_bytes for s in slots(entries) if s.loaded)


class Budget:
    def __init__(self, limit: int | None):
        self.limit = limit  # bytes; None: no budget
        self.evictions = 0
        self._clock = 0

    def touch(self, slot: Slot) -> None:
        """`slot` was just used: it is the last to be evicted."""
        self._clock += 1
        slot.last_used = self._clock

    @staticmethod
    def charge(slot: Slot, rss_growth_bytes: int) -> None:
        """`slot` has just loaded, growing RSS by `rss_growth_bytes`: what it is charged from now on."""
        slot.memory_bytes = max(rss_growth_bytes, slot.onnx_bytes)

    @staticmethod
    def estimate(slot: Slot) -> int:
        """What loading `slot` will add: its last measured charge, else 1.5 times its ONNX bytes."""
        return slot.memory_bytes or slot.onnx_bytes * 3 // 2

    def enforce(self, entries: dict[str, Entry], default: str | None, evict: Callable[[Slot, str], None],
                keep: Slot | None = None, extra: int = 0) -> int:
        """Evict (`evict(slot, EVICTED)`) least recently used versions of unpinned models other than the default
        and `keep` until the loaded ones (plus `extra`) fit the budget; how many were evicted."""
        if self.limit is None:
            return 0
        evicted = 0
        while used_bytes(entries) + extra > self.limit:
            candidates = [s for e in entries.values() if not e.pinned and e.name != default
                          for s in e.versions.values() if s.loaded is not None and s is not keep]
            if not candidates:
                break
            evict(min(candidates, key=lambda s: s.last_used), EVICTED)
            evicted += 1
        self.evictions += evicted
        return evicted
