"""The real platform's stream: Genesys Cloud Notifications API channels, topics and sockets.

Token -> `POST /api/v2/notifications/channels` -> WebSocket to the returned `connectUri` ->
subscriptions over REST. Every decision is `NotificationsSession`'s (notifications_session.py);
this asyncio shell owns the sockets, timers and REST calls, and does what the session says.

Each slot (a channel of up to 1000 topics) is one `stream.Stream`: the shared loop replaces its
channel make-before-break on `v2.system.socket_closing`, a new token, before `expires`, and on a
HEAD 404. What is this source's own: channels and subscriptions over REST, the HEAD probe, and
after an unplanned socket loss, back to the same channel while HEAD says it exists, else a new one.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial

import httpx
from prometheus_client.core import Metric

from genesys_sentiment_exporter.analysis import UtteranceAnalyzer
from genesys_sentiment_exporter.backoff import delays
from genesys_sentiment_exporter.catalogue import Outcome
from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.oauth import Token, TokenManager
from genesys_sentiment_exporter.sources import notifications_protocol as proto
from genesys_sentiment_exporter.sources import supervisor as sup
from genesys_sentiment_exporter.sources.notifications_rest import PlatformRest, RestError
from genesys_sentiment_exporter.sources.notifications_session import (
    Action,
    ChannelInfo,
    NotificationsSession,
    Rollover,
    SessionError,
    apply,
    refused_permissions,
)
from genesys_sentiment_exporter.sources.stream import Stream, Streams
from genesys_sentiment_exporter.stream_state import StreamState

log = logging.getLogger("exporter.source.notifications")

SWEEP_SECONDS = 0.25
REFUSED_BACKOFF = (2.0, 300.0)  # seconds: first retry of refused base topics, and the cap
ERRORS: tuple[type[BaseException], ...] = (RestError, SessionError, httpx.HTTPError, *sup.CONNECT_ERRORS)


@dataclass(eq=False)
class Channel:
    info: ChannelInfo
    token: Token
    socket: sup.Socket


class Slot(Stream[Channel]):
    """One channel of up to 1000 topics, supervised by the shared loop; `_sync` keeps its topics."""

    def __init__(self, source: NotificationsSource, index: int) -> None:
        super().__init__(source.streams)
        self.source, self.index, self.label = source, index, f"channel {index}"
        self.dirty = asyncio.Event()
        self.lock = asyncio.Lock()
        self.refusals: Iterator[float] | None = None  # while the base topics are refused: when to ask again

    @property
    def ready(self) -> bool:
        """Not while its base topics are refused and no channel has one: nothing could be attributed."""
        return self.is_open and (self.refusals is None or self.source.base_subscribed())

    def deadline(self) -> float | None:
        at = self.source.session.rollover_at(self.index)
        return None if at is None else max(0.0, at - self.source.wall())

    async def open(self) -> Channel:
        source = self.source
        async with self.lock:
            self.conn = channel = await sup.with_retry(
                lambda: source.new_channel(self), ERRORS, delays(0.5, 30.0), lambda exc: source.failed(self, exc)
            )
            source.session.channel_ready(channel.info)
        log.info("channel %d open with %d topics", self.index, len(source.session.slots[self.index].subscribed))
        return channel

    async def reopen(self, channel: Channel) -> Channel | None:
        """Back to the same channel while it exists (HEAD), else None: a new one."""
        retry = delays(0.2, 30.0)
        while True:
            try:
                if not await self.source.alive(channel):
                    return None
                await self.source.connect(channel)
                return channel
            except ERRORS as exc:
                self.source.failed(self, exc)
            await asyncio.sleep(next(retry))


class NotificationsSource:
    """Feeds `Ingest` from Notifications API channels until cancelled."""

    name = "notifications"

    def __init__(
        self,
        *,
        api_base_url: str,
        tokens: TokenManager,
        ingest: Ingest,
        stream: StreamState,
        http: httpx.AsyncClient,
        queue_ids: list[str],
        agent_ids: list[str],
        grace_seconds: float = 5.0,
        idle_seconds: float = 900.0,
        sentiment_scale: proto.ScaleSetting = "auto",
        max_channels: int = 20,
        topics_per_channel: int = 1000,
        requests_per_minute: int = 300,
        probe_seconds: float = 60.0,
        heartbeat_seconds: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        analyzer: UtteranceAnalyzer | None = None,
        score_parties: frozenset[str] = frozenset({"customer"}),
        postcall_hold_seconds: float = 600.0,
    ) -> None:
        self.session = NotificationsSession(
            queue_ids=queue_ids,
            agent_ids=agent_ids,
            grace_seconds=grace_seconds,
            idle_seconds=idle_seconds,
            sentiment_scale=sentiment_scale,
            max_channels=max_channels,
            topics_per_channel=topics_per_channel,
            analyzer=analyzer,
            score_parties=score_parties,
            postcall_hold_seconds=postcall_hold_seconds,
        )
        self.tokens, self.ingest, self.stream = tokens, ingest, stream
        self.rest = PlatformRest(api_base_url, http, tokens, requests_per_minute)
        self.dialer = sup.Dialer(ssl_context)
        self.probe_seconds = probe_seconds
        self.watchdog = sup.WatchdogPolicy(2.5 * heartbeat_seconds, heartbeat_seconds * 1.2)
        self.wall, self.clock = wall, clock
        self.streams: Streams[Channel] = Streams("notifications", stream, tokens, self.dialer, self.session.dedup)
        self.slots: list[Slot] = []
        self.live = self.streams.live

    def _act(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Rollover):
                self._slot(action.slot).request(action.reason)
            else:
                self._slot(action.slot).dirty.set()

    def _slot(self, index: int) -> Slot:
        while len(self.slots) <= index:
            slot = Slot(self, len(self.slots))
            self.slots.append(slot)
            self.streams.add(slot)
            self.streams.spawn(self._sync(slot), f"sync-{slot.index}")
        return self.slots[index]

    # -- topics --------------------------------------------------------------------------------------
    async def _subscriptions(self, slot: Slot, channel: Channel, method: str, topics: list[str]) -> None:
        # ignoreErrors=true: the platform answers each topic Permitted/Rejected instead of failing the whole
        # request for one refused topic (what the official SDKs send).
        path = f"{proto.CHANNELS_PATH}/{channel.info.id}/subscriptions?ignoreErrors=true"
        try:
            body = await self.rest.json(method, path, [{"id": t} for t in topics])
        except RestError as exc:
            if not 400 <= exc.status < 500 or exc.status in (401, 404, 408, 429):
                raise  # transient, or the channel is gone: retried, or a new channel
            self._refused(slot, method, topics, exc)
            return
        self.session.subscriptions_answered(slot.index, method, body, topics)
        if any(t in self.session.base_topics for t in topics):
            slot.refusals = None
            self.streams.changed()

    def _refused(self, slot: Slot, method: str, topics: list[str], exc: RestError) -> None:
        """A 4xx is the platform's answer, not a failure: rejected and counted, never a new channel. Refused
        base topics are asked for again on this channel (`_sync`), on a slow capped backoff."""
        base = self.session.subscriptions_refused(slot.index, method, topics, exc.status, str(exc), exc.body)
        missing = ", ".join(refused_permissions(exc.body)) or "none named"
        named = ", ".join(topics[:3]) + (f" and {len(topics) - 3} more" if len(topics) > 3 else "")
        log.warning(
            "channel %d: %s of %s refused with HTTP %d (missing permissions: %s)%s",
            slot.index,
            method,
            named,
            exc.status,
            missing,
            "; asking again on the same channel" if base else "",
        )
        if base:
            slot.refusals = slot.refusals or delays(*REFUSED_BACKOFF)
            self.stream.last_error = f"channel {slot.index}: base topics refused with HTTP {exc.status}: {exc}"
            slot.dirty.set()
            self.streams.changed()

    def base_subscribed(self) -> bool:
        base = self.session.base_topics
        return any(t in s.subscribed for s in self.session.slots for t in base)

    async def _sync(self, slot: Slot) -> None:
        """Bring the slot's channel to the planned topics."""
        while True:
            await slot.dirty.wait()
            if slot.refusals is not None:  # the base topics were refused: ask again later, the same PUT
                await asyncio.sleep(next(slot.refusals))
            slot.dirty.clear()
            async with slot.lock:
                request = (
                    ("PUT", self.session.planned(slot.index))
                    if slot.refusals is not None
                    else self.session.sync_request(slot.index)
                )
                if slot.conn is None or request is None:
                    continue
                try:
                    await self._subscriptions(slot, slot.conn, *request)
                except (RestError, SessionError, httpx.HTTPError) as exc:
                    log.warning("channel %d: updating subscriptions failed (%s); retrying", slot.index, exc)
                    await asyncio.sleep(1.0)
                    slot.dirty.set()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self._act(self.session.sweep(self.clock()))

    # -- channels -------------------------------------------------------------------------------------
    async def new_channel(self, slot: Slot) -> Channel:
        """New channel, its socket (read from the start), and the slot's topics on it."""
        token = await self.tokens.current()
        created = await self.rest.json("POST", proto.CHANNELS_PATH, ok=(200, 201))
        info = self.session.channel_created(slot.index, created, self.wall())
        receive = partial(self._frame, info)
        socket = sup.Socket(self.dialer, self.watchdog, self.clock, receive, proto.PING, slot.label)
        channel = Channel(info, token, socket)
        await self.connect(channel)
        try:
            await self._subscriptions(slot, channel, "PUT", self.session.planned(slot.index))
        except BaseException:
            await self.streams.close(channel, "failed")
            raise
        return channel

    async def connect(self, channel: Channel) -> None:
        await channel.socket.connect(channel.info.uri)
        channel.socket.start()
        self.stream.connects += 1

    def _frame(self, info: ChannelInfo, frame: str | bytes, now: float) -> bool:
        wall = self.stream.last_message = self.wall()
        got = self.session.receive(frame, info.number, now, wall)
        if got.outcome is Outcome.HEARTBEAT:
            self.stream.last_heartbeat = wall
        self._act(got.actions)
        apply(self.ingest, got)
        return got.traffic

    async def alive(self, channel: Channel) -> bool:
        response = await self.rest.request("HEAD", f"{proto.CHANNELS_PATH}/{channel.info.id}")
        return response.status_code != 404

    def failed(self, slot: Slot, exc: BaseException) -> str:
        self.stream.last_error = f"channel {slot.index}: {type(exc).__name__}: {exc}"
        return self.stream.last_error

    async def _probe(self) -> None:
        """HEAD each channel now and then: 404 means the platform dropped it (expiry, eviction)."""
        while True:
            await asyncio.sleep(self.probe_seconds)
            for slot in list(self.slots):
                channel = slot.conn
                if channel is None:
                    continue
                try:
                    alive = await self.alive(channel)
                except (RestError, httpx.HTTPError) as exc:
                    log.debug("channel probe failed: %s", exc)
                    continue
                if not alive:
                    self._act(self.session.channel_gone(slot.index, channel.info.number))

    # -- life ------------------------------------------------------------------------------------------
    async def run(self) -> None:
        def start() -> None:
            for index in self.session.start():
                self._slot(index)
            self.streams.spawn(self._sweep(), "sweep")
            self.streams.spawn(self._probe(), "probe")

        await self.streams.run(start)

    def metrics(self) -> Iterable[Metric]:
        return self.session.metrics(sum(1 for s in self.slots if s.is_open), self.rest.results)

    def subscription_report(self) -> list[tuple[bool, str, str]]:
        return self.session.subscription_report()
