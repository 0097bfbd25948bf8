"""service/transport.py: a reply's head and body leave in one send; nothing is held past a loop turn, a close,
an EOF or an abort; 100 Continue and large bodies are not held or copied."""

from __future__ import annotations

import asyncio

import pytest

from service.transport import COALESCE_MAX, ServerTransport

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class Fake:
    def __init__(self):
        self.writes: list[bytes] = []
        self.events: list[str] = []

    def write(self, data):
        self.writes.append(bytes(data))

    def close(self):
        self.events.append("close")

    def write_eof(self):
        self.events.append("eof")

    def is_closing(self):
        return "close" in self.events

    def can_write_eof(self):
        return True


class Protocol:
    def __init__(self, loop):
        self.loop, self.cycle = loop, None

    def request_unread(self):
        return False


@pytest.fixture
def pair():
    loop = asyncio.new_event_loop()
    fake = Fake()
    yield loop, fake, ServerTransport(fake, Protocol(loop))
    loop.close()


def turn(loop):
    loop.run_until_complete(asyncio.sleep(0))


def test_head_and_body_leave_in_one_write(pair):
    loop, fake, t = pair
    t.write(HEAD)
    assert fake.writes == []
    t.write(b"{}")
    assert fake.writes == [HEAD + b"{}"]
    turn(loop)  # the scheduled flush finds nothing left
    assert fake.writes == [HEAD + b"{}"]


def test_a_head_without_a_body_goes_out_on_the_next_loop_turn(pair):
    loop, fake, t = pair
    t.write(HEAD)
    turn(loop)
    assert fake.writes == [HEAD]


@pytest.mark.parametrize("end", ["close", "write_eof", "abort_lingering"])
def test_close_eof_and_abort_flush_the_head_first(pair, end):
    _, fake, t = pair
    t.write(HEAD)
    getattr(t, end)()
    assert fake.writes == [HEAD] and fake.events


def test_continue_and_large_bodies_are_not_held_or_copied(pair):
    _, fake, t = pair
    t.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert fake.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    big = b"x" * (COALESCE_MAX + 1)
    t.write(HEAD)
    t.write(big)
    assert fake.writes[1:] == [HEAD, big]
    t.write(b"chunk")  # body bytes are never held
    assert fake.writes[-1] == b"chunk"
