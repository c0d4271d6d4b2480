"""`GET /api/v2/analytics/websocket`: the design document's stream, per the pinned protocol.

Each socket has one writer task fed by a queue, so that `publish()` can stay
synchronous (tests call it inline) while frames still leave in order, and a
close requested by a test goes out after the frames published before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from genesys_cloud_simulator.config import SimulatorConfig
from genesys_cloud_simulator.oauth import TokenStore
from genesys_cloud_simulator.subscription import (
    Subscription,
    SubscriptionError,
    parse_subscription,
    shape_event,
    utc_timestamp,
)

log = logging.getLogger("genesys_cloud_simulator")

WS_PATH = "/api/v2/analytics/websocket"
_CLOSE_HANDSHAKE_SECONDS = 3.0


@dataclass(slots=True, frozen=True)
class _Close:
    code: int
    reason: str


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _error(message: str) -> dict[str, str]:
    return {"type": "error", "code": "invalid_subscription", "message": message}


class _Socket:
    """One accepted WebSocket and what it subscribed to."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, token: str, number: int) -> None:
        self.ws = ws
        self.transport = request.transport
        self.token = token
        self.number = number
        self.subscription: Subscription | None = None
        self.closing = False  # no more events: a close or an abort is under way
        self.close_queued = False  # our close frame is waiting in (or leaving) the outbox
        self.told_expired = False
        self.done = asyncio.Event()
        self.last_activity = asyncio.get_running_loop().time()
        self._outbox: asyncio.Queue[str | _Close] = asyncio.Queue()
        self._heartbeat: asyncio.Task[None] | None = None

    def send(self, message: Mapping[str, Any]) -> None:
        self._outbox.put_nowait(json.dumps(message, separators=(",", ":")))

    def request_close(self, code: int, reason: str) -> None:
        if not self.closing:
            self.closing = True
            self.close_queued = True
            self._outbox.put_nowait(_Close(code, reason))

    def abort(self) -> None:
        """Cut the TCP connection with no close frame: the client sees 1006."""
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def subscribe(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self.stop_heartbeat()
        if subscription.heartbeat is not None:
            self._heartbeat = asyncio.create_task(self._beat(subscription.heartbeat))

    def unsubscribe(self) -> None:
        self.subscription = None
        self.stop_heartbeat()

    def stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None

    @property
    def wants_heartbeat(self) -> bool:
        return self._heartbeat is not None

    async def _beat(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            self.send({"type": "heartbeat", "timestamp": utc_timestamp()})
            due += interval

    async def write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await self._outbox.get()
            if isinstance(item, _Close):
                await self.ws.close(code=item.code, message=item.reason.encode())
                return
            try:
                await self.ws.send_str(item)
            except (ConnectionError, RuntimeError):
                return
            self.last_activity = loop.time()

    async def watch_idle(self, idle_seconds: float) -> None:
        """Close sockets with no heartbeat that stay silent: the document's inactivity trap."""
        loop = asyncio.get_running_loop()
        while not self.closing:
            await asyncio.sleep(min(1.0, idle_seconds / 4))
            if not self.wants_heartbeat and loop.time() - self.last_activity >= idle_seconds:
                log.info("socket #%d idle for %.1f s without heartbeat: closing", self.number, idle_seconds)
                self.request_close(1001, "idle timeout")


class AnalyticsWebSocketEndpoint:
    """All analytics sockets of one simulator, and the operations tests drive them with."""

    def __init__(self, config: SimulatorConfig, tokens: TokenStore) -> None:
        self._config = config
        self._tokens = tokens
        self._sockets: set[_Socket] = set()
        self.connections_accepted = 0
        self.upgrades_refused = 0
        self.subscribe_messages: list[dict[str, Any]] = []

    @property
    def open_sockets(self) -> int:
        return len(self._sockets)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        token = _bearer(request.headers.get("Authorization"))
        if token is None or not self._tokens.is_valid(token):
            self.upgrades_refused += 1
            log.info("websocket upgrade refused: missing, unknown or expired bearer token")
            return web.json_response(
                {"message": "Invalid or expired access token", "code": "bad.credentials", "status": 401},
                status=401,
            )

        ws = web.WebSocketResponse(timeout=_CLOSE_HANDSHAKE_SECONDS, autoclose=True, autoping=True)
        await ws.prepare(request)
        self.connections_accepted += 1
        sock = _Socket(ws, request, token, self.connections_accepted)
        self._sockets.add(sock)
        log.info("analytics socket #%d accepted from %s", sock.number, request.remote)
        writer = asyncio.create_task(sock.write_loop())
        watchdog = asyncio.create_task(sock.watch_idle(self._config.idle_close_seconds))
        try:
            async for msg in ws:
                sock.last_activity = asyncio.get_running_loop().time()
                if msg.type is WSMsgType.TEXT:
                    self._on_text(sock, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    sock.send(_error("expected a JSON text frame"))
                else:  # ERROR
                    break
        finally:
            self._sockets.discard(sock)
            sock.stop_heartbeat()
            watchdog.cancel()
            if sock.close_queued and not writer.done():
                # Let our own close handshake finish instead of cutting it short.
                await asyncio.wait({writer}, timeout=_CLOSE_HANDSHAKE_SECONDS + 1)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            sock.done.set()
            log.info("analytics socket #%d closed (code %s)", sock.number, ws.close_code)
        return ws

    def _on_text(self, sock: _Socket, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            message = None
        if isinstance(message, dict):
            self.subscribe_messages.append(message)
        try:
            subscription = parse_subscription(message, self._config.min_heartbeat_seconds)
        except SubscriptionError as exc:
            log.info("socket #%d subscription refused: %s", sock.number, exc)
            sock.unsubscribe()
            sock.send(_error(str(exc)))
            return
        sock.subscribe(subscription)
        log.info(
            "socket #%d subscribed: %d entries, heartbeat %s",
            sock.number,
            len(subscription.entries),
            subscription.heartbeat,
        )
        sock.send(subscription.ack())

    def publish(self, event: Mapping[str, Any]) -> int:
        """Send a conversation event to every socket whose subscription wants it; return how many."""
        stamped: dict[str, Any] = {"type": "conversation", "eventTime": utc_timestamp(), **event}
        sent = 0
        for sock in self._sockets:
            if sock.subscription is None or sock.closing:
                continue
            if not self._tokens.is_valid(sock.token):
                if not sock.told_expired:
                    sock.told_expired = True
                    log.info("socket #%d token expired: events now dropped silently", sock.number)
                continue
            shaped = shape_event(stamped, sock.subscription)
            if shaped is not None:
                sock.send(shaped)
                sent += 1
        return sent

    def send_raw(self, message: Mapping[str, Any]) -> int:
        """Send a message verbatim to every open socket, to test how clients treat odd frames."""
        for sock in self._sockets:
            sock.send(message)
        return len(self._sockets)

    async def close_all(self, code: int, reason: str) -> None:
        sockets = list(self._sockets)
        for sock in sockets:
            sock.request_close(code, reason)
        await self._wait_done(sockets)

    async def drop_all(self) -> None:
        sockets = list(self._sockets)
        for sock in sockets:
            sock.abort()
        await self._wait_done(sockets)

    @staticmethod
    async def _wait_done(sockets: list[_Socket]) -> None:
        if not sockets:
            return
        waiters = [asyncio.create_task(sock.done.wait()) for sock in sockets]
        _, pending = await asyncio.wait(waiters, timeout=_CLOSE_HANDSHAKE_SECONDS + 2)
        for waiter in pending:
            waiter.cancel()
