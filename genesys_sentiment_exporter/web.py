"""The exporter's HTTP face: /metrics, a landing page, and the /-/ health endpoints.

It runs on the same event loop as the stream, so a scrape reads the tracker
between two messages: no locks, no torn reads, no threads. Because the stream
shares that loop, nothing a client does may hold it: bcrypt runs in a worker
thread, concurrent scrapers share one rendered (and one gzipped) page, scrapes
beyond `max_requests` are refused at once, connections are capped and time out
when idle or half-sent, and a reader too slow to take the page is cut off.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import html
import logging
import ssl
import time
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import bcrypt
from aiohttp import web
from prometheus_client import CollectorRegistry

from genesys_sentiment_exporter import __version__
from genesys_sentiment_exporter.metrics import CONTENT_TYPE, render_parts

log = logging.getLogger("exporter.web")

CHUNK = 64 * 1024  # written one drain at a time: a slow reader holds at most about this much of ours
GZIP_LEVEL = 6


@dataclass(frozen=True)
class WebLimits:
    """What one client may take: see the --web.* flags in config.py."""

    max_requests: int = 40  # concurrent scrapes; more are answered 503 at once (node_exporter's rule)
    max_connections: int = 512  # open connections; more are closed on accept
    read_timeout: float = 15.0  # a connection idle (or sending its headers) this long is closed
    write_timeout: float = 30.0  # a scraper that has not taken the page after this long is cut off
    shutdown_timeout: float = 0.5  # in-flight requests get this long (twice: finish, then cancel) at stop


class ScrapePage:
    """One rendered page shared by every scrape that overlaps another one still being sent.

    500 concurrent scrapers once meant 500 renders in a row on the stream's loop (11.4 s stalled)
    and 500 copies of the page (1.2 GB). A scrape that finds no other scrape in flight always
    renders afresh, so a lone Prometheus never reads an old page; an overlapping one reuses the
    page if it is younger than `max_age` (at least twice what rendering took).
    """

    def __init__(
        self, render_page: Callable[[], bytes | list[bytes]], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.render_page = render_page
        self.clock = clock
        self.body: list[bytes] = []  # the page in pieces, written one after the other (never joined)
        self.rendered_at = -1e18
        self.render_seconds = 0.0
        self.in_flight = 0
        self.renders = 0
        self._gzip: asyncio.Future[bytes] | None = None

    def current(self, max_age: float = 1.0) -> list[bytes]:
        now = self.clock()
        reuse = self.in_flight > 0 and now - self.rendered_at < max(max_age, 2 * self.render_seconds)
        if not reuse:
            page = self.render_page()
            self.body = [page] if isinstance(page, bytes) else page
            self.rendered_at = self.clock()
            self.render_seconds = self.rendered_at - now
            self.renders += 1
            self._gzip = None
        return self.body

    def release(self) -> None:
        """Let the page go once no scrape is sending it: a page only serves scrapes that overlap it
        (`current` reuses it only while one is in flight), and kept until the next scrape it would
        double the exporter's memory at scale (~80 MB at 100 000 agents, issue 13)."""
        if self.in_flight == 0:
            self.body = []
            self._gzip = None

    async def gzipped(self) -> bytes:
        """The current page compressed once, in a worker thread, for every scraper that asks."""
        if self._gzip is None:
            self._gzip = asyncio.ensure_future(asyncio.to_thread(_gzip, self.body, GZIP_LEVEL))
        return await asyncio.shield(self._gzip)


def _gzip(pieces: list[bytes], level: int) -> bytes:
    """One gzip member of the pieces, compressed piece by piece (zlib lets go of the GIL meanwhile)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    out = [compressor.compress(piece) for piece in pieces]
    out.append(compressor.flush())
    return b"".join(out)


def build_app(
    registry: CollectorRegistry,
    telemetry_path: str,
    ready_reason: Callable[[], str | None],
    before_scrape: Callable[[], None] | None = None,
    basic_auth_users: dict[str, bytes] | None = None,
    conversation_url: Callable[[str], str | None] | None = None,
    mount: Callable[[web.Application], frozenset[str]] | None = None,
    limits: WebLimits | None = None,
    prepare_scrape: Callable[[], Awaitable[None]] | None = None,
) -> web.Application:
    """`prepare_scrape` runs before a page is rendered, on the loop and yielding to it (the
    collector re-renders the agents that changed in slices), so the render itself only joins."""
    limits = limits or WebLimits()

    def render_page() -> list[bytes]:
        if before_scrape is not None:
            before_scrape()
        return render_parts(registry)

    page = ScrapePage(render_page)
    scrapes = {"in_flight": 0}

    async def metrics(request: web.Request) -> web.StreamResponse:
        if scrapes["in_flight"] >= limits.max_requests:
            return web.Response(
                status=503,
                text=f"Too many concurrent scrapes (--web.max-requests={limits.max_requests})\n",
                headers={"Retry-After": "1"},
            )
        scrapes["in_flight"] += 1
        try:
            if prepare_scrape is not None:
                await prepare_scrape()
            body: bytes | list[bytes] = page.current()
            page.in_flight += 1
            try:
                encoding = "gzip" if "gzip" in request.headers.get("Accept-Encoding", "") else ""
                if encoding:
                    body = await page.gzipped()
                return await _send(request, body, encoding, limits.write_timeout)
            finally:
                page.in_flight -= 1
                page.release()
        finally:
            scrapes["in_flight"] -= 1

    async def landing(_request: web.Request) -> web.Response:
        path = html.escape(telemetry_path)
        page = (
            "<!doctype html><html><head><title>Genesys sentiment exporter</title></head><body>"
            f"<h1>Genesys Cloud sentiment exporter</h1><p>version {html.escape(__version__)}</p><ul>"
            f'<li><a href="{path}">Metrics</a></li>'
            '<li><a href="/-/healthy">Health</a></li><li><a href="/-/ready">Readiness</a></li>'
            "</ul></body></html>"
        )
        return web.Response(text=page, content_type="text/html")

    async def healthy(_request: web.Request) -> web.Response:
        return web.Response(text="Healthy\n")

    async def ready(_request: web.Request) -> web.Response:
        reason = ready_reason()
        if reason is None:
            return web.Response(text="Ready\n")
        return web.Response(status=503, text=f"Not ready: {reason}\n")

    async def conversation(request: web.Request) -> web.Response:
        # Alerts link here, not to the call itself: a conversation id is never a label (unbounded),
        # so the exporter, which knows the agent's live call, redirects to it in Genesys Cloud.
        url = conversation_url(request.match_info["agent_id"]) if conversation_url is not None else None
        if url is None:
            return web.Response(status=404, text="No tracked conversation for this agent (the call has ended).\n")
        raise web.HTTPFound(url)

    # `mount` adds a source's own endpoints (AudioHook) and names those that authenticate themselves.
    own_auth: set[str] = set()
    middlewares: list[Any] = [BasicAuth(basic_auth_users, own_auth).middleware] if basic_auth_users else []
    app = web.Application(middlewares=middlewares)
    app[SCRAPE_PAGE] = page
    if mount is not None:
        own_auth.update(mount(app))
    app.router.add_get("/", landing)
    app.router.add_get(telemetry_path, metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_get("/-/conversation/{agent_id}", conversation)
    return app


async def _send(request: web.Request, body: bytes | list[bytes], encoding: str, timeout: float) -> web.StreamResponse:
    """Write the page in drained chunks; a reader slower than `timeout` loses its connection."""
    pieces = [body] if isinstance(body, bytes) else body
    response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE})
    if encoding:
        response.headers["Content-Encoding"] = encoding
    response.headers["Vary"] = "Accept-Encoding"
    response.content_length = sum(map(len, pieces))
    try:
        async with asyncio.timeout(timeout):
            await response.prepare(request)
            for piece in pieces:
                view = memoryview(piece)
                for start in range(0, len(piece), CHUNK):
                    await response.write(view[start : start + CHUNK])
            await response.write_eof()
    except TimeoutError:
        log.debug("a scraper took longer than %.0f s to read the page: connection closed", timeout)
        if request.transport is not None:
            request.transport.abort()
    except ConnectionError:
        pass  # the scraper went away
    return response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SCRAPE_PAGE = web.AppKey("scrape_page", ScrapePage)

SUCCESS_CACHE = 64  # (user, password digest) pairs verified recently; failures are never cached
MAX_PENDING_VERIFICATIONS = 32  # beyond this, unverified requests are refused at once (429)


def _cost(hashed: bytes) -> int:
    try:
        return max(4, min(31, int(hashed.split(b"$")[2])))
    except (IndexError, ValueError):
        return 12


class BasicAuth:
    """Every path needs a user from the web config file (as exporter-toolkit does).

    A wrong password for a real user once took 235 ms and an unknown user 0.6 ms, which told an
    attacker who exists; and bcrypt ran on the event loop, so 30 wrong passwords held a valid
    scrape (and the stream) for 7 s. Now every unverified attempt pays one bcrypt against the
    user's hash or a dummy of the same cost, in a worker thread, one at a time; a success is
    remembered (keyed by a digest, never the password) so Prometheus' repeated scrapes cost nothing
    and no flood of wrong passwords can evict it.
    """

    def __init__(self, users: dict[str, bytes], own_auth: set[str] | None = None) -> None:
        self.users = users
        self.own_auth = own_auth if own_auth is not None else set()  # paths that authenticate themselves
        cost = max((_cost(h) for h in users.values()), default=12)
        self.dummy = bcrypt.hashpw(b"no user has this password", bcrypt.gensalt(rounds=cost))
        self.verified: OrderedDict[tuple[str, bytes], None] = OrderedDict()
        self.verifications = 0  # bcrypt runs, known and unknown users alike
        self.pending = 0
        self._one_at_a_time: asyncio.Semaphore | None = None

    @staticmethod
    def _credentials(header: str) -> tuple[str, bytes] | None:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        return (user, password.encode()) if sep else None

    async def allowed(self, header: str) -> bool | None:
        """True or False; None when too many verifications are already waiting."""
        credentials = self._credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        key = (user, hashlib.sha256(password).digest())
        if key in self.verified:
            self.verified.move_to_end(key)
            return True
        if self.pending >= MAX_PENDING_VERIFICATIONS:
            return None
        hashed = self.users.get(user)
        if self._one_at_a_time is None:
            self._one_at_a_time = asyncio.Semaphore(1)  # bcrypt is CPU: one core for it is plenty
        self.pending += 1
        try:
            async with self._one_at_a_time:
                self.verifications += 1
                ok = await asyncio.to_thread(bcrypt.checkpw, password, hashed or self.dummy)
        finally:
            self.pending -= 1
        if not ok or hashed is None:
            return False
        self.verified[key] = None
        while len(self.verified) > SUCCESS_CACHE:
            self.verified.popitem(last=False)
        return True

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.own_auth and request.path in self.own_auth:
            return await handler(request)
        allowed = await self.allowed(request.headers.get("Authorization", ""))
        if allowed is None:
            return web.Response(status=429, text="Too many authentication attempts\n", headers={"Retry-After": "1"})
        if not allowed:
            return web.Response(
                status=401, text="Unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="exporter"'}
            )
        return await handler(request)


class WebServer:
    """An aiohttp site bound to one address; port 0 picks a free port (tests)."""

    def __init__(
        self,
        app: web.Application,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        limits: WebLimits | None = None,
    ) -> None:
        self.limits = limits or WebLimits()
        # keepalive_timeout also runs from the moment a connection opens until its request is
        # complete, so it closes idle and half-sent connections alike (aiohttp's default is an hour).
        self.runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            keepalive_timeout=self.limits.read_timeout,
            shutdown_timeout=self.limits.shutdown_timeout,
        )
        self.host = host or None
        self.port = port
        self.ssl_context = ssl_context
        self.refused_connections = 0

    async def start(self) -> None:
        await self.runner.setup()
        self._cap_connections()
        site = web.TCPSite(self.runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None:
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    def _cap_connections(self) -> None:
        """At most `max_connections` open: 1 100 idle ones once took every descriptor (the stream's too).

        Over the cap, the oldest connection waiting for a request (idle or half-sent) makes room, so
        a crowd of idle clients cannot lock Prometheus out; with none waiting, the new one is closed.
        """
        server = self.runner.server
        if server is None:
            return
        accept = server.connection_made
        limit = self.limits.max_connections

        def waiting(handler: Any) -> bool:
            waiter = getattr(handler, "_waiter", None)  # aiohttp's "no request yet" future
            return waiter is not None and not waiter.done()

        def connection_made(handler: Any, transport: asyncio.Transport) -> None:
            accept(handler, transport)
            if len(server.connections) <= limit:
                return
            self.refused_connections += 1
            victim = next((h for h in server.connections if h is not handler and waiting(h)), None)
            if victim is None:
                transport.abort()
            else:
                victim.force_close()

        server.connection_made = connection_made  # type: ignore[method-assign]

    @property
    def open_connections(self) -> int:
        server = self.runner.server
        return len(server.connections) if server is not None else 0

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        host = self.host or "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()
