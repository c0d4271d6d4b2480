"""The real platform's stream: Genesys Cloud Notifications API channels, topics and sockets.

Token -> `POST /api/v2/notifications/channels` -> WebSocket to the returned `connectUri` ->
subscriptions over REST. The decisions live in `notifications_protocol` (parsing, attribution,
topic plan) and `notifications_rest` (budget, 429); this shell owns sockets and timers only.

Each channel "slot" (up to 1000 topics) has a supervisor task. It replaces its channel
make-before-break (new channel, socket, same topics, then the old one goes after an overlap in
which frames seen on both count once) on `v2.system.socket_closing`, on a new token, before the
channel's `expires`, and when a HEAD probe says the channel is gone (404). An unplanned socket
loss reconnects to the same channel while HEAD says it exists, else to a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from prometheus_client.core import Metric
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from genesys_sentiment_exporter import catalogue
from genesys_sentiment_exporter.backoff import Backoff
from genesys_sentiment_exporter.catalogue import Outcome
from genesys_sentiment_exporter.config import is_loopback
from genesys_sentiment_exporter.ingest import INVALID_SCORE, MISSING_SENTIMENT, Ingest, RateLimitedWarning
from genesys_sentiment_exporter.metrics import counter, gauge, info
from genesys_sentiment_exporter.model import Reading, StateChange
from genesys_sentiment_exporter.oauth import Token, TokenManager
from genesys_sentiment_exporter.sources import notifications_protocol as proto
from genesys_sentiment_exporter.sources.analytics_websocket import Deduplicator
from genesys_sentiment_exporter.sources.notifications_rest import PlatformRest, RestError
from genesys_sentiment_exporter.stream_state import StreamState

log = logging.getLogger("exporter.source.notifications")

OVERLAP_SECONDS = 2.0
OPEN_TIMEOUT = 10.0
SWEEP_SECONDS = 0.25


@dataclass(eq=False)
class Channel:
    id: str
    uri: str
    expires: float  # wall clock; 0 when the platform gave none
    token: Token
    number: int
    slot: int
    ws: ClientConnection | None = None
    last_frame: float = field(default_factory=time.monotonic)
    reason: str = ""  # why we closed it ourselves
    closing_announced: bool = False
    opened: float = field(default_factory=time.time)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


class Slot:
    def __init__(self, index: int) -> None:
        self.index = index
        self.channel: Channel | None = None
        self.subscribed: set[str] = set()
        self.requests: asyncio.Queue[str] = asyncio.Queue()
        self.dirty = asyncio.Event()
        self.lock = asyncio.Lock()


def _parse_expires(value: object) -> float:
    if not isinstance(value, str):
        return 0.0
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


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
    ) -> None:
        if not queue_ids and not agent_ids:
            raise ValueError(
                "source: the notifications source needs at least one --agent-id or --queue-id: it subscribes "
                "v2.users.{id}.conversations / v2.routing.queues.{id}.conversations to learn which agent a "
                "conversation's sentiment belongs to"
            )
        self.tokens = tokens
        self.ingest = ingest
        self.stream = stream
        self.rest = PlatformRest(api_base_url, http, tokens, requests_per_minute)
        self.base_topics = [proto.user_topic(a) for a in agent_ids] + [proto.queue_topic(q) for q in queue_ids]
        self.attribution = proto.Attribution(grace_seconds, idle_seconds)
        self.scale = proto.Scale(sentiment_scale)
        self.plan = proto.TopicPlan(topics_per_channel, max_channels)
        self.probe_seconds = probe_seconds
        self.watchdog_seconds = 2.5 * heartbeat_seconds
        self.ping_after = heartbeat_seconds * 1.2
        self.ssl = ssl_context
        self.wall = wall
        self.dedup = Deduplicator()
        self.slots: list[Slot] = []
        self.rejected: Counter[str] = Counter()
        self.topic_results: dict[str, proto.TopicResult] = {}  # latest answer per base topic / topic kind
        self.missing_permissions: set[str] = set()
        self._numbers = 0
        self._tasks: list[asyncio.Task[Any]] = []
        self._retiring: set[asyncio.Task[None]] = set()
        self._warn_refused = RateLimitedWarning(60.0)
        self._warn_rejected = RateLimitedWarning(60.0)
        self._warn_missing = RateLimitedWarning(60.0)

    # -- messages ----------------------------------------------------------------------------------
    def handle(self, frame: str | bytes, channel: Channel | None = None) -> Outcome:
        """Give one frame its outcome (returned for tests)."""
        message = proto.parse(frame)
        kind = message.kind
        if kind == proto.Kind.HEARTBEAT:
            self.stream.last_heartbeat = self.wall()
            return self._count(Outcome.HEARTBEAT)
        if kind in (proto.Kind.MALFORMED, proto.Kind.UNKNOWN):
            return self._count(Outcome(kind))
        if kind == proto.Kind.SOCKET_CLOSING:
            current = channel is not None and self.slots[channel.slot].channel is channel
            if channel is not None and current and not channel.closing_announced:
                channel.closing_announced = True
                log.info("channel %d: platform announced socket_closing; rolling over", channel.slot)
                self.slots[channel.slot].requests.put_nowait("socket_closing")
            return self._count(Outcome.CONTROL)
        if kind not in (proto.Kind.CONVERSATION, proto.Kind.SENTIMENT):
            return self._count(Outcome.CONTROL)  # pong and other channel.metadata
        if self.dedup.active and channel is not None and self.dedup.duplicate(message.dedup_key(), channel.number):
            return self._count(Outcome.DUPLICATE)
        if kind == proto.Kind.CONVERSATION:
            return self._conversation(message)
        return self._sentiment(message)

    def _count(self, outcome: Outcome) -> Outcome:
        self.ingest.count(outcome)
        return outcome

    def _conversation(self, message: proto.Message) -> Outcome:
        topic_queue = message.topic_id if message.topic.startswith("v2.routing.queues.") else None
        update = self.attribution.on_conversation(message.body, topic_queue, time.monotonic(), self.wall())
        if update.subscribe is not None:
            self._subscribe(update.subscribe)
        outcome = self._apply(update.changes)
        if not outcome:
            outcome = Outcome(update.outcome or Outcome.STATE_CHANGE)
            self.ingest.count(outcome)
        return outcome

    def _apply(self, changes: list[StateChange]) -> Outcome | None:
        """The first real change is the message's counted outcome; the others go to the tracker."""
        tracker = self.ingest.tracker
        outcome: Outcome | None = None
        for change in changes:
            if tracker.is_current_state(change.agent_id, change.conversation_id, change.state):
                continue
            if not outcome:
                outcome = self.ingest.conversation(None, change)
            else:
                tracker.state(change, self.ingest.clock())
        return outcome

    def _sentiment(self, message: proto.Message) -> Outcome:
        body = message.body
        conversation_id = body.get("conversationId")
        if not isinstance(conversation_id, str) or not conversation_id:
            conversation_id = message.topic_id
        who = self.attribution.attribute(conversation_id, body.get("queueIds"))
        if isinstance(who, str):
            return self._count(Outcome(who))
        agent, queue = who
        raw = body.get("sentimentOverallScore")
        if raw is None:
            self._warn_missing(
                log, "sentiment event without sentimentOverallScore (agent %s): not counted as 0.0", agent
            )
            return self._count(MISSING_SENTIMENT)
        score = self.scale.normalise(raw, conversation_id)
        if score is None:
            return self._count(INVALID_SCORE)
        trend = self.scale.trend(body.get("sentimentTrendScore"))
        reading = Reading(agent, queue, conversation_id, score, self.wall(), trend)
        return self.ingest.conversation(reading, None)

    # -- topics --------------------------------------------------------------------------------------
    def _subscribe(self, topic: str) -> None:
        index = self.plan.add(topic)
        if index is None:
            self._warn_refused(
                log,
                "every channel is full (%d channels x %d topics): sentiment topic refused; raise "
                "--notifications-max-channels (at most 20) or narrow --agent-id/--queue-id",
                self.plan.max_channels,
                self.plan.per_channel,
            )
            return
        self._slot(index).dirty.set()

    def _slot(self, index: int) -> Slot:
        while len(self.slots) <= index:
            slot = Slot(len(self.slots))
            self.slots.append(slot)
            if self._tasks:  # running: a new channel is needed now
                self._start_slot(slot)
        return self.slots[index]

    def _start_slot(self, slot: Slot) -> None:
        self._tasks.append(asyncio.create_task(self._supervise(slot), name=f"notifications-channel-{slot.index}"))
        self._tasks.append(asyncio.create_task(self._sync(slot), name=f"notifications-sync-{slot.index}"))

    def _record(self, results: list[proto.TopicResult], slot: Slot) -> None:
        for result in results:
            key = result.topic if result.topic in self.base_topics else proto.topic_kind(result.topic)
            self.topic_results[key] = result
            if result.permitted:
                slot.subscribed.add(result.topic)
                continue
            self.rejected[result.reason] += 1
            self.missing_permissions.update(result.missing_permissions)
            self.plan.remove(result.topic)
            slot.subscribed.discard(result.topic)
            self._warn_rejected(
                log,
                "subscription to %s rejected (%s)%s",
                result.topic,
                result.detail or result.reason,
                f"; grant the OAuth client's role: {', '.join(result.missing_permissions)}"
                if result.missing_permissions
                else "",
            )

    async def _put_topics(self, slot: Slot, channel: Channel) -> None:
        topics = sorted(self.plan.slots[slot.index]) if slot.index < len(self.plan.slots) else []
        body = await self.rest.json(
            "PUT", f"{proto.CHANNELS_PATH}/{channel.id}/subscriptions", [{"id": t} for t in topics]
        )
        slot.subscribed = set()
        self._record(proto.read_subscriptions(body, topics), slot)

    async def _sync(self, slot: Slot) -> None:
        """Bring the slot's channel to the planned topics: POST additions, PUT after removals."""
        while True:
            await slot.dirty.wait()
            slot.dirty.clear()
            async with slot.lock:
                channel = slot.channel
                if channel is None:
                    continue
                desired = self.plan.slots[slot.index]
                adds = sorted(desired - slot.subscribed)
                removed = bool(slot.subscribed - desired)
                try:
                    if removed:
                        await self._put_topics(slot, channel)
                    elif adds:
                        body = await self.rest.json(
                            "POST", f"{proto.CHANNELS_PATH}/{channel.id}/subscriptions", [{"id": t} for t in adds]
                        )
                        self._record(proto.read_subscriptions(body, adds), slot)
                except (RestError, httpx.HTTPError) as exc:
                    log.warning("channel %d: updating subscriptions failed (%s); retrying", slot.index, exc)
                    await asyncio.sleep(1.0)
                    slot.dirty.set()

    async def _sweep(self) -> None:
        """Drop the sentiment topics of conversations whose grace period is over."""
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            for topic in self.attribution.due(time.monotonic()):
                index = self.plan.remove(topic)
                if index is not None:
                    self.slots[index].dirty.set()

    # -- channels -------------------------------------------------------------------------------------
    async def _open(self, slot: Slot) -> Channel:
        """New channel, its socket, and the slot's topics on it; the socket is read from the start."""
        token = await self.tokens.current()
        created = await self.rest.json("POST", proto.CHANNELS_PATH, ok=(200, 201))
        if (
            not isinstance(created, dict)
            or not isinstance(created.get("id"), str)
            or not isinstance(created.get("connectUri"), str)
        ):
            raise RestError("POST channels answered without id and connectUri")
        self._numbers += 1
        channel = Channel(
            created["id"],
            created["connectUri"],
            _parse_expires(created.get("expires")),
            token,
            self._numbers,
            slot.index,
        )
        await self._connect(channel)
        try:
            await self._put_topics(slot, channel)
        except BaseException:
            await self._close(channel, "failed")
            raise
        return channel

    async def _connect(self, channel: Channel) -> None:
        host = urlsplit(channel.uri).hostname or ""
        proxy: Literal[True] | None = None if is_loopback(host) else True
        channel.ws = await connect(
            channel.uri,
            ssl=self.ssl if channel.uri.startswith("wss://") else None,
            open_timeout=OPEN_TIMEOUT,
            max_size=2**20,
            user_agent_header="genesys-sentiment-exporter",
            proxy=proxy,
        )
        channel.reason = ""
        channel.last_frame = time.monotonic()
        channel.tasks = [asyncio.create_task(self._read(channel)), asyncio.create_task(self._watchdog(channel))]
        self.stream.connects += 1

    async def _close(self, channel: Channel, reason: str) -> None:
        channel.reason = reason
        if channel.ws is not None:
            with contextlib.suppress(Exception):
                await channel.ws.close(code=1000, reason=reason)
        for task in channel.tasks[1:]:
            task.cancel()

    async def _read(self, channel: Channel) -> str:
        ws = channel.ws
        assert ws is not None
        try:
            async for frame in ws:
                self.stream.last_message = self.wall()
                channel.last_frame = time.monotonic()
                self.handle(frame, channel)
        except ConnectionClosed:
            pass
        if channel.reason:
            return channel.reason
        received = ws.protocol.close_rcvd
        return str(received.code) if received is not None else "1006"

    async def _watchdog(self, channel: Channel) -> None:
        """Ping when idle; replace a socket silent for 2.5 heartbeats."""
        ws = channel.ws
        assert ws is not None
        pinged = 0.0
        while True:
            await asyncio.sleep(min(1.0, self.watchdog_seconds / 10))
            idle = time.monotonic() - channel.last_frame
            if idle > self.watchdog_seconds:
                log.warning(
                    "channel %d: no message or heartbeat for %.0f s: replacing the socket",
                    channel.slot,
                    self.watchdog_seconds,
                )
                channel.reason = "heartbeat_timeout"
                with contextlib.suppress(Exception):
                    await ws.close(code=4000, reason="heartbeat timeout")
                return
            if idle > self.ping_after and channel.last_frame != pinged:
                pinged = channel.last_frame
                with contextlib.suppress(Exception):
                    await ws.send(proto.PING)

    async def _alive(self, channel: Channel) -> bool:
        response = await self.rest.request("HEAD", f"{proto.CHANNELS_PATH}/{channel.id}")
        return response.status_code != 404

    @staticmethod
    def _open_socket(slot: Slot) -> bool:
        channel = slot.channel
        return channel is not None and channel.reason == "" and bool(channel.tasks) and not channel.tasks[0].done()

    def _update_connected(self) -> None:
        self.stream.connected = bool(self.slots) and all(self._open_socket(s) for s in self.slots)

    async def _open_with_retry(self, slot: Slot) -> Channel:
        backoff = Backoff(base=0.5, cap=30.0)
        while True:
            try:
                return await self._open(slot)
            except (RestError, httpx.HTTPError, OSError, TimeoutError, WebSocketException) as exc:
                self.stream.last_error = f"channel {slot.index}: {type(exc).__name__}: {exc}"
            delay = backoff.next_delay()
            log.warning("%s; retrying in %.1f s", self.stream.last_error, delay)
            await asyncio.sleep(delay)

    async def _supervise(self, slot: Slot) -> None:
        async with slot.lock:
            slot.channel = await self._open_with_retry(slot)
        self._opened(slot)
        while True:
            channel = slot.channel
            assert channel is not None
            reader = channel.tasks[0]
            ask = asyncio.create_task(slot.requests.get())
            timeout = None
            if channel.expires:
                life = channel.expires - channel.opened
                margin = min(600.0, max(1.0, 0.1 * life))
                timeout = max(0.0, channel.expires - margin - self.wall())
            done, _ = await asyncio.wait({reader, ask}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if ask not in done:
                ask.cancel()
            if reader in done:
                await self._recover(slot, channel, reader.result())
                continue
            reason = ask.result() if ask in done else "channel_expiry"
            await self._rollover(slot, channel, reason)

    def _opened(self, slot: Slot) -> None:
        self._update_connected()
        if self.stream.connected:
            self.stream.last_error = ""
        log.info("channel %d open with %d topics", slot.index, len(slot.subscribed))

    async def _rollover(self, slot: Slot, old: Channel, reason: str) -> None:
        """Make before break: the replacement delivers before the old channel's socket goes."""
        if reason == "channel_gone":
            await self._close(old, reason)  # nothing more will come through it
        async with slot.lock:
            slot.channel = await self._open_with_retry(slot)
        self.stream.rollovers[reason] += 1
        self._opened(slot)
        log.info("channel %d rolled over to a new channel (%s)", slot.index, reason)
        if reason != "channel_gone":
            retire = asyncio.create_task(self._retire(old))
            self._retiring.add(retire)
            retire.add_done_callback(self._retiring.discard)

    async def _retire(self, old: Channel) -> None:
        self.dedup.start()
        try:
            await asyncio.sleep(OVERLAP_SECONDS)
            await self._close(old, "rollover")
        finally:
            self.dedup.stop()

    async def _recover(self, slot: Slot, channel: Channel, code: str) -> None:
        """An unplanned socket loss: back to the same channel while it exists, else a new one."""
        self.stream.disconnects[code] += 1
        self.stream.last_error = f"channel {slot.index} socket closed ({code})"
        self._update_connected()
        log.warning("channel %d socket closed (%s); reconnecting", slot.index, code)
        for task in channel.tasks:
            task.cancel()
        backoff = Backoff(base=0.2, cap=30.0)
        while True:
            try:
                if await self._alive(channel):
                    await self._connect(channel)
                    self._opened(slot)
                    return
                break
            except (RestError, httpx.HTTPError, OSError, TimeoutError, WebSocketException) as exc:
                self.stream.last_error = f"channel {slot.index}: {type(exc).__name__}: {exc}"
            await asyncio.sleep(backoff.next_delay())
        await self._rollover(slot, channel, "channel_gone")

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
                if not alive and slot.channel is channel:
                    log.warning("channel %d: HEAD answered 404; replacing the channel", slot.index)
                    slot.requests.put_nowait("channel_gone")

    async def _token_watch(self) -> None:
        """Safe pattern on a new token: new channel -> resubscribe -> swap, slot by slot."""
        token = await self.tokens.current()
        while True:
            token = await self.tokens.wait_newer(token)
            for slot in list(self.slots):
                slot.requests.put_nowait("token_refresh")

    # -- life ------------------------------------------------------------------------------------------
    async def run(self) -> None:
        for topic in self.base_topics:
            if self.plan.add(topic) is None:
                log.error("too many --agent-id/--queue-id topics for the channel limit: %s refused", topic)
        for index in range(len(self.plan.slots)):
            self._slot(index)
        self._tasks = [
            asyncio.create_task(self._sweep()),
            asyncio.create_task(self._probe()),
            asyncio.create_task(self._token_watch()),
        ]
        for slot in self.slots:
            self._start_slot(slot)
        try:
            while True:
                tasks = list(self._tasks)
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
        finally:
            self.stream.connected = False
            for task in [*self._tasks, *self._retiring]:
                task.cancel()
            for slot in self.slots:
                if slot.channel is not None:
                    for task in slot.channel.tasks:
                        task.cancel()
                    await self._close(slot.channel, "shutdown")

    # -- metrics ----------------------------------------------------------------------------------------
    def metrics(self) -> Iterable[Metric]:
        open_ = sum(1 for s in self.slots if self._open_socket(s))
        yield gauge(catalogue.NOTIFICATIONS_CHANNELS_OPEN, open_)
        yield gauge(catalogue.NOTIFICATIONS_TOPICS_SUBSCRIBED, sum(len(s.subscribed) for s in self.slots))
        yield counter(catalogue.NOTIFICATIONS_REJECTED, self.rejected)
        yield counter(catalogue.NOTIFICATIONS_REFUSED, self.plan.refused)
        expiry = gauge(catalogue.NOTIFICATIONS_CHANNEL_EXPIRY)
        for slot in self.slots:
            if slot.channel is not None and slot.channel.expires:
                expiry.add_metric([str(slot.index)], slot.channel.expires)
        yield expiry
        yield counter(catalogue.NOTIFICATIONS_API_REQUESTS, self.rest.results)
        yield info(catalogue.SENTIMENT_SCALE, {"scale": self.scale.in_use, "setting": self.scale.setting})

    def subscription_report(self) -> list[tuple[bool, str, str]]:
        """For `check`: (ok, what, text) per base topic and per sentiment topic kind."""
        lines: list[tuple[bool, str, str]] = []
        for key, result in sorted(self.topic_results.items()):
            if result.permitted:
                lines.append((True, "topic", f"{key}: permitted"))
            else:
                missing = ", ".join(result.missing_permissions)
                grant = f"; missing permissions: {missing}" if missing else ""
                lines.append((False, "topic", f"{key}: rejected ({result.detail or result.reason}){grant}"))
        if self.missing_permissions:
            missing = ", ".join(sorted(self.missing_permissions))
            lines.append((False, "permissions", f"grant the OAuth client's role: {missing}"))
        if self.plan.refused:
            lines.append((False, "channel capacity", f"{self.plan.refused} sentiment topics refused: channels full"))
        return lines
