"""CPU work off the event loop: one worker thread (by default) behind a bounded queue.

The event loop hands a job (parse, tokenize, run onnxruntime, render) to the worker and awaits it; when
`queue_max` jobs are already waiting or running, the request is shed at once with 503 + Retry-After.
A job whose client has disconnected while it waited is skipped (counted), not computed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected: there is nobody to answer."""


class QueueFull(Exception):
    """The worker's queue is full: shed the request."""


class Offloader:
    def __init__(self, queue_max: int, threads: int = 1, switch_interval_s: float = 0.0001):
        # Every socket call on the event loop releases the GIL and must win it back from a worker thread busy
        # in Python code (tokenizer, JSON): at CPython's default 5 ms switch interval, each of those
        # hand-backs can cost up to 5 ms, and hundreds of connections add up to seconds (the "convoy effect").
        # SLIMTEXT_GIL_SWITCH_INTERVAL_US (service/config.py) says how it was chosen.
        sys.setswitchinterval(switch_interval_s)
        self.queue_max = queue_max
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="slimtext-cpu")
        self.pending = 0  # jobs queued or running; touched on the event loop only
        self.skipped = 0  # jobs skipped because their client had gone
        self.rejected = 0  # jobs refused because the queue was full

    async def run(self, job: Callable[[], T], gone: threading.Event | None = None) -> T:
        if self.pending >= self.queue_max:
            self.rejected += 1
            raise QueueFull
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, _guarded, job, gone)
        except ClientGone:
            self.skipped += 1
            raise
        finally:
            self.pending -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _guarded(job: Callable[[], T], gone: threading.Event | None) -> T:
    if gone is not None and gone.is_set():
        raise ClientGone
    return job()


async def watch_disconnect(receive, gone: threading.Event) -> None:
    """Once the body is read, the next ASGI message is http.disconnect: set `gone` when it comes."""
    message = await receive()
    if message["type"] == "http.disconnect":
        gone.set()


class Watch:
    """Started on demand (only requests that go to the worker need it): `start()` -> the `gone` event."""

    def __init__(self, receive):
        self.receive, self.task, self.gone = receive, None, None

    def start(self) -> threading.Event:
        if self.task is not None:  # a request may go to the worker twice (parse, then compute): one watcher
            return self.gone
        self.gone = gone = threading.Event()
        self.task = asyncio.ensure_future(watch_disconnect(self.receive, gone))
        return gone

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
