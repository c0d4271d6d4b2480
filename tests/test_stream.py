"""The shared stream supervisor's loop (`sources/stream.py`), with fake connections: no socket, no timed sleep.

A fake connection's reader is a future the test resolves (a loss with a close code); the overlap is 0 s, so
retiring the old connection only yields to the loop once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from genesys_sentiment_exporter.oauth import Token, TokenManager
from genesys_sentiment_exporter.sources import supervisor as sup
from genesys_sentiment_exporter.sources.dedup import Deduplicator
from genesys_sentiment_exporter.sources.stream import Stream, Streams
from genesys_sentiment_exporter.stream_state import StreamState


class FakeSocket:
    def __init__(self) -> None:
        self.reader: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.reason = ""
        self.ws = None

    @property
    def open(self) -> bool:
        return not self.reason and not self.reader.done()

    async def close(self, reason: str, code: int = 1000) -> None:
        self.reason = reason
        if not self.reader.done():
            self.reader.set_result(reason)

    def drop(self, code: str) -> None:
        self.reader.set_result(code)


@dataclass(eq=False)
class Conn:
    number: int
    token: Token
    fake: FakeSocket = field(default_factory=FakeSocket)

    @property
    def socket(self) -> sup.Socket:
        return cast(sup.Socket, self.fake)


class Tokens:
    def __init__(self) -> None:
        self.token = Token("t1", 3600.0, 0.0, 3600.0)
        self.changed = asyncio.Event()

    async def current(self) -> Token:
        return self.token

    async def wait_newer(self, token: Token) -> Token:
        while self.token is token:
            self.changed.clear()
            await self.changed.wait()
        return self.token

    def renew(self, value: str) -> None:
        self.token = Token(value, 3600.0, 0.0, 3600.0)
        self.changed.set()


class Dialer:
    async def close(self) -> None:
        pass


class FakeStream(Stream[Conn]):
    label = "fake"

    def __init__(self, streams: Streams[Conn], tokens: Tokens) -> None:
        super().__init__(streams)
        self.tokens = tokens
        self.opened: list[Conn] = []
        self.dedup_at_open: list[bool] = []
        self.reopens: list[Conn | None] = []  # what each reopen answers, in turn (default: the same connection)
        self.gate: asyncio.Event | None = None  # when set, `open` waits for it
        self.due: list[float | None] = []

    async def open(self) -> Conn:
        if self.gate is not None:
            await self.gate.wait()
        conn = Conn(len(self.opened) + 1, self.tokens.token)
        self.opened.append(conn)
        self.dedup_at_open.append(self.streams.dedup.active)
        return conn

    async def reopen(self, conn: Conn) -> Conn | None:
        if self.reopens:
            return self.reopens.pop(0)
        conn.fake = FakeSocket()
        return conn

    def deadline(self) -> float | None:
        return self.due.pop(0) if self.due else None


@dataclass
class Harness:
    stream: FakeStream
    state: StreamState
    tokens: Tokens
    dedup: Deduplicator

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        for _ in range(1000):  # loop turns, not seconds
            if condition():
                return
            await asyncio.sleep(0)
        raise AssertionError(f"never: {what}")


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    state, tokens, dedup = StreamState(), Tokens(), Deduplicator()
    streams: Streams[Conn] = Streams("test", state, cast(TokenManager, tokens), cast(Any, Dialer()), dedup)
    streams.overlap = 0.0
    stream = FakeStream(streams, tokens)
    task = asyncio.ensure_future(streams.run(lambda: streams.add(stream)))
    h = Harness(stream, state, tokens, dedup)
    await h.until(lambda: state.connected, "first connection")
    yield h
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_requested_rollover_overlaps_then_closes_the_old_connection(harness: Harness) -> None:
    old = harness.stream.opened[0]
    harness.stream.request("socket_closing")
    await harness.until(lambda: harness.stream.dedup_at_open == [False, True], "replacement opened")
    assert harness.dedup.active and old.fake.open  # de-duplicating while both deliver
    await harness.until(lambda: not harness.dedup.active, "overlap over")
    assert old.fake.reason == "rollover"  # the old one closed before the overlap ended
    assert harness.state.rollovers == {"socket_closing": 1}
    assert harness.stream.conn is harness.stream.opened[1] and harness.state.connected
    assert harness.stream.streams.live == {harness.stream.opened[1]}


async def test_an_unplanned_loss_is_counted_and_reopened(harness: Harness) -> None:
    conn = harness.stream.opened[0]
    conn.fake.drop("1011")
    await harness.until(lambda: harness.state.disconnects["1011"] == 1, "loss counted")
    await harness.until(lambda: harness.state.connected, "back")
    assert harness.stream.opened == [conn]  # the same connection again: no new one, no rollover
    assert not harness.state.rollovers
    assert harness.state.last_error == ""


async def test_a_connection_gone_for_good_rolls_over_without_overlap(harness: Harness) -> None:
    harness.stream.reopens = [None]
    old = harness.stream.opened[0]
    old.fake.drop("1006")
    await harness.until(lambda: len(harness.stream.opened) == 2 and harness.state.connected, "replaced")
    assert harness.stream.dedup_at_open == [False, False]  # nothing to overlap with
    assert harness.state.rollovers == {"channel_gone": 1} and harness.state.disconnects == {"1006": 1}
    assert old not in harness.stream.streams.live


async def test_token_refresh_is_void_for_a_connection_that_holds_the_newest_token(harness: Harness) -> None:
    harness.stream.request("token_refresh")
    harness.stream.request("socket_closing")  # something to wait for, after the void request
    await harness.until(lambda: harness.state.rollovers["socket_closing"] == 1, "rollover")
    assert harness.state.rollovers["token_refresh"] == 0
    assert len(harness.stream.opened) == 2


async def test_a_new_token_rolls_over_once_and_requests_meanwhile_are_served_by_it(harness: Harness) -> None:
    harness.stream.gate = gate = asyncio.Event()
    harness.tokens.renew("t2")
    await harness.until(lambda: harness.dedup.active, "rollover under way")
    harness.stream.request("socket_closing")  # asked during the rollover: served by it
    gate.set()
    await harness.until(lambda: harness.state.rollovers["token_refresh"] == 1, "rolled over")
    await harness.until(lambda: not harness.dedup.active, "overlap over")
    assert len(harness.stream.opened) == 2
    assert harness.stream.opened[1].token.value == "t2"
    assert harness.state.rollovers == {"token_refresh": 1}
    assert harness.stream.requests.empty()


async def test_a_token_newer_than_the_replacement_is_not_coalesced_away(harness: Harness) -> None:
    harness.stream.gate = gate = asyncio.Event()
    harness.tokens.renew("t2")
    await harness.until(lambda: harness.dedup.active, "rollover under way")
    gate.set()
    await asyncio.sleep(0)
    harness.tokens.renew("t3")  # the replacement opened with t2
    await harness.until(lambda: harness.state.rollovers["token_refresh"] == 2, "second rollover")
    assert harness.stream.opened[-1].token.value == "t3"


async def test_the_deadline_rolls_the_connection_over_as_channel_expiry() -> None:
    state, tokens, dedup = StreamState(), Tokens(), Deduplicator()
    streams: Streams[Conn] = Streams("test", state, cast(TokenManager, tokens), cast(Any, Dialer()), dedup)
    streams.overlap = 0.0
    stream = FakeStream(streams, tokens)
    stream.due = [0.0]  # due at once, then no deadline
    task = asyncio.ensure_future(streams.run(lambda: streams.add(stream)))
    h = Harness(stream, state, tokens, dedup)
    await h.until(lambda: state.rollovers["channel_expiry"] == 1 and not dedup.active, "expiry rollover")
    assert len(stream.opened) == 2 and stream.opened[0].fake.reason == "rollover"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not state.connected
