"""The exporter's HTTP face: /metrics, a landing page, and the /-/ health endpoints.

It runs on the same event loop as the stream, so a scrape reads the tracker
between two messages: no locks, no torn reads, no threads.
"""

from __future__ import annotations

import base64
import binascii
import html
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import bcrypt
from aiohttp import web
from prometheus_client import CollectorRegistry

from genesys_sentiment_exporter import __version__
from genesys_sentiment_exporter.metrics import CONTENT_TYPE, render


def build_app(
    registry: CollectorRegistry,
    telemetry_path: str,
    ready_reason: Callable[[], str | None],
    before_scrape: Callable[[], None] | None = None,
    basic_auth_users: dict[str, bytes] | None = None,
    conversation_url: Callable[[str], str | None] | None = None,
    mount: Callable[[web.Application], frozenset[str]] | None = None,
) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        if before_scrape is not None:
            before_scrape()
        response = web.Response(body=render(registry), headers={"Content-Type": CONTENT_TYPE})
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            # Prometheus asks for gzip; 10 000 agents are ~7 MB of text. aiohttp compresses large
            # bodies in a worker thread, so the stream's event loop is not held up by zlib.
            response.enable_compression(web.ContentCoding.gzip)
        return response

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
    middlewares: list[Any] = [_basic_auth(basic_auth_users, own_auth)] if basic_auth_users else []
    app = web.Application(middlewares=middlewares)
    if mount is not None:
        own_auth.update(mount(app))
    app.router.add_get("/", landing)
    app.router.add_get(telemetry_path, metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_get("/-/conversation/{agent_id}", conversation)
    return app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def _basic_auth(users: dict[str, bytes], own_auth: set[str] | None = None) -> Middleware:
    """Every path needs a user from the web config file (as exporter-toolkit does)."""
    verified: dict[tuple[str, str], bool] = {}  # bcrypt is slow by design; scrapes repeat credentials

    def allowed(header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = users.get(user)
        if hashed is None:
            return False
        key = (user, password)
        if key not in verified:
            if len(verified) > 64:
                verified.clear()
            verified[key] = bcrypt.checkpw(password.encode(), hashed)
        return verified[key]

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if own_auth and request.path in own_auth:
            return await handler(request)
        if not allowed(request.headers.get("Authorization", "")):
            return web.Response(
                status=401, text="Unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="exporter"'}
            )
        return await handler(request)

    return middleware


class WebServer:
    """An aiohttp site bound to one address; port 0 picks a free port (tests)."""

    def __init__(self, app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self.host = host or None
        self.port = port
        self.ssl_context = ssl_context

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None:
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        host = self.host or "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()
