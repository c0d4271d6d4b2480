"""The Notifications API of the simulated Genesys Cloud: channels, subscriptions, `connectUri` sockets.

Per shared/genesys-platform-notes.md and the SDK's NotificationsApi: `POST /api/v2/notifications/channels`
(20 per client; the 21st evicts the oldest unused), `GET .../channels` (`includechannels=token|oauthclient`),
`GET|POST|PUT|DELETE .../channels/{id}/subscriptions` (1000 topics per channel; refusals and the
`ignoreErrors` flag as topics.py describes), `HEAD .../channels/{id}`,
`GET /api/v2/notifications/availabletopics` (`expand=requiresPermissions,description`),
`GET /api/v2/users/{id}`, and one WebSocket per channel at its `connectUri` with heartbeats, ping/pong,
`v2.system.socket_closing` followed by a close, and channel expiry (`config.channel_lifetime_seconds`,
compressible). REST answers omit unset fields (topics.compact).

Token expiry: the platform notes say a channel dies when the token that created it expires ("what the
socket sees at that moment is unconfirmed"). The simulator makes it die the way its other channel
deaths (expiry, eviction) do: the channel is deleted (HEAD answers 404) and its socket is closed with
`TOKEN_EXPIRED_CLOSE` (1000), at the expiry sweep or at the first event published to it after the
token expired, whichever comes first; counted in `channels_token_expired` and logged. It never keeps
a socket open that silently stops getting events: a client could not tell that from a quiet hour.
(The analytics stream is different on purpose: its protocol says it goes silent, analytics_ws.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import WSMsgType, web

from genesys_cloud_simulator import topics as topic_rules
from genesys_cloud_simulator.config import SimulatorConfig
from genesys_cloud_simulator.notifications_conversations import ConversationBook
from genesys_cloud_simulator.oauth import TokenStore
from genesys_cloud_simulator.scenarios import CallEvent
from genesys_cloud_simulator.transcripts import TranscriptBook, TranscriptSettings

log = logging.getLogger("genesys_cloud_simulator")

CHANNELS = "/api/v2/notifications/channels"
SOCKET_PREFIX = "/streaming/channels/"

TRANSCRIPT_TICK_SECONDS = 0.1
TOKEN_EXPIRED_CLOSE = 1000  # the close a channel's socket gets when its token expires (module docstring)
ENDING = frozenset({"wrapup", "ended", "disconnected", "terminated"})


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class _Channel:
    def __init__(self, channel_id: str, token: str, lifetime: float, loop: asyncio.AbstractEventLoop) -> None:
        self.id = channel_id
        self.token = token
        self.expires_at = loop.time() + lifetime
        self.expires = _iso(datetime.now(UTC) + timedelta(seconds=lifetime))
        self.topics: dict[str, None] = {}
        self.socket: _Socket | None = None
        self.used = False  # ever had a socket
        self.connect_uri = ""


class _Socket:
    def __init__(self, ws: web.WebSocketResponse, channel: _Channel) -> None:
        self.ws = ws
        self.channel = channel
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.close_code = 1000
        self.done = asyncio.Event()

    def send(self, text: str) -> None:
        self.outbox.put_nowait(text)

    def close(self, code: int = 1000) -> None:
        self.close_code = code
        self.outbox.put_nowait(None)

    async def write_loop(self) -> None:
        while True:
            item = await self.outbox.get()
            if item is None:
                await self.ws.close(code=self.close_code)
                return
            try:
                await self.ws.send_str(item)
            except (ConnectionError, RuntimeError):
                return


class NotificationsEndpoint:
    """Channels of one simulated org (one OAuth client) and the operations tests drive them with."""

    def __init__(self, config: SimulatorConfig, tokens: TokenStore) -> None:
        self.config = config
        self._tokens = tokens
        self.channels: dict[str, _Channel] = {}  # insertion order = creation order
        scale = 100.0 if config.sentiment_scale == "percent" else 1.0
        self.book = ConversationBook(scale, live_sentiment=config.live_sentiment_topic)
        speed = config.speed
        self.transcripts = TranscriptBook(
            TranscriptSettings(
                batch_seconds=config.transcript_batch_seconds / speed,
                partials=config.transcript_partials,
                keepalive_seconds=config.transcript_keepalive_seconds / speed,
                postcall_seconds=config.postcall_sentiment_seconds / speed,
                speech_scale=1.0 / speed,
            ),
            scale,
        )
        self.wall = time.time
        self.channels_created = 0
        self.channels_evicted = 0
        self.channels_token_expired = 0  # channels that died because the token that created them expired
        self.subscription_requests: list[tuple[str, str, list[str]]] = []  # (method, channel, topics)
        self.rejections = 0
        self.messages_sent = 0
        self.close_codes: list[int | None] = []  # how the exporter closed each socket (None: no close frame)
        self.queue_body: Callable[[str], dict[str, Any]] = lambda q: {"id": q, "name": q}  # the org's (server.py)
        self._tasks: list[asyncio.Task[None]] = []

    # -- wiring ----------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(CHANNELS, self._create)
        app.router.add_get(CHANNELS, self._list, allow_head=False)
        app.router.add_route("HEAD", CHANNELS + "/{id}", self._head)
        subs = CHANNELS + "/{id}/subscriptions"
        app.router.add_get(subs, self._subscriptions, allow_head=False)
        app.router.add_post(subs, self._subscriptions)
        app.router.add_put(subs, self._subscriptions)
        app.router.add_delete(subs, self._subscriptions)
        app.router.add_get("/api/v2/notifications/availabletopics", self._available)
        app.router.add_get("/api/v2/users/{id}", self._user)
        app.router.add_get("/api/v2/routing/queues/{id}", self._queue)
        app.router.add_get(SOCKET_PREFIX + "{id}", self._socket)

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._expire_loop()))
        self._tasks.append(asyncio.create_task(self._transcript_loop()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self._close_sockets([c for c in self.channels.values() if c.socket is not None], 1001)

    # -- REST -------------------------------------------------------------------------------------
    def _auth(self, request: web.Request) -> str:
        token = _bearer(request)
        if token is None or not self._tokens.is_valid(token):
            raise web.HTTPUnauthorized(
                text=json.dumps(
                    {"message": "Invalid or expired access token", "code": "bad.credentials", "status": 401}
                ),
                content_type="application/json",
            )
        return token

    async def _create(self, request: web.Request) -> web.Response:
        token = self._auth(request)
        loop = asyncio.get_running_loop()
        while len(self.channels) >= self.config.max_channels:
            unused = [c for c in self.channels.values() if c.socket is None]
            victim = (unused or list(self.channels.values()))[0]
            log.info("channel limit reached: evicting channel %s", victim.id)
            self.channels_evicted += 1
            self.delete_channel(victim.id, close_socket=True)
        channel_id = "streaming-0-" + secrets.token_hex(12)
        channel = _Channel(channel_id, token, self.config.channel_lifetime_seconds, loop)
        self.channels[channel_id] = channel
        self.channels_created += 1
        channel.connect_uri = f"ws://{request.host}{SOCKET_PREFIX}{channel_id}"
        return web.json_response({"connectUri": channel.connect_uri, "id": channel_id, "expires": channel.expires})

    def _channel(self, request: web.Request) -> _Channel:
        channel = self.channels.get(request.match_info["id"])
        if channel is None:
            raise web.HTTPNotFound(
                text=json.dumps({"message": "channel not found", "code": "not.found", "status": 404}),
                content_type="application/json",
            )
        return channel

    async def _head(self, request: web.Request) -> web.Response:
        self._auth(request)
        self._channel(request)
        return web.Response(status=200)

    def _judge(self, topic: str) -> dict[str, Any]:
        judged = topic_rules.judge(self.config, topic)
        if judged["state"] != "Permitted":
            self.rejections += 1
        return judged

    async def _list(self, request: web.Request) -> web.Response:
        """`ChannelEntityListing`: this token's channels, or (`oauthclient`) every channel of the OAuth
        client, those of other tokens without their id or `connectUri` ("presented to show their
        existence", as the SDK documents)."""
        token = self._auth(request)
        scope = request.query.get("includechannels", "token")
        if scope not in ("token", "oauthclient"):
            return _error(400, "bad.request", f"includechannels must be token or oauthclient, not {scope!r}")
        entities: list[dict[str, Any]] = []
        for channel in self.channels.values():
            if channel.token == token:
                entities.append({"connectUri": channel.connect_uri, "id": channel.id, "expires": channel.expires})
            elif scope == "oauthclient":
                entities.append({"expires": channel.expires})
        return web.json_response({"entities": entities})

    async def _subscriptions(self, request: web.Request) -> web.Response:
        self._auth(request)
        channel = self._channel(request)
        method = request.method
        topics: list[str] = []
        if method in ("POST", "PUT"):
            try:
                body = await request.json()
            except ValueError:
                body = None
            valid = isinstance(body, list) and all(isinstance(t, dict) and isinstance(t.get("id"), str) for t in body)
            if not valid or not isinstance(body, list):
                return _error(400, "bad.request", 'expected [{"id": topic}]')
            topics = [t["id"] for t in body]
        self.subscription_requests.append((method, channel.id, topics))
        if method == "GET":
            return web.json_response({"entities": [{"id": t, "state": "Permitted"} for t in channel.topics]})
        if method == "DELETE":
            channel.topics.clear()
            return web.Response(status=200)
        judged = [self._judge(t) for t in topics]
        permitted = [e["id"] for e in judged if e["state"] == "Permitted"]
        refused = [e for e in judged if e["state"] != "Permitted"]
        if refused and request.query.get("ignoreErrors", "").lower() != "true":
            return web.json_response(topic_rules.refusal_error(refused), status=400)
        new = dict.fromkeys(permitted) if method == "PUT" else {**channel.topics, **dict.fromkeys(permitted)}
        if len(new) > self.config.max_topics_per_channel:
            return _error(
                400,
                "notification.subscription.limit",
                f"a channel holds at most {self.config.max_topics_per_channel} topics",
            )
        channel.topics = new
        return web.json_response({"entities": judged})

    async def _available(self, request: web.Request) -> web.Response:
        self._auth(request)
        expand = topic_rules.expansions(request.query.getall("expand", []))
        return web.json_response({"entities": topic_rules.available(self.config, expand)})

    async def _user(self, request: web.Request) -> web.Response:
        self._auth(request)
        user_id = request.match_info["id"]
        if "users" in self.config.forbidden_names:
            return _missing_permission("directory:user:view")
        return web.json_response({"id": user_id, "name": f"Agent {user_id}", "state": "active"})

    async def _queue(self, request: web.Request) -> web.Response:
        self._auth(request)
        queue_id = request.match_info["id"]
        if "queues" in self.config.forbidden_names or "routing:queue:view" in self.config.forbidden_permissions:
            return _missing_permission("routing:queue:view")
        return web.json_response(self.queue_body(queue_id))

    # -- sockets -------------------------------------------------------------------------------------
    async def _socket(self, request: web.Request) -> web.StreamResponse:
        channel = self._channel(request)
        if channel.socket is not None:
            channel.socket.close(1000)  # one WebSocket per channel: the newer one wins
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        sock = _Socket(ws, channel)
        channel.socket = sock
        channel.used = True
        writer = asyncio.create_task(sock.write_loop())
        beat = asyncio.create_task(self._heartbeat(sock))
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    with contextlib.suppress(ValueError):
                        data = json.loads(msg.data)
                        if isinstance(data, dict) and data.get("message") == "ping":
                            sock.send(self._envelope("channel.metadata", {"message": "pong"}))
                elif msg.type is WSMsgType.ERROR:
                    break
        finally:
            self.close_codes.append(ws.close_code)
            beat.cancel()
            if channel.socket is sock:
                channel.socket = None
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(writer, 1.0)
            writer.cancel()
            sock.done.set()
        return ws

    async def _heartbeat(self, sock: _Socket) -> None:
        while True:
            await asyncio.sleep(self.config.notifications_heartbeat_seconds)
            if sock.channel.id in self.channels:  # a deleted channel falls silent
                sock.send(self._envelope("channel.metadata", {"message": "WebSocket Heartbeat"}))

    @staticmethod
    def _envelope(topic: str, body: Mapping[str, Any]) -> str:
        return json.dumps(
            {"topicName": topic, "version": "2", "eventBody": body, "metadata": {"CorrelationId": str(uuid.uuid4())}},
            separators=(",", ":"),
        )

    async def _expire_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self.config.channel_lifetime_seconds / 20))
            for channel in list(self.channels.values()):
                if loop.time() >= channel.expires_at:
                    log.info("channel %s expired", channel.id)
                    self.delete_channel(channel.id, close_socket=True)
                elif not self._tokens.is_valid(channel.token):
                    self._token_expired(channel)

    def _token_expired(self, channel: _Channel) -> None:
        """The channel dies with its token (module docstring)."""
        self.channels_token_expired += 1
        log.info(
            "channel %s: its token expired: channel deleted, socket closed with %d", channel.id, TOKEN_EXPIRED_CLOSE
        )
        self.channels.pop(channel.id, None)
        if channel.socket is not None:
            channel.socket.close(TOKEN_EXPIRED_CLOSE)

    async def _close_sockets(self, channels: list[_Channel], code: int) -> None:
        sockets = [c.socket for c in channels if c.socket is not None]
        for sock in sockets:
            sock.close(code)
        if sockets:
            await asyncio.wait([asyncio.create_task(s.done.wait()) for s in sockets], timeout=3.0)

    # -- control methods (tests, demo) ---------------------------------------------------------------
    def publish(self, topic: str, body: Mapping[str, Any]) -> int:
        """Deliver one event to every channel subscribed to `topic` (same frame to each); how many."""
        text = self._envelope(topic, body)
        sent = 0
        dead: list[_Channel] = []
        for channel in self.channels.values():
            sock = channel.socket
            if sock is None or topic not in channel.topics:
                continue
            if not self._tokens.is_valid(channel.token):
                dead.append(channel)  # not a silent skip: the channel dies now, before the sweep sees it
                continue
            sock.send(text)
            sent += 1
        for channel in dead:
            self._token_expired(channel)
        self.messages_sent += sent
        return sent

    def publish_call(self, event: CallEvent) -> int:
        """A scenario event: conversation topics now; what is said goes into the call's transcript."""
        now = self.wall()
        messages = self.book.apply(event)
        book = self.transcripts
        if event.transition and event.state == "connected":
            messages += book.connected(event.conversation_id, event.queue_id, now)
        elif event.transition and event.state in ENDING:
            messages += book.call_ended(event.conversation_id, now)
        elif not event.transition:
            messages += book.customer_said(event.conversation_id, event.score, now, text=event.sentiment)
        return sum(self.publish(topic, body) for topic, body in messages)

    def say(self, conversation_id: str, party: str, text: str, *, final: bool = True) -> int:
        """Publish one utterance of a live call's transcript now (party customer or agent), unbatched."""
        channel = {"customer": "EXTERNAL", "agent": "INTERNAL"}.get(party, party)
        message = self.transcripts.say(conversation_id, channel, text, self.wall(), final=final)
        return 0 if message is None else self.publish(*message)

    def publish_transcripts_due(self) -> int:
        return sum(self.publish(topic, body) for topic, body in self.transcripts.due(self.wall()))

    async def _transcript_loop(self) -> None:
        while True:
            await asyncio.sleep(TRANSCRIPT_TICK_SECONDS)
            self.publish_transcripts_due()

    def transfer(self, conversation_id: str, to_agent: str, to_queue: str | None = None) -> int:
        return sum(self.publish(t, b) for t, b in self.book.transfer(conversation_id, to_agent, to_queue))

    def subscribed(self, topic: str) -> bool:
        return any(topic in c.topics and c.socket is not None for c in self.channels.values())

    def topic_count(self) -> int:
        return sum(len(c.topics) for c in self.channels.values())

    @property
    def open_sockets(self) -> int:
        return sum(1 for c in self.channels.values() if c.socket is not None)

    def socket_closing(self, close_after: float | None = None) -> None:
        """Announce maintenance on every socket, then close each after `close_after` seconds."""
        delay = self.config.socket_closing_seconds if close_after is None else close_after
        for channel in list(self.channels.values()):
            sock = channel.socket
            if sock is None:
                continue
            sock.send(self._envelope("v2.system.socket_closing", {"message": "socket closing"}))
            asyncio.get_running_loop().call_later(delay, sock.close, 1001)

    def delete_channel(self, channel_id: str | None = None, close_socket: bool = False) -> str:
        """The channel is gone (HEAD -> 404). By default its socket stays open but silent."""
        channel = self.channels.pop(channel_id or next(iter(self.channels)))
        if close_socket and channel.socket is not None:
            channel.socket.close(1000)
        return channel.id


def _error(status: int, code: str, message: str) -> web.Response:
    """An `ErrorBody` (message, code, status), as every platform error answer carries."""
    return web.json_response({"message": message, "code": code, "status": status}, status=status)


def _missing_permission(permission: str) -> web.Response:
    """The platform's 403 body shape (code missing.permissions, messageParams)."""
    return web.json_response(
        {
            "status": 403,
            "code": "missing.permissions",
            "message": f"You are missing the following permission(s): {permission}",
            "messageParams": {"missingPermissions": permission},
        },
        status=403,
    )
