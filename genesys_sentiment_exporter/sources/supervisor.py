"""What every stream source shares, decided once: watchdog, overlap de-duplication, retry, close codes.

Pure parts first (no clock of their own: callers pass `now`), then the small asyncio helpers
both shells use, then the one WebSocket client (aiohttp, chosen by bench/: its compiled frame
reader keeps the analytics hot path at the rate a bare client merely receives).

Rules every source follows:
- Only traffic the server sent on its own proves the stream alive. A pong answers our own ping,
  so it says the socket is open, not that the platform still delivers: it never feeds the watchdog.
- A replacement socket delivers before the old one goes (make before break); during the overlap a
  frame seen on both sockets counts once.
- Retry delays come from a pure generator with jitter (`backoff.delays`). Reconnects are
  single-flight by construction: one supervising task per socket does every reconnect, and
  requests that arrive while one runs are coalesced into it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Literal, TypeVar
from urllib.parse import urlsplit

import aiohttp

from genesys_sentiment_exporter.hosts import is_loopback

log = logging.getLogger("exporter.source")

T = TypeVar("T")

OPEN_TIMEOUT = 10.0
USER_AGENT = "genesys-sentiment-exporter"
DATA = (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)
# A read loop hands the event loop back every this many frames. `ws.receive()` returns without
# suspending while frames are buffered, so under a flood a reader would otherwise hold the loop until
# the socket's buffer runs dry: scrapes, the watchdog and token refreshes wait seconds. 256 frames are
# about a millisecond of work; one `sleep(0)` per batch costs well under 1 % of it.
FRAMES_PER_TURN = 256


Verdict = Literal["wait", "ping", "expired"]


@dataclass
class WatchdogPolicy:
    """Shared by every socket of a source (and changeable while they run)."""

    silence: float  # seconds without server-initiated traffic before the socket is replaced
    ping_after: float | None = None  # idle seconds before one ping (None: never)


class Watchdog:
    """Silence detection for one socket, fed only server-initiated traffic.

    `expired` after `policy.silence` seconds without such traffic; `ping` once per silent stretch
    after `policy.ping_after`. The pong that answers does not call `traffic`, so it never resets it.
    """

    def __init__(self, policy: WatchdogPolicy, now: float) -> None:
        self.policy = policy
        self.last_traffic = now
        self._pinged_for: float | None = None

    def traffic(self, now: float) -> None:
        self.last_traffic = now

    def check(self, now: float) -> Verdict:
        idle = now - self.last_traffic
        if idle > self.policy.silence:
            return "expired"
        ping_after = self.policy.ping_after
        if ping_after is not None and idle > ping_after and self._pinged_for != self.last_traffic:
            self._pinged_for = self.last_traffic
            return "ping"
        return "wait"

    def interval(self) -> float:
        return min(1.0, self.policy.silence / 10)


CloseAction = Literal["reconnect", "renew_token"]


def classify_close(code: int | None) -> tuple[str, CloseAction]:
    """A close code's counter label and what to do next.

    1008 (policy) and 4001/4401-style auth closes mean the server no longer accepts our token:
    a new one first. Everything else (1000 from the server, 1001 maintenance, 1006 drop, 1011,
    our own 4000 watchdog close) reconnects with backoff.
    """
    if code is None:
        return "1006", "reconnect"
    if code == 1008 or code in (4001, 4401, 4403):
        return str(code), "renew_token"
    return str(code), "reconnect"


async def with_retry(
    attempt: Callable[[], Awaitable[T]],
    errors: tuple[type[BaseException], ...],
    delays: Iterator[float],
    failed: Callable[[BaseException], str],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Call `attempt` until it succeeds; `failed` records each error and says what to log."""
    while True:
        try:
            return await attempt()
        except errors as exc:
            message = failed(exc)
        delay = next(delays)
        log.warning("%s; retrying in %.1f s", message, delay)
        await sleep(delay)


async def watch(
    dog: Watchdog,
    clock: Callable[[], float],
    ping: Callable[[], Awaitable[None]] | None,
    expire: Callable[[], Awaitable[None]],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run a watchdog: ping when idle, `expire` (close the socket) when silent too long."""
    while True:
        await sleep(dog.interval())
        verdict = dog.check(clock())
        if verdict == "expired":
            await expire()
            return
        if verdict == "ping" and ping is not None:
            with contextlib.suppress(Exception):
                await ping()


class Dialer:
    """The one WebSocket client of the exporter. Proxies from the environment for real hosts;
    loopback never goes through one (a test or sidecar on 127.0.0.1 must not hit a proxy)."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl = ssl_context
        self._sessions: dict[bool, aiohttp.ClientSession] = {}

    def session(self, url: str) -> aiohttp.ClientSession:
        trust_env = not is_loopback(urlsplit(url).hostname or "")
        session = self._sessions.get(trust_env)
        if session is None or session.closed:
            session = self._sessions[trust_env] = aiohttp.ClientSession(trust_env=trust_env)
        return session

    async def connect(self, url: str, headers: dict[str, str] | None = None) -> aiohttp.ClientWebSocketResponse:
        async with asyncio.timeout(OPEN_TIMEOUT):
            return await self.session(url).ws_connect(
                url,
                headers={"User-Agent": USER_AGENT, **(headers or {})},
                ssl=(self.ssl if self.ssl is not None else True) if url.startswith("wss://") else False,
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                heartbeat=20.0,  # WebSocket pings keep NAT state alive and catch a dead peer
                max_msg_size=2**20,
            )

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()


async def close_socket(ws: aiohttp.ClientWebSocketResponse | None, code: int = 1000, reason: str = "") -> None:
    if ws is not None:
        with contextlib.suppress(Exception):
            await ws.close(code=code, message=reason.encode()[:120])


class Socket:
    """One stream socket with its reader and watchdog tasks: the part of a stream every source shares.

    `receive(frame, now)` hands each data frame to the source's session and says whether it was
    traffic the server sent on its own (only that feeds the watchdog). `reader` ends with the close
    code as a label, or the reason we closed it for.
    """

    def __init__(
        self,
        dialer: Dialer,
        policy: WatchdogPolicy,
        clock: Callable[[], float],
        receive: Callable[[str | bytes, float], bool],
        ping: str | None = None,
        label: str = "stream",
    ) -> None:
        self.dialer, self.policy, self.clock, self.receive = dialer, policy, clock, receive
        self.ping, self.label = ping, label
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reason = ""  # why we closed it ourselves
        self.reader: asyncio.Future[str] | None = None
        self.watcher: asyncio.Future[None] | None = None

    async def connect(self, url: str, headers: dict[str, str] | None = None) -> aiohttp.ClientWebSocketResponse:
        """Open the socket (a handshake may read it directly before `start`)."""
        self.ws = await self.dialer.connect(url, headers)
        self.reason = ""
        return self.ws

    def start(self, loop: Callable[[aiohttp.ClientWebSocketResponse, Watchdog], Awaitable[None]] | None = None) -> None:
        """Read and watch. `loop` replaces the generic frame loop on a hot path (it must stamp
        `dog.last_traffic` itself): one call layer less per frame."""
        dog = Watchdog(self.policy, self.clock())
        self.reader = asyncio.ensure_future(self._read(loop or self._deliver, dog))
        self.watcher = asyncio.ensure_future(watch(dog, self.clock, self._ping if self.ping else None, self._silent))

    @property
    def open(self) -> bool:
        return not self.reason and self.reader is not None and not self.reader.done()

    async def _read(
        self, loop: Callable[[aiohttp.ClientWebSocketResponse, Watchdog], Awaitable[None]], dog: Watchdog
    ) -> str:
        ws = self.ws
        assert ws is not None
        try:
            await loop(ws, dog)
        finally:
            if self.watcher is not None:
                self.watcher.cancel()
        return self.reason or classify_close(ws.close_code)[0]

    async def _deliver(self, ws: aiohttp.ClientWebSocketResponse, dog: Watchdog) -> None:
        receive, clock, deliver = ws.receive, self.clock, self.receive
        turn = FRAMES_PER_TURN
        while True:
            message = await receive()
            if message.type not in DATA:
                return  # close, closing, closed or a transport error: all end this socket
            now = clock()
            if deliver(message.data, now):
                dog.last_traffic = now
            turn -= 1
            if not turn:
                turn = FRAMES_PER_TURN
                await asyncio.sleep(0)

    async def _ping(self) -> None:
        if self.ws is not None and self.ping is not None:
            await self.ws.send_str(self.ping)

    async def _silent(self) -> None:
        log.warning("%s: no message or heartbeat for %.0f s: replacing the socket", self.label, self.policy.silence)
        await self.close("heartbeat_timeout", 4000)

    async def close(self, reason: str, code: int = 1000) -> None:
        self.reason = reason
        if self.watcher is not None:
            self.watcher.cancel()
        await close_socket(self.ws, code, reason)


async def close_all(sockets: list[aiohttp.ClientWebSocketResponse | None], reason: str, wait: float = 1.0) -> None:
    """Shutdown: every socket gets its 1000 close frame at once; waiting for the server's answer is
    bounded, so a stop finishes within its budget even when a peer never answers."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait):
            await asyncio.gather(*(close_socket(ws, 1000, reason) for ws in sockets))


CONNECT_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError, aiohttp.ClientError, ConnectionError)
