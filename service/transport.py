"""The connection's transport as the hardened protocol (service/protocol.py) sees it: one send per reply, and a
close that lingers while a request is still arriving.

- One send per reply: uvicorn writes a reply's head and its body with two `transport.write` calls, so two
  send() syscalls and two TCP segments; on loopback each send also runs the receiver's TCP work, and the pair
  was the largest single cost of a /classify request in a py-spy profile (docs/bench-serve.md). The head is
  held until the body's write (or, if none comes in this loop turn, the next turn) and both go out in one send.
  Bodies over `COALESCE_MAX` are written after the head, as before (no large copy).
- Lingering close: a reply sent before the request was fully read (431, or admission control's 503 before the
  body) would be followed by close() with unread bytes in the socket, and the kernel then answers with a reset
  that can destroy the reply before the client reads it. Instead the write side is shut down after the reply and
  the rest of the request is read and discarded for up to `LINGER_S` seconds / `LINGER_BYTES` bytes (as nginx's
  lingering_close), then the socket is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class Connection(Protocol):
    """What the transport reads from its connection's protocol (service/protocol.py's HardenedHttpToolsProtocol)."""

    loop: asyncio.AbstractEventLoop
    cycle: Any  # the request/response cycle in flight, or None

    def request_unread(self) -> bool: ...

LINGER_S, LINGER_BYTES = 2.0, 4 * 1_048_576


COALESCE_MAX = 64 * 1024
_HEAD, _CONTINUE = b"HTTP/1.1 ", b"HTTP/1.1 100"


class ServerTransport:
    """The connection's transport: a reply's head and body in one send, and close() that lingers while a request
    is still arriving. Everything else is the wrapped transport's."""

    def __init__(self, transport, protocol: Connection):
        self._transport, self._protocol = transport, protocol
        self.lingering, self.discarded = False, 0
        self._head: bytes | None = None  # a reply's head, held for its body

    def write(self, data) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            if len(data) <= COALESCE_MAX:
                self._transport.write(head + bytes(data))
                return
            self._transport.write(head)
        elif data[:9] == _HEAD and data[:12] != _CONTINUE:
            self._head = bytes(data)
            self._protocol.loop.call_soon(self.flush)  # a reply with no body (or a late one) is not held longer
            return
        self._transport.write(data)

    def flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def __getattr__(self, name):
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def close(self) -> None:
        if self.is_closing():
            return
        self.flush()
        if not self._protocol.request_unread() or not self._transport.can_write_eof():
            self._transport.close()
            return
        self.lingering = True
        cycle = self._protocol.cycle
        if cycle is not None:  # body bytes uvicorn buffered before the reply (up to a 256 KiB read): drop them
            cycle.body = bytearray()
        self._transport.write_eof()  # after the reply is flushed: FIN, the client reads the reply
        self._transport.resume_reading()
        self._protocol.loop.call_later(LINGER_S, self._transport.close)

    def abort_lingering(self) -> None:
        self.flush()
        self._transport.close()

    def discard(self, data: bytes) -> None:
        self.discarded += len(data)
        if self.discarded > LINGER_BYTES:
            self._transport.close()


