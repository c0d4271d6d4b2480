"""The real platform's stream: Genesys Cloud Notifications API channels, topics and sockets.

Token -> `POST /api/v2/notifications/channels` -> WebSocket to the returned `connectUri` ->
subscriptions over REST. Every decision is `NotificationsSession`'s (notifications_session.py);
this asyncio shell owns the sockets, timers and REST calls, and does what the session says.

Each slot (a channel of up to 1000 topics) has a supervising task, the only one that reconnects
it. It replaces its channel make-before-break on `v2.system.socket_closing`, a new token, before
`expires`, and on a HEAD 404; an unplanned socket loss reconnects to the same channel while HEAD
says it exists, else to a new one.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

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
)
from genesys_sentiment_exporter.stream_state import StreamState

log = logging.getLogger("exporter.source.notifications")

OVERLAP_SECONDS = 2.0
SWEEP_SECONDS = 0.25
ERRORS: tuple[type[BaseException], ...] = (RestError, SessionError, httpx.HTTPError, *sup.CONNECT_ERRORS)


@dataclass(eq=False)
class Channel:
    info: ChannelInfo
    token: Token
    socket: sup.Socket


class Slot:
    def __init__(self, index: int) -> None:
        self.index = index
        self.channel: Channel | None = None
        self.requests: asyncio.Queue[str] = asyncio.Queue()
        self.dirty = asyncio.Event()
        self.lock = asyncio.Lock()


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
        self.slots: list[Slot] = []
        self.live: set[Channel] = set()
        self._group: asyncio.TaskGroup | None = None

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        assert self._group is not None
        self._group.create_task(coro, name=f"notifications-{name}")

    def _act(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Rollover):
                self._slot(action.slot).requests.put_nowait(action.reason)
            else:
                self._slot(action.slot).dirty.set()

    def _slot(self, index: int) -> Slot:
        while len(self.slots) <= index:
            slot = Slot(len(self.slots))
            self.slots.append(slot)
            self._spawn(self._supervise(slot), f"channel-{slot.index}")
            self._spawn(self._sync(slot), f"sync-{slot.index}")
        return self.slots[index]

    # -- topics --------------------------------------------------------------------------------------
    async def _subscriptions(self, slot: Slot, channel: Channel, method: str, topics: list[str]) -> None:
        # ignoreErrors=true: the platform answers each topic Permitted/Rejected instead of failing the whole
        # request for one refused topic (what the official SDKs send).
        path = f"{proto.CHANNELS_PATH}/{channel.info.id}/subscriptions?ignoreErrors=true"
        try:
            body = await self.rest.json(method, path, [{"id": t} for t in topics])
        except RestError as exc:
            # Per-call topics: a refusal is final for them (rejected, counted, not asked again). A request
            # that carries the base topics is retried as before: without them nothing can be attributed.
            per_call = not any(t in self.session.base_topics for t in topics)
            if per_call and 400 <= exc.status < 500 and exc.status not in (401, 404, 408, 429):
                log.warning(
                    "channel %d: %s %d topics refused with HTTP %d", slot.index, method, len(topics), exc.status
                )
                self.session.subscriptions_refused(slot.index, method, topics, exc.status, str(exc))
                return
            raise
        self.session.subscriptions_answered(slot.index, method, body, topics)

    async def _sync(self, slot: Slot) -> None:
        """Bring the slot's channel to the planned topics."""
        while True:
            await slot.dirty.wait()
            slot.dirty.clear()
            async with slot.lock:
                request = self.session.sync_request(slot.index)
                if slot.channel is None or request is None:
                    continue
                try:
                    await self._subscriptions(slot, slot.channel, *request)
                except (RestError, SessionError, httpx.HTTPError) as exc:
                    log.warning("channel %d: updating subscriptions failed (%s); retrying", slot.index, exc)
                    await asyncio.sleep(1.0)
                    slot.dirty.set()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self._act(self.session.sweep(self.clock()))

    # -- channels -------------------------------------------------------------------------------------
    async def _open(self, slot: Slot) -> Channel:
        """New channel, its socket (read from the start), and the slot's topics on it."""
        token = await self.tokens.current()
        created = await self.rest.json("POST", proto.CHANNELS_PATH, ok=(200, 201))
        info = self.session.channel_created(slot.index, created, self.wall())
        channel = Channel(
            info,
            token,
            sup.Socket(
                self.dialer,
                self.watchdog,
                self.clock,
                lambda f, now: self._frame(info, f, now),
                proto.PING,
                f"channel {slot.index}",
            ),
        )
        await self._connect(channel)
        try:
            await self._subscriptions(slot, channel, "PUT", self.session.planned(slot.index))
        except BaseException:
            await self._close(channel, "failed")
            raise
        return channel

    async def _connect(self, channel: Channel) -> None:
        await channel.socket.connect(channel.info.uri)
        channel.socket.start()
        self.live.add(channel)
        self.stream.connects += 1

    def _frame(self, info: ChannelInfo, frame: str | bytes, now: float) -> bool:
        wall = self.stream.last_message = self.wall()
        got = self.session.receive(frame, info.number, now, wall)
        if got.outcome is Outcome.HEARTBEAT:
            self.stream.last_heartbeat = wall
        self._act(got.actions)
        apply(self.ingest, got)
        return got.traffic

    async def _close(self, channel: Channel, reason: str) -> None:
        self.live.discard(channel)
        await channel.socket.close(reason)

    async def _alive(self, channel: Channel) -> bool:
        response = await self.rest.request("HEAD", f"{proto.CHANNELS_PATH}/{channel.info.id}")
        return response.status_code != 404

    @staticmethod
    def _open_socket(slot: Slot) -> bool:
        return slot.channel is not None and slot.channel.socket.open

    def _update_connected(self) -> None:
        self.stream.connected = bool(self.slots) and all(self._open_socket(s) for s in self.slots)

    def _failed(self, slot: Slot, exc: BaseException) -> str:
        self.stream.last_error = f"channel {slot.index}: {type(exc).__name__}: {exc}"
        return self.stream.last_error

    async def _replace(self, slot: Slot) -> Channel:
        async with slot.lock:
            channel = slot.channel = await sup.with_retry(
                lambda: self._open(slot), ERRORS, delays(0.5, 30.0), lambda exc: self._failed(slot, exc)
            )
            self.session.channel_ready(channel.info)
        self._opened(slot)
        return channel

    def _opened(self, slot: Slot) -> None:
        self._update_connected()
        if self.stream.connected:
            self.stream.last_error = ""
        log.info("channel %d open with %d topics", slot.index, len(self.session.slots[slot.index].subscribed))

    async def _supervise(self, slot: Slot) -> None:
        channel = await self._replace(slot)
        while True:
            reader = channel.socket.reader
            assert reader is not None
            ask = asyncio.ensure_future(slot.requests.get())
            at = self.session.rollover_at(slot.index)
            timeout = None if at is None else max(0.0, at - self.wall())
            done, _ = await asyncio.wait({reader, ask}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if ask not in done:
                ask.cancel()
            if reader in done:
                channel = await self._recover(slot, channel, reader.result())
            else:
                channel = await self._rollover(slot, channel, ask.result() if ask in done else "channel_expiry")

    async def _rollover(self, slot: Slot, old: Channel, reason: str) -> Channel:
        """Make before break: the replacement delivers before the old channel's socket goes."""
        overlap = reason != "channel_gone"
        if overlap:
            self.session.dedup.start()  # the replacement may deliver from its first frame on
        else:
            await self._close(old, reason)  # nothing more will come through it
        try:
            channel = await self._replace(slot)
        except BaseException:
            if overlap:
                self.session.dedup.stop()
            raise
        self.stream.rollovers[reason] += 1
        log.info("channel %d rolled over to a new channel (%s)", slot.index, reason)
        if overlap:
            self._spawn(sup.retire(self.session.dedup, OVERLAP_SECONDS, lambda: self._close(old, "rollover")), "retire")
        while not slot.requests.empty():  # single flight: what was asked meanwhile is done by this one
            if slot.requests.get_nowait() == "token_refresh" and channel.token is not self.tokens.token:
                slot.requests.put_nowait("token_refresh")
                break
        return channel

    async def _recover(self, slot: Slot, channel: Channel, code: str) -> Channel:
        """An unplanned socket loss: back to the same channel while it exists, else a new one."""
        self.live.discard(channel)
        self.stream.disconnects[code] += 1
        self.stream.last_error = f"channel {slot.index} socket closed ({code})"
        self._update_connected()
        log.warning("channel %d socket closed (%s); reconnecting", slot.index, code)
        retry = delays(0.2, 30.0)
        while True:
            try:
                if not await self._alive(channel):
                    return await self._rollover(slot, channel, "channel_gone")
                await self._connect(channel)
                self._opened(slot)
                return channel
            except ERRORS as exc:
                self._failed(slot, exc)
            await asyncio.sleep(next(retry))

    async def _probe(self) -> None:
        """HEAD each channel now and then: 404 means the platform dropped it (expiry, eviction)."""
        while True:
            await asyncio.sleep(self.probe_seconds)
            for slot in list(self.slots):
                channel = slot.channel
                if channel is None:
                    continue
                try:
                    alive = await self._alive(channel)
                except (RestError, httpx.HTTPError) as exc:
                    log.debug("channel probe failed: %s", exc)
                    continue
                if not alive:
                    self._act(self.session.channel_gone(slot.index, channel.info.number))

    async def _token_watch(self) -> None:
        """Safe pattern on a new token: new channel -> resubscribe -> swap, slot by slot."""
        token = await self.tokens.current()
        while True:
            token = await self.tokens.wait_newer(token)
            for slot in list(self.slots):
                slot.requests.put_nowait("token_refresh")

    # -- life ------------------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                for index in self.session.start():
                    self._slot(index)
                self._spawn(self._sweep(), "sweep")
                self._spawn(self._probe(), "probe")
                self._spawn(self._token_watch(), "token-watch")
        finally:
            self._group = None
            self.stream.connected = False
            await sup.close_all([c.socket.ws for c in self.live], "shutdown")
            for channel in self.live:
                if channel.socket.reader is not None:
                    channel.socket.reader.cancel()
            await self.dialer.close()

    def metrics(self) -> Iterable[Metric]:
        return self.session.metrics(sum(1 for s in self.slots if self._open_socket(s)), self.rest.results)

    def subscription_report(self) -> list[tuple[bool, str, str]]:
        return self.session.subscription_report()
