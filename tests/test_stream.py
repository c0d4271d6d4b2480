"""The shared stream supervisor's loop (`sources/stream.py`), with fake connections: no socket, no timed sleep.

A fake connection's reader is a future the test resolves (a loss with a close code); the overlap's backstop is
0 s unless a test is about how an overlap ends, so retiring the old connection only yields to the loop once.
Frames are handed to the de-duplicator directly, as the sessions do.
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
        self.handed_over: asyncio.Event | None = None  # when set, the old connection is held until it is
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

    async def handover(self, old: Conn, new: Conn) -> None:
        if self.handed_over is not None:
            await self.handed_over.wait()


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
    streams.max_wait = 0.0
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
    assert harness.state.overlaps_ended == {"max_wait": 1}  # a 0 s backstop here


async def _rolled_over(harness: Harness, max_wait: float = 3600.0) -> tuple[Conn, Conn]:
    harness.stream.streams.max_wait = max_wait  # "never" in loop turns: only the overlap's own end counts
    harness.stream.request("socket_closing")
    await harness.until(lambda: len(harness.stream.opened) == 2 and harness.dedup.active, "replacement opened")
    await harness.until(lambda: harness.state.rollovers["socket_closing"] == 1, "rolled over")
    return harness.stream.opened[0], harness.stream.opened[1]


async def _turns(n: int = 50) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_the_old_connection_stays_until_it_delivers_a_frame_its_replacement_delivered_first(
    harness: Harness,
) -> None:
    """A starved host: the replacement is up but the old socket still carries events nobody else has."""
    old, new = await _rolled_over(harness)
    dedup = harness.dedup
    assert not dedup.duplicate(b"in flight", old.number)  # published before the replacement subscribed
    await _turns()
    assert old.fake.open and dedup.active and not harness.state.overlaps_ended
    assert not dedup.duplicate(b"after the swap", new.number)  # the replacement has it first
    await _turns()
    assert old.fake.open  # the old one has not delivered it yet: it may still hold events before it
    assert dedup.duplicate(b"after the swap", old.number)  # now it has: caught up
    await harness.until(lambda: not dedup.active, "overlap over")
    assert old.fake.reason == "rollover" and new.fake.open
    assert harness.state.overlaps_ended == {"caught_up": 1}
    assert harness.stream.streams.live == {new}


async def test_an_old_connection_that_leads_has_caught_up_once_its_replacement_delivers_the_same_frame(
    harness: Harness,
) -> None:
    """The usual case on an idle host: the old socket gets each frame first."""
    old, new = await _rolled_over(harness)
    assert not harness.dedup.duplicate(b"a", old.number)
    await _turns()
    assert old.fake.open
    assert harness.dedup.duplicate(b"a", new.number)
    await harness.until(lambda: not harness.dedup.active, "overlap over")
    assert harness.state.overlaps_ended == {"caught_up": 1} and old.fake.reason == "rollover"


async def test_a_catch_up_before_the_replacement_was_handed_over_still_counts(harness: Harness) -> None:
    """The replacement delivers from its first frame on, before `open` returns: the catch-up is remembered."""
    harness.stream.streams.max_wait = 3600.0
    harness.stream.gate = gate = asyncio.Event()
    harness.stream.request("socket_closing")
    await harness.until(lambda: harness.dedup.active, "rollover under way")
    old = harness.stream.opened[0]
    assert not harness.dedup.duplicate(b"early", 2)  # the replacement (number 2), still opening
    assert harness.dedup.duplicate(b"early", old.number)
    gate.set()
    await harness.until(lambda: not harness.dedup.active, "overlap over")
    assert harness.state.overlaps_ended == {"caught_up": 1} and old.fake.reason == "rollover"


async def test_an_old_connection_the_platform_closes_ends_the_overlap(harness: Harness) -> None:
    old, new = await _rolled_over(harness)
    await _turns()
    assert old.fake.open and harness.dedup.active
    old.fake.drop("1000")  # the platform closed it (socket_closing's close, channel expiry)
    await harness.until(lambda: not harness.dedup.active, "overlap over")
    assert harness.state.overlaps_ended == {"closed_by_server": 1}
    assert not harness.state.disconnects  # the old one of an overlap: not a loss of the stream
    assert harness.stream.streams.live == {new} and harness.stream.conn is new


async def test_the_backstop_closes_an_old_connection_that_never_catches_up() -> None:
    """No events flowing: nothing can show the catch-up; the old one goes after `max_wait` (real seconds, small)."""
    state, tokens, dedup = StreamState(), Tokens(), Deduplicator()
    streams: Streams[Conn] = Streams("test", state, cast(TokenManager, tokens), cast(Any, Dialer()), dedup)
    streams.max_wait = 0.05
    stream = FakeStream(streams, tokens)
    task = asyncio.ensure_future(streams.run(lambda: streams.add(stream)))
    h = Harness(stream, state, tokens, dedup)
    await h.until(lambda: state.connected, "first connection")
    tokens.renew("t2")
    await h.until(lambda: len(stream.opened) == 2, "replacement opened")
    for _ in range(200):  # condition, not a fixed sleep: the backstop fires whenever the loop gets to it
        if not dedup.active:
            break
        await asyncio.sleep(0.05)
    assert state.overlaps_ended == {"max_wait": 1} and stream.opened[0].fake.reason == "rollover"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_source_may_hold_the_old_connection_until_its_replacement_carries_what_it_did(
    harness: Harness,
) -> None:
    """The replacement's subscription refused: the overlap does not even start ending (not even the backstop)."""
    harness.stream.handed_over = handed = asyncio.Event()
    old, new = await _rolled_over(harness, max_wait=0.0)
    assert not harness.dedup.duplicate(b"a", new.number) and harness.dedup.duplicate(b"a", old.number)
    await _turns()
    assert old.fake.open and harness.dedup.active and not harness.state.overlaps_ended
    handed.set()
    await harness.until(lambda: not harness.dedup.active, "overlap over")
    assert harness.state.overlaps_ended == {"caught_up": 1} and old.fake.reason == "rollover"


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
    streams.max_wait = 0.0
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


async def test_an_old_connection_held_through_a_second_rollover_catches_up_with_the_newest(
    harness: Harness,
) -> None:
    """A held (its replacement B refused), then B replaced by C: A goes once a frame came through A and C."""
    harness.stream.handed_over = handed = asyncio.Event()
    a, b = await _rolled_over(harness)
    harness.stream.request("channel_expiry")
    await harness.until(lambda: len(harness.stream.opened) == 3, "second replacement opened")
    c = harness.stream.opened[2]
    await harness.until(lambda: harness.stream.conn is c, "C is the stream's connection")
    handed.set()  # C is subscribed
    await _turns()
    assert a.fake.open and b.fake.open and harness.dedup.overlaps == 2
    assert not harness.dedup.duplicate(b"x", c.number) and harness.dedup.duplicate(b"x", a.number)
    await harness.until(lambda: a.fake.reason == "rollover", "A retired")
    assert b.fake.open and harness.state.overlaps_ended == {"caught_up": 1}
    assert harness.dedup.duplicate(b"x", b.number)
    await harness.until(lambda: not harness.dedup.active, "both overlaps over")
    assert harness.state.overlaps_ended == {"caught_up": 2} and harness.stream.streams.live == {c}
