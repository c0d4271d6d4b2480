"""The design document's stream over a real WebSocket: connect, subscribe, reconnect, roll over.

This is the asyncio shell around `analytics_protocol` (pure parsing) and
`Ingest` (pure state). It owns sockets and timers only:
- reconnects after any unexpected close (1001 maintenance, 1006 drop, ...) with
  jittered backoff whose first step is well under a second;
- replaces a socket that fell silent (no frame for 2.5 heartbeats);
- before the token expires (the platform silently stops delivering after
  expiry) opens a second socket with the new token, subscribes, and only then
  closes the old one; frames seen on both during the overlap are dropped once.

The socket is aiohttp's client WebSocket rather than `websockets`: its frame
reader is compiled, and on this path (every message of a region) it costs about
3 us a frame against about 8 us (bench/), which is what lets the exporter ingest
at the rate a bare client merely receives and decodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from genesys_sentiment_exporter.backoff import Backoff
from genesys_sentiment_exporter.catalogue import Outcome
from genesys_sentiment_exporter.config import is_loopback
from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.oauth import Token, TokenManager
from genesys_sentiment_exporter.sources import analytics_protocol as proto
from genesys_sentiment_exporter.stream_state import StreamState

log = logging.getLogger("exporter.source.analytics")

SUBSCRIBE_TIMEOUT = 10.0
OVERLAP_SECONDS = 2.0  # both sockets delivering: long enough to drain the old one's in-flight frames
DEDUP_LIMIT = 200_000


class SubscribeRefused(Exception):
    pass


class UpgradeRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"WebSocket upgrade refused with HTTP {status}")
        self.status = status


CONNECT_ERRORS = (OSError, TimeoutError, aiohttp.ClientError, SubscribeRefused, UpgradeRefused, ConnectionError)
_DATA = (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)


@dataclass(eq=False)
class Connection:
    ws: aiohttp.ClientWebSocketResponse
    token: Token
    number: int
    last_frame: float = field(default_factory=time.monotonic)
    reason: str = ""  # why we closed it ourselves, if we did


class Deduplicator:
    """During a make-before-break overlap, one frame delivered by both sockets counts once."""

    def __init__(self) -> None:
        self.active = False
        self.seen: dict[str | bytes, int] = {}

    def start(self) -> None:
        self.active = True
        self.seen.clear()

    def stop(self) -> None:
        self.active = False
        self.seen.clear()

    def duplicate(self, frame: str | bytes, connection: int) -> bool:
        other = self.seen.get(frame)
        if other is not None and other != connection:
            del self.seen[frame]
            return True
        if len(self.seen) < DEDUP_LIMIT:
            self.seen[frame] = connection
        return False


def websocket_url(api_base_url: str) -> str:
    base = api_base_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return base + proto.PATH


class AnalyticsWebSocketSource:
    """Feeds `Ingest` from the analytics-websocket stream until cancelled."""

    name = "analytics-websocket"

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
    ) -> None:
        self.url = websocket_url(api_base_url)
        self.tokens = tokens
        self.ingest = ingest
        self.stream = stream
        self.subscribe = proto.subscribe_message(queue_ids, agent_ids, heartbeat_seconds)
        self.heartbeat = heartbeat_seconds
        self.watchdog_seconds = 2.5 * heartbeat_seconds
        self.ssl = ssl_context if self.url.startswith("wss://") else None
        # Honour HTTPS_PROXY & co. for real hosts, but never send loopback traffic through a proxy.
        self.trust_env = not is_loopback(urlsplit(self.url).hostname or "")
        self._session: aiohttp.ClientSession | None = None
        self.wall = wall
        self.dedup = Deduplicator()
        self.live: set[Connection] = set()
        self._retiring: set[asyncio.Task[None]] = set()
        self._numbers = 0

    # -- one socket ----------------------------------------------------------------------------
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Proxies from the environment for real hosts; loopback never goes through one.
            self._session = aiohttp.ClientSession(trust_env=self.trust_env)
        return self._session

    async def open(self, token: Token) -> Connection:
        """Connect and subscribe; returns only once the server acknowledged the subscription."""
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                ws = await self.session().ws_connect(
                    self.url,
                    headers={"Authorization": f"Bearer {token.value}", "User-Agent": "genesys-sentiment-exporter"},
                    ssl=self.ssl if self.ssl is not None else True,
                    timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                    heartbeat=20.0,  # pings keep NAT state alive and catch a dead peer between heartbeats
                    max_msg_size=2**20,
                )
        except aiohttp.WSServerHandshakeError as exc:
            raise UpgradeRefused(exc.status) from None
        try:
            await ws.send_str(self.subscribe)
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                while True:
                    message = await ws.receive()
                    if message.type not in _DATA:
                        raise ConnectionError(
                            f"socket closed before the subscription was acknowledged ({ws.close_code})"
                        )
                    frame = message.data
                    parsed = proto.parse(frame, self.wall())
                    if parsed.kind == proto.Kind.SUBSCRIBED:
                        break
                    if parsed.kind == proto.Kind.ERROR:
                        raise SubscribeRefused(f"server refused the subscription: {parsed.reason}: {parsed.detail}")
                    # Anything before the acknowledgement is still a message and gets its outcome.
                    self._handle(frame, parsed, 0)
        except BaseException:
            await ws.close()
            raise
        self._numbers += 1
        self.ingest.count(Outcome.CONTROL)
        return Connection(ws, token, self._numbers)

    def _handle(self, frame: str | bytes, parsed: proto.Parsed, number: int) -> None:
        kind = parsed.kind
        if kind == proto.Kind.CONVERSATION:
            if self.dedup.active and self.dedup.duplicate(frame, number):
                self.ingest.count(Outcome.DUPLICATE)
                return
            self.ingest.conversation_fields(
                parsed.agent_id,
                parsed.queue_id,
                parsed.conversation_id,
                parsed.state_value,
                parsed.score,
                parsed.timestamp,
                parsed.sentiment,
            )
        elif kind == proto.Kind.HEARTBEAT:
            self.stream.last_heartbeat = self.wall()
            self.ingest.count(Outcome.HEARTBEAT)
        elif kind == proto.Kind.REJECTED:
            self.ingest.count(Outcome(parsed.reason))
        else:
            if kind == proto.Kind.ERROR:
                log.error("stream error from server: %s: %s", parsed.reason, parsed.detail)
            self.ingest.count(Outcome.CONTROL)

    async def read(self, conn: Connection) -> str:
        """Process frames until the socket closes; returns the close code (or our reason)."""
        wall = self.wall
        stream = self.stream
        handle = self._handle
        parse = proto.parse
        monotonic = time.monotonic
        number = conn.number
        ws = conn.ws
        receive = ws.receive
        while True:
            message = await receive()
            if message.type not in _DATA:
                break  # close, closing, closed or a transport error: all end this socket
            frame = message.data
            now = wall()
            stream.last_message = now
            conn.last_frame = monotonic()
            handle(frame, parse(frame, now), number)
        if conn.reason:
            return conn.reason
        return str(ws.close_code or 1006)

    async def watchdog(self, conn: Connection) -> None:
        """Close a socket that has been silent for 2.5 heartbeat intervals."""
        while True:
            await asyncio.sleep(min(1.0, self.watchdog_seconds / 10))
            if time.monotonic() - conn.last_frame > self.watchdog_seconds:
                log.warning("no message or heartbeat for %.0f s: replacing the socket", self.watchdog_seconds)
                conn.reason = "heartbeat_timeout"
                await conn.ws.close(code=4000, message=b"heartbeat timeout")
                return

    # -- the supervisor ------------------------------------------------------------------------
    async def connect_with_retry(self) -> Connection:
        backoff = Backoff(base=0.5, cap=30.0)
        while True:
            token = await self.tokens.current()
            try:
                conn = await self.open(token)
            except UpgradeRefused as exc:
                self.stream.last_error = str(exc)
                if exc.status == 401:
                    # The server no longer accepts this token: get a fresh one before retrying.
                    log.warning("stream refused the token (HTTP 401); requesting a new token")
                    await self.tokens.obtain()
            except SubscribeRefused as exc:
                self.stream.last_error = str(exc)
                log.error("%s", exc)
            except CONNECT_ERRORS as exc:
                self.stream.last_error = f"cannot connect to {self.url}: {type(exc).__name__}: {exc}"
            else:
                self.stream.connects += 1
                self.stream.connected = True
                self.stream.last_error = ""
                log.info("stream connected and subscribed (%s)", self.url)
                return conn
            delay = backoff.next_delay()
            log.warning("%s; retrying in %.1f s", self.stream.last_error, delay)
            await asyncio.sleep(delay)

    async def run(self) -> None:
        try:
            conn = await self.connect_with_retry()
            while True:
                conn = await self._serve(conn)
        finally:
            self.stream.connected = False
            for retire in list(self._retiring):
                retire.cancel()
            for live in list(self.live):
                with contextlib.suppress(Exception):
                    await live.ws.close()
            if self._session is not None:
                await self._session.close()

    async def _serve(self, conn: Connection) -> Connection:
        """Run one socket until it dies (returns its replacement) or a rollover replaces it."""
        self.live.add(conn)
        reader = asyncio.create_task(self.read(conn))
        dog = asyncio.create_task(self.watchdog(conn))
        newer = asyncio.create_task(self.tokens.wait_newer(conn.token))
        try:
            while True:
                done, _ = await asyncio.wait({reader, newer}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    code = reader.result()
                    self.live.discard(conn)
                    self.stream.connected = False
                    self.stream.disconnects[code] += 1
                    self.stream.last_error = f"socket closed ({code})"
                    log.warning("stream socket closed (%s); reconnecting", code)
                    return await self.connect_with_retry()
                try:
                    replacement = await self.open(newer.result())
                except CONNECT_ERRORS as exc:
                    # Keep the old socket (it still works until its token expires) and try again soon.
                    log.warning("rollover to the new token failed (%s); retrying in 5 s", exc)
                    await asyncio.sleep(5.0)
                    newer = asyncio.create_task(self.tokens.wait_newer(conn.token))
                    continue
                self.stream.rollovers["token_refresh"] += 1
                log.info("rolled the stream over to a socket with the new token")
                retire = asyncio.create_task(self._retire(conn, reader))
                self._retiring.add(retire)
                retire.add_done_callback(self._retiring.discard)
                return replacement
        except asyncio.CancelledError:
            reader.cancel()
            raise
        finally:
            dog.cancel()
            newer.cancel()

    async def _retire(self, conn: Connection, reader: asyncio.Task[str]) -> None:
        """Let the old socket drain while the new one already delivers, then close it."""
        self.dedup.start()
        try:
            await asyncio.sleep(OVERLAP_SECONDS)
            conn.reason = "rollover"
            await conn.ws.close(code=1000, message=b"token rollover")
            await reader
        finally:
            self.live.discard(conn)
            self.dedup.stop()
