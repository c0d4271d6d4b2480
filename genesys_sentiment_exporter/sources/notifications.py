"""The real platform's stream: Genesys Cloud Notifications API channels, topics and sockets.

Token -> `POST /api/v2/notifications/channels` -> WebSocket to the returned `connectUri` ->
subscriptions over REST. Every decision is `NotificationsSession`'s (notifications_session.py);
this asyncio shell owns the sockets, timers and REST calls, and does what the session says.

Each slot (a channel of up to 1000 topics, `notifications_channel.Slot`) is one `stream.Stream`: the
shared loop replaces its channel make-before-break on `v2.system.socket_closing`, a new token, before
`expires`, and on a HEAD 404 (the probe here); the slot opens channels, reopens them, and keeps their
topics. This module wires the session, the slots and the frames together.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Iterable

import httpx
from prometheus_client.core import Metric

from genesys_sentiment_exporter.analysis import UtteranceAnalyzer
from genesys_sentiment_exporter.catalogue import Outcome
from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.oauth import TokenManager
from genesys_sentiment_exporter.sources import notifications_protocol as proto
from genesys_sentiment_exporter.sources import supervisor as sup
from genesys_sentiment_exporter.sources.notifications_channel import Channel, Slot
from genesys_sentiment_exporter.sources.notifications_rest import PlatformRest, RestError
from genesys_sentiment_exporter.sources.notifications_session import (
    Action,
    ChannelInfo,
    NotificationsSession,
    Rollover,
    apply,
)
from genesys_sentiment_exporter.sources.stream import MAX_WAIT_SECONDS, Streams
from genesys_sentiment_exporter.stream_state import StreamState

log = logging.getLogger("exporter.source.notifications")

SWEEP_SECONDS = 0.25


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
        max_overlap_seconds: float = MAX_WAIT_SECONDS,
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
        self.streams.max_wait = max_overlap_seconds
        self.slots: list[Slot] = []
        self.live = self.streams.live

    def _act(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Rollover):
                self._slot(action.slot).request(action.reason)
            else:
                self._slot(action.slot).plan_changed()

    def _slot(self, index: int) -> Slot:
        while len(self.slots) <= index:
            slot = Slot(self, len(self.slots))
            self.slots.append(slot)
            self.streams.add(slot)
            self.streams.spawn(slot.sync(), f"sync-{slot.index}")
            self.streams.spawn(slot.keep_held(), f"held-{slot.index}")
        return self.slots[index]

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self._act(self.session.sweep(self.clock()))

    def frame(self, info: ChannelInfo, frame: str | bytes, now: float) -> bool:
        wall = self.stream.last_message = self.wall()
        got = self.session.receive(frame, info.number, now, wall)
        if got.outcome is Outcome.HEARTBEAT:
            self.stream.last_heartbeat = wall
        self._act(got.actions)
        apply(self.ingest, got)
        return got.traffic

    async def _probe(self) -> None:
        """HEAD each channel now and then: 404 means the platform dropped it (expiry, eviction)."""
        while True:
            await asyncio.sleep(self.probe_seconds)
            for slot in list(self.slots):
                channel = slot.conn
                if channel is None:
                    continue
                try:
                    alive = await slot.alive(channel)
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
