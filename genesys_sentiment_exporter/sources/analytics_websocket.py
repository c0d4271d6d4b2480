"""The design document's stream over a real WebSocket: the upgrade, the subscription, the hot path.

The asyncio shell around `AnalyticsSession` (analytics_session.py, pure). It is one `stream.Stream`:
the shared loop reconnects after any unexpected close with jittered backoff whose first step is well
under a second, replaces a socket silent for 2.5 heartbeats, and on a new token (the platform
silently stops delivering after expiry) opens a second socket with it, subscribes, and only then
closes the old one. What is this source's own: the upgrade (a 401 asks for a new token first), the
subscribe handshake, and the per-frame loop.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit

import aiohttp
from prometheus_client.core import Metric

from genesys_sentiment_exporter.backoff import delays
from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.neterrors import describe
from genesys_sentiment_exporter.oauth import Token, TokenManager
from genesys_sentiment_exporter.sources import analytics_protocol as proto
from genesys_sentiment_exporter.sources import supervisor as sup
from genesys_sentiment_exporter.sources.analytics_session import AnalyticsSession, SubscribeRefused
from genesys_sentiment_exporter.sources.stream import MAX_WAIT_SECONDS, Stream, Streams
from genesys_sentiment_exporter.stream_state import StreamState

log = logging.getLogger("exporter.source.analytics")

SUBSCRIBE_TIMEOUT = 10.0


class UpgradeRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"WebSocket upgrade refused with HTTP {status}")
        self.status = status


CONNECT_ERRORS: tuple[type[BaseException], ...] = (*sup.CONNECT_ERRORS, SubscribeRefused, UpgradeRefused)


@dataclass(eq=False)
class Connection:
    socket: sup.Socket
    token: Token
    number: int

    @property
    def ws(self) -> aiohttp.ClientWebSocketResponse:
        assert self.socket.ws is not None
        return self.socket.ws


class AnalyticsWebSocketSource(Stream[Connection]):
    """Feeds `Ingest` from the analytics-websocket stream until cancelled: one supervised socket."""

    name = "analytics-websocket"
    rest = None  # no REST client: no name look-ups

    def __init__(
        self,
        *,
        api_base_url: str,
        tokens: TokenManager,
        ingest: Ingest,
        stream: StreamState,
        queue_ids: list[str],
        agent_ids: list[str],
        heartbeat_seconds: int = 30,
        ssl_context: ssl.SSLContext | None = None,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        max_overlap_seconds: float = MAX_WAIT_SECONDS,
    ) -> None:
        self.url = proto.websocket_url(api_base_url)
        self.tokens, self.ingest, self.stream = tokens, ingest, stream
        self.session = AnalyticsSession(ingest, stream, queue_ids, agent_ids, heartbeat_seconds)
        self.watchdog = sup.WatchdogPolicy(2.5 * heartbeat_seconds)
        self.dialer = sup.Dialer(ssl_context)
        self.wall, self.clock = wall, clock
        super().__init__(Streams("analytics", stream, tokens, self.dialer, self.session.dedup))
        self.streams.max_wait = max_overlap_seconds
        self.live = self.streams.live

    def metrics(self) -> Iterable[Metric]:
        return ()

    def subscription_report(self) -> list[tuple[bool, str, str]]:
        return []

    async def run(self) -> None:
        await self.streams.run(lambda: self.streams.add(self))

    async def subscribed(self, token: Token) -> Connection:
        """Connect and subscribe; returns only once the server acknowledged the subscription."""
        socket = sup.Socket(self.dialer, self.watchdog, self.clock, lambda _frame, _now: True)  # own loop
        try:
            ws = await socket.connect(self.url, {"Authorization": f"Bearer {token.value}"})
        except aiohttp.WSServerHandshakeError as exc:
            raise UpgradeRefused(exc.status) from None
        try:
            await ws.send_str(self.session.subscribe)
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                number = 0
                while not number:
                    message = await ws.receive()
                    if message.type not in sup.DATA:
                        raise ConnectionError(
                            f"socket closed before the subscription was acknowledged ({ws.close_code})"
                        )
                    number = self.session.handshake(message.data, self.wall())
        except BaseException:
            await ws.close()
            raise
        return Connection(socket, token, number)

    async def read(self, conn: Connection) -> str:
        """Process frames until the socket closes; returns the close code (or our reason)."""
        self._start(conn)
        assert conn.socket.reader is not None
        return await conn.socket.reader

    def _start(self, conn: Connection) -> None:
        conn.socket.start(partial(self._read_frames, conn.number))

    async def _read_frames(self, number: int, ws: aiohttp.ClientWebSocketResponse, dog: sup.Watchdog) -> None:
        """The hot path, every frame of the region, inline. All frames are the server's (WebSocket
        pongs never reach `receive`), so each one is watchdog traffic."""
        wall, clock, stream, handle, parse, receive = (
            self.wall,
            self.clock,
            self.stream,
            self.session.handle,
            proto.parse,
            ws.receive,
        )
        turn = sup.FRAMES_PER_TURN
        while True:
            message = await receive()
            if message.type not in sup.DATA:
                return  # close, closing, closed or a transport error: all end this socket
            frame = message.data
            now = stream.last_message = wall()
            dog.last_traffic = clock()
            handle(frame, parse(frame, now), number, now)
            turn -= 1
            if not turn:  # a flood must not starve scrapes and timers (supervisor.FRAMES_PER_TURN)
                turn = sup.FRAMES_PER_TURN
                await asyncio.sleep(0)

    def _failed(self, exc: BaseException) -> str:
        if isinstance(exc, UpgradeRefused | SubscribeRefused):
            self.stream.last_error = str(exc)
            if isinstance(exc, SubscribeRefused):
                log.error("%s", exc)
        else:  # the host and the cause (refused, DNS, certificate), not the wrapper's words
            self.stream.last_error = f"cannot connect to {urlsplit(self.url).netloc}: {describe(exc)}"
        return self.stream.last_error

    async def _attempt(self) -> Connection:
        try:
            return await self.subscribed(await self.tokens.current())
        except UpgradeRefused as exc:
            if exc.status == 401:  # the server no longer accepts this token: a fresh one before retrying
                log.warning("stream refused the token (HTTP 401); requesting a new token")
                await self.tokens.obtain()
            raise

    async def connect_with_retry(self) -> Connection:
        conn = await sup.with_retry(self._attempt, CONNECT_ERRORS, delays(0.5, 30.0), self._failed)
        self.stream.connects += 1
        self.stream.connected = True
        self.stream.last_error = ""
        log.info("stream connected and subscribed (%s)", self.url)
        return conn

    # -- what the shared loop asks -------------------------------------------------------------------
    async def open(self) -> Connection:
        conn = await self.connect_with_retry()
        self._start(conn)
        return conn

    async def reopen(self, conn: Connection) -> Connection:
        if sup.classify_close(conn.ws.close_code)[1] == "renew_token" and not conn.socket.reason:
            await self.tokens.obtain()
        return await self.open()
