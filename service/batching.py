"""Dynamic micro-batching: concurrent requests for one model coalesced into one onnxruntime run.

A request adds its already-tokenized rows and waits; the batch runs when it holds `max_texts`
texts or `max_wait` has passed since its first request, whichever is first. Results are split back
by row ranges. Runs inline on the event loop: the model's work per batch is tens of microseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np


def pad_concat(parts: list[np.ndarray]) -> np.ndarray:
    width = max(p.shape[1] for p in parts)
    out = np.zeros((sum(p.shape[0] for p in parts), width), dtype=np.int64)
    row = 0
    for p in parts:
        out[row: row + p.shape[0], : p.shape[1]] = p
        row += p.shape[0]
    return out


class MicroBatcher:
    def __init__(self, run: Callable[[np.ndarray, np.ndarray], np.ndarray], max_texts: int, max_wait_s: float,
                 on_batch: Callable[[int], None] | None = None):
        if max_texts < 1 or max_wait_s < 0:
            raise ValueError("max_texts must be >= 1 and max_wait_s >= 0")
        self._run, self.max_texts, self.max_wait_s = run, max_texts, max_wait_s
        self._on_batch = on_batch
        self._pending: list[tuple[np.ndarray, np.ndarray, asyncio.Future]] = []
        self._pending_texts = 0
        self._timer: asyncio.TimerHandle | None = None

    async def submit(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((ids, lengths, future))
        self._pending_texts += len(lengths)
        if self._pending_texts >= self.max_texts:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait_s, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending, self._pending_texts = self._pending, [], 0
        if not batch:
            return
        try:
            probs = self._run(pad_concat([b[0] for b in batch]), np.concatenate([b[1] for b in batch]))
        except Exception as e:  # every waiter gets the error, none hangs
            for *_, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        if self._on_batch is not None:
            self._on_batch(len(probs))
        row = 0
        for ids, _, fut in batch:
            if not fut.done():  # a cancelled waiter (client gone) is skipped
                fut.set_result(probs[row: row + len(ids)])
            row += len(ids)
