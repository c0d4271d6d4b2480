"""The one stream supervisor every source runs: a loop per connection that recovers and rolls over.

A source describes one supervised connection by subclassing `Stream` (how to open it subscribed,
how to come back after an unplanned loss, when it must be replaced); `Streams` runs every stream of
the source in one task group, with the token watch and the shutdown. The rules, the same for all:
- Each stream's loop waits for the first of: its reader ending (an unplanned loss, counted by close
  code), a rollover request (`request(reason)`: a new token, `socket_closing`, a HEAD 404) or its
  deadline (`channel_expiry`). It is the only task that reconnects its connection (single flight).
- After a loss the source comes back its own way (the same channel, a new socket); `None` means the
  connection is gone for good: a rollover with nothing to overlap.
- A rollover is make before break: de-duplication starts before the replacement subscribes (it may
  deliver from its first frame on), and both deliver until the old one has nothing left that only it
  carries. Not a fixed time: on a starved host the old one may lag far behind. The old one goes once
  a frame has come through both, in either order (`caught_up`: a socket delivers in order, so what it
  held before that frame is through, and what follows comes through the replacement too),
  when it ends on its own (`closed_by_server`), or after `max_wait` seconds (`max_wait`, the backstop:
  with no events flowing nothing can show the catch-up). A source may hold the old one longer
  (`Stream.handover`: a replacement whose subscription was refused carries nothing yet).
  Requests that arrive meanwhile are served by it; `token_refresh` is void for a connection that
  already holds the newest token.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from typing import Any, Generic, Protocol, TypeVar

from genesys_sentiment_exporter.catalogue import OverlapEnd
from genesys_sentiment_exporter.oauth import Token, TokenManager
from genesys_sentiment_exporter.sources import supervisor as sup
from genesys_sentiment_exporter.sources.dedup import Deduplicator
from genesys_sentiment_exporter.stream_state import StreamState

log = logging.getLogger("exporter.source")

MAX_WAIT_SECONDS = 30.0  # the overlap's backstop: an old socket that neither catches up nor ends goes then
GONE = "channel_gone"  # the old connection delivers nothing more: nothing to overlap with
TOKEN = "token_refresh"
EXPIRY = "channel_expiry"


class Connection(Protocol):
    @property
    def socket(self) -> sup.Socket: ...

    @property
    def token(self) -> Token: ...

    @property
    def number(self) -> int:
        """What the session's de-duplicator knows the connection by."""
        ...


C = TypeVar("C", bound=Connection)


class Streams(Generic[C]):
    """Every stream of one source: their task group, the connections still open, the token watch."""

    def __init__(
        self, name: str, state: StreamState, tokens: TokenManager, dialer: sup.Dialer, dedup: Deduplicator
    ) -> None:
        self.name, self.state, self.tokens, self.dialer, self.dedup = name, state, tokens, dialer, dedup
        self.max_wait = MAX_WAIT_SECONDS
        self.all: list[Stream[C]] = []
        self.live: set[C] = set()
        self._group: asyncio.TaskGroup | None = None

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        assert self._group is not None
        self._group.create_task(coro, name=f"{self.name}-{name}")

    def add(self, stream: Stream[C]) -> None:
        self.all.append(stream)
        self.spawn(stream.supervise(), stream.label.replace(" ", "-"))

    def changed(self) -> None:
        """Connected while every stream is ready; that clears the last error."""
        self.state.connected = bool(self.all) and all(s.ready for s in self.all)
        if self.state.connected:
            self.state.last_error = ""

    async def close(self, conn: C, reason: str) -> None:
        self.live.discard(conn)
        await conn.socket.close(reason)
        if conn.socket.reader is not None:  # what it still reads is accounted before the overlap ends
            await asyncio.wait({conn.socket.reader})

    async def retire(self, stream: Stream[C], old: C, new: C) -> None:
        """End a rollover's overlap (module docstring), then close the old connection; counted by what ended it."""
        try:
            ended = await self._overlap(stream, old, new)
            self.state.overlaps_ended[ended] += 1
            log.info("%s: old connection retired (%s)", stream.label, ended)
            await self.close(old, "rollover")
        finally:
            self.dedup.stop()
            stream.retired(old)

    async def _overlap(self, stream: Stream[C], old: C, new: C) -> OverlapEnd:
        reader = old.socket.reader
        if reader is None or reader.done():
            return OverlapEnd.CLOSED_BY_SERVER
        handover = asyncio.ensure_future(stream.handover(old, new))
        try:
            first: set[asyncio.Future[Any]] = {reader, handover}
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        finally:
            handover.cancel()
        if reader.done():
            return OverlapEnd.CLOSED_BY_SERVER
        caught: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def caught_up() -> None:
            if not caught.done():
                caught.set_result(None)

        # With the stream's connection now: `new` itself may have been replaced while the source held on.
        current = stream.conn if stream.conn is not None else new
        self.dedup.when_caught_up(old.number, current.number, caught_up)
        try:
            then: set[asyncio.Future[Any]] = {reader, caught}
            await asyncio.wait(then, timeout=self.max_wait, return_when=asyncio.FIRST_COMPLETED)
        finally:
            caught.cancel()
            self.dedup.forget(old.number, current.number)
        if caught.done() and not caught.cancelled():
            return OverlapEnd.CAUGHT_UP
        return OverlapEnd.CLOSED_BY_SERVER if reader.done() else OverlapEnd.MAX_WAIT

    async def run(self, start: Callable[[], None]) -> None:
        """`start` adds the first streams (it may spawn more tasks); until cancelled or one fails."""
        try:
            async with asyncio.TaskGroup() as self._group:
                start()
                self.spawn(self._token_watch(), "token-watch")
        finally:
            self._group = None
            self.state.connected = False
            await sup.close_all([c.socket.ws for c in self.live], "shutdown")
            for conn in self.live:
                if conn.socket.reader is not None:
                    conn.socket.reader.cancel()
            await self.dialer.close()

    async def _token_watch(self) -> None:
        """The safe pattern on a new token: every stream rolls over to a connection that holds it."""
        token = await self.tokens.current()
        while True:
            token = await self.tokens.wait_newer(token)
            for stream in list(self.all):
                stream.request(TOKEN)


class Stream(ABC, Generic[C]):
    """One supervised connection; a source says how to open it and how to come back after a loss."""

    label = "stream"

    def __init__(self, streams: Streams[C]) -> None:
        self.streams = streams
        self.conn: C | None = None
        self.requests: asyncio.Queue[str] = asyncio.Queue()

    @abstractmethod
    async def open(self) -> C:
        """A new connection, subscribed and read; retries until it is."""

    @abstractmethod
    async def reopen(self, conn: C) -> C | None:
        """After an unplanned loss of `conn`: a connection again, or None when `conn` is gone for good."""

    def deadline(self) -> float | None:
        """Seconds until the connection must be replaced (None: no planned end)."""
        return None

    async def handover(self, old: C, new: C) -> None:
        """Returns once `new` carries what `old` did; until then the overlap does not start ending.
        By default at once: `open` returns a subscribed connection."""

    def retired(self, old: C) -> None:
        """A rollover's old connection is closed and its overlap over (however it ended)."""

    @property
    def is_open(self) -> bool:
        return self.conn is not None and self.conn.socket.open

    @property
    def ready(self) -> bool:
        """What readiness asks of this stream: an open socket (a source may ask more)."""
        return self.is_open

    def request(self, reason: str) -> None:
        self.requests.put_nowait(reason)

    def stale(self, conn: C) -> bool:
        return conn.token is not self.streams.tokens.token

    async def supervise(self) -> None:
        conn = await self._open()
        while True:
            reader = conn.socket.reader
            assert reader is not None
            ask = asyncio.ensure_future(self.requests.get())
            try:
                done, _ = await asyncio.wait(
                    {reader, ask}, timeout=self.deadline(), return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                ask.cancel()
            if reader in done:
                if ask in done:
                    self.request(ask.result())  # not lost: served once the connection is back
                conn = await self._recover(conn, reader.result())
                continue
            reason = ask.result() if ask in done else EXPIRY
            if reason != TOKEN or self.stale(conn):
                conn = await self._rollover(conn, reason)

    async def _open(self) -> C:
        self.conn = conn = await self.open()
        self.streams.live.add(conn)
        self.streams.changed()
        return conn

    async def _recover(self, conn: C, code: str) -> C:
        streams = self.streams
        streams.live.discard(conn)
        streams.state.disconnects[code] += 1
        streams.state.last_error = f"{self.label} socket closed ({code})"
        streams.changed()
        log.warning("%s socket closed (%s); reconnecting", self.label, code)
        back = await self.reopen(conn)
        if back is None:
            return await self._rollover(conn, GONE)
        self.conn = back
        streams.live.add(back)
        streams.changed()
        return back

    async def _rollover(self, old: C, reason: str) -> C:
        """Make before break: the replacement delivers before the old connection goes."""
        streams = self.streams
        overlap = reason != GONE
        if overlap:
            streams.dedup.start()  # the replacement may deliver from its first frame on
        else:
            await streams.close(old, reason)  # nothing more will come through it
        try:
            conn = await self._open()
        except BaseException:
            if overlap:
                streams.dedup.stop()
            raise
        streams.state.rollovers[reason] += 1
        log.info("%s rolled over to a new connection (%s)", self.label, reason)
        if overlap:
            streams.spawn(streams.retire(self, old, conn), "retire")
        while not self.requests.empty():  # single flight: what was asked meanwhile is done by this one
            if self.requests.get_nowait() == TOKEN and self.stale(conn):
                self.request(TOKEN)
                break
        return conn
