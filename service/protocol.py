"""uvicorn's httptools protocol with the limits it lacks (`python -m service` selects it with `--http`).

- Request head (request line + headers) capped at `header_max_bytes`: over it, 431 and close. Counted
  on the raw bytes as they arrive, so a 100 MB header costs at most one read beyond the cap (httptools
  itself would buffer the whole header, growing a bytes object chunk by chunk on the event loop).
- Chunked framing is bounded too: trailer fields (after the last chunk) count against the head cap and are
  dropped, never appended to the request's headers; the wire bytes after the head that are not body bytes
  (chunk sizes, chunk extensions, trailers) may exceed the body by at most the head cap plus 64 bytes a
  chunk (past it: 431), and a chunked body may not pass `body_max_bytes` plus that (past it: 413); once a
  reply has started, the connection is closed instead. Checked after every read, so a 300 MB trailer line
  costs one read beyond the cap, whatever route it is sent to and before any key check. (A Content-Length
  body cannot outgrow its declared length, which admission control checks before a byte is read.)
- Deadlines: the head must arrive within `header_timeout_s` of the connection opening or of the
  request's first byte (408 and close), the body within `body_timeout_s` of the head (close). Idle
  keep-alive connections are closed by uvicorn's `--timeout-keep-alive`.
- Drain on shutdown (SIGTERM): uvicorn closes idle keep-alive connections at once, dropping a request
  the client already sent but the loop has not read yet. Here an idle connection stays open for
  `drain_idle_s` more: a request that arrives is served with `Connection: close`; responses in flight
  also end with `Connection: close`. Nothing is accepted any more (uvicorn closed the listening socket).
- Lingering close and one send per reply: the connection's transport is service/transport.py's.
"""

from __future__ import annotations

from asyncio import TimerHandle
from dataclasses import dataclass

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.transport import ServerTransport


@dataclass
class Limits:
    header_max_bytes: int = 32 * 1024
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    drain_idle_s: float = 1.0
    body_max_bytes: int = 1_048_576  # the largest body any route takes (the /classify cap)


CHUNK_FRAMING_BYTES = 64  # allowed per chunk for its size line and CRLFs (extensions beyond eat the head cap)


LIMITS_STATE = "slimtext.protocol_limits"  # the app's lifespan state holds its Limits under this key


def _reply(status: bytes, message: bytes) -> bytes:
    body = b'{"error":"' + message + b'","message":"' + message.replace(b"_", b" ") + b'","details":null}'
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)


REPLY_431 = _reply(b"431 Request Header Fields Too Large", b"request_header_too_large")
REPLY_400 = _reply(b"400 Bad Request", b"invalid_http_request")
REPLY_408 = _reply(b"408 Request Timeout", b"request_timeout")
REPLY_413 = _reply(b"413 Content Too Large", b"body_too_large")


class HardenedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn hands every connection the lifespan's state (service.main.create_app puts the Limits there);
        # without a lifespan (or before it ran) the defaults hold
        self.limits = self.app_state.get(LIMITS_STATE) or Limits()
        self._in_head = True  # the bytes arriving now belong to a request head
        self._head_bytes = 0
        self._deadline: TimerHandle | None = None
        self._draining = False
        self._chunked = False  # this request's body is chunked
        self._head_fields = 0  # header fields of its head (more are trailers)
        self._body_wire = 0  # wire bytes of this request after its head
        self._body_seen = 0  # of which body bytes (on_body)
        self._chunks = 0
        self._trailer_bytes = 0

    # --- deadlines -------------------------------------------------------------------------
    def _arm(self, seconds: float, on_timeout) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, on_timeout)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timeout(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.write(REPLY_408)
            self.transport.abort_lingering()  # a slow client gets no more time

    def _body_timeout(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():  # the app sees http.disconnect
            self.transport.abort_lingering()

    # --- protocol events -------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        super().connection_made(ServerTransport(transport, self))
        self._arm(self.limits.header_timeout_s, self._head_timeout)

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def request_unread(self) -> bool:
        """Part of a request is still on its way (a head being sent, or a body not read to its end)."""
        if self._in_head:
            return self._head_bytes > 0
        return self.cycle is not None and self.cycle.more_body

    def data_received(self, data: bytes) -> None:  # uvicorn's, plus the head count
        if self.transport.lingering:
            self.transport.discard(data)
            return
        if self.parser is None or self.transport.is_closing():
            return
        if self._in_head:
            self._head_bytes += len(data)
        else:
            self._body_wire += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if not self.transport.is_closing():  # else: 431 already sent from a callback
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head and self._head_bytes > self.limits.header_max_bytes and not self.transport.is_closing():
            self._reject_head()
        elif self._chunked and not self._in_head:  # checked after the parser took this read (256 KiB at most)
            self._drop_trailers()
            self._check_framing()

    def _drop_trailers(self) -> None:
        """uvicorn appends trailer fields to the request's headers (the ASGI scope's list): count and drop them."""
        extra = self.headers[self._head_fields:]
        if extra:
            self._trailer_bytes += sum(len(k) + len(v) + 4 for k, v in extra)
            del self.headers[self._head_fields:]

    def _check_framing(self) -> None:
        """A chunked request's wire bytes after the head are past what its body and framing may take: refuse it."""
        overhead = self._body_wire - self._body_seen
        allowed = self.limits.header_max_bytes + CHUNK_FRAMING_BYTES * self._chunks
        if overhead > allowed or self._trailer_bytes > self.limits.header_max_bytes:
            self._refuse_framing(REPLY_431)
        elif self._body_wire > self.limits.body_max_bytes + allowed:
            self._refuse_framing(REPLY_413)

    def _refuse_framing(self, reply: bytes) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.abort_lingering()  # a reply is on its way: no second status line, just close
        else:
            if self.cycle is not None:  # the app sees http.disconnect, and its reply (if one comes) is dropped
                self.cycle.disconnected = True
                self.cycle.message_event.set()
            self.transport.write(reply)
            self.transport.close()

    def on_chunk_header(self) -> None:  # httptools calls it when the protocol has it
        self._chunks += 1

    def on_body(self, body: bytes) -> None:
        self._body_seen += len(body)
        super().on_body(body)

    def send_400_response(self, msg: str) -> None:  # uvicorn's is text/plain: JSON like every other error
        self._disarm()
        self.transport.write(REPLY_400)
        self.transport.close()

    def _reject_head(self) -> None:
        self._disarm()
        self.transport.write(REPLY_431)
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._arm(self.limits.header_timeout_s, self._head_timeout)

    def on_headers_complete(self) -> None:
        url_and_headers = len(self.url) + sum(len(k) + len(v) + 4 for k, v in self.headers)
        if url_and_headers > self.limits.header_max_bytes:  # arrived in one read: too big all the same
            self._reject_head()
            raise _HeadTooLarge
        self._in_head = False
        self._head_bytes = 0
        self._body_wire = self._body_seen = self._chunks = self._trailer_bytes = 0
        self._chunked = any(k == b"transfer-encoding" for k, _ in self.headers)  # names lower-cased by uvicorn
        self._head_fields = len(self.headers)
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.more_body:
            self._arm(self.limits.body_timeout_s, self._body_timeout)
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False

    def on_message_complete(self) -> None:
        if self._chunked:  # the trailers arrived with the end of the message, in this read
            self._drop_trailers()
            self._check_framing()
        self._disarm()
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._draining and not self.transport.is_closing():
            self.transport.close()

    # --- graceful shutdown -----------------------------------------------------------------
    def shutdown(self) -> None:
        self._draining = True
        if self.cycle is None or self.cycle.response_complete:
            # idle: a request the client already sent may still be unread in the socket buffer
            self.loop.call_later(self.limits.drain_idle_s, self._close_if_idle)
        else:
            self.cycle.keep_alive = False

    def _close_if_idle(self) -> None:
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            if self._in_head and self._head_bytes:  # a request is arriving: its head deadline still applies
                self.loop.call_later(self.limits.drain_idle_s, self._close_if_idle)
                return
            self.transport.close()


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop httptools; the 431 is already written."""
