"""One Notifications API channel slot: its channel's life and its topics, for `NotificationsSource`.

A `Slot` is a `stream.Stream` (the shared loop replaces its channel make-before-break and recovers it);
what it adds is the channel's own: `POST /channels` then the socket then the slot's topics (`open`);
after an unplanned loss, the same channel while HEAD says it exists (`reopen`); and `sync`, which keeps
the channel's subscriptions equal to the session's plan. A 4xx to a subscription request is the
platform's answer, not a failure: the topics are rejected (counted, logged with the permissions the
answer names, shown by `check`), never a new channel; refused base topics are asked for again on the
same channel on a slow capped backoff, and the slot is not ready meanwhile if no channel has one. When
that happens to a rollover's replacement, the old channel, whose subscription still works, is held
(`handover`) until the slot's newest channel has its base topics answered; only then does the overlap
start ending. Meanwhile events flow through the held channel, so the slot is ready, and the calls that
connect go on it too (`keep_held`, the session's `held_request`): their transcripts are not missing
until the grant, and the replacement's answered request carries them over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import httpx

from genesys_sentiment_exporter.backoff import delays
from genesys_sentiment_exporter.oauth import Token
from genesys_sentiment_exporter.sources import notifications_protocol as proto
from genesys_sentiment_exporter.sources import supervisor as sup
from genesys_sentiment_exporter.sources.notifications_rest import RestError
from genesys_sentiment_exporter.sources.notifications_session import ChannelInfo, SessionError, refused_permissions
from genesys_sentiment_exporter.sources.stream import Stream

if TYPE_CHECKING:
    from genesys_sentiment_exporter.sources.notifications import NotificationsSource

log = logging.getLogger("exporter.source.notifications")

REFUSED_BACKOFF = (2.0, 300.0)  # seconds: first retry of refused base topics, and the cap
ERRORS: tuple[type[BaseException], ...] = (RestError, SessionError, httpx.HTTPError, *sup.CONNECT_ERRORS)


@dataclass(eq=False)
class Channel:
    info: ChannelInfo
    token: Token
    socket: sup.Socket
    # Set once the platform answered a subscription of the base topics on it (not a 4xx refusal):
    # from then on it carries the conversation events a rollover's old channel carried.
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def number(self) -> int:
        return self.info.number


class Slot(Stream[Channel]):
    """One channel of up to 1000 topics."""

    def __init__(self, source: NotificationsSource, index: int) -> None:
        super().__init__(source.streams)
        self.source, self.session, self.index, self.label = source, source.session, index, f"channel {index}"
        self.dirty = asyncio.Event()  # the plan changed: `sync` brings the channel to it
        self.lock = asyncio.Lock()
        self.refusals: Iterator[float] | None = None  # while the base topics are refused: when to ask again
        self.refusal = ""  # the latest refusal of the base topics, as readiness reports it
        self.carrying = asyncio.Event()  # the current channel's base topics are subscribed (`handover`)
        self.held: Channel | None = None  # a rollover's old channel, delivering while the replacement is refused
        self.held_dirty = asyncio.Event()  # the plan changed while a channel is held: `keep_held` adds to it

    @property
    def ready(self) -> bool:
        """Whether events flow: not while its base topics are refused and no channel has one (nothing
        could be attributed), but yes while the old channel it holds still delivers them."""
        base = self.session.base_topics
        return self.is_open and (
            self.refusals is None or self.holding or any(t in s.subscribed for s in self.session.slots for t in base)
        )

    @property
    def holding(self) -> bool:
        return self.held is not None and self.held.socket.open

    def plan_changed(self) -> None:
        self.dirty.set()
        if self.held is not None:
            self.held_dirty.set()

    def deadline(self) -> float | None:
        at = self.session.rollover_at(self.index)
        return None if at is None else max(0.0, at - self.source.wall())

    async def handover(self, old: Channel, new: Channel) -> None:
        """A replacement whose base topics were refused carries nothing yet: the old channel, if its
        subscription works, stays until the same PUT, asked again on the slot's channel, is answered.
        The slot's channel, not `new`: if `new` is itself replaced meanwhile, the old one waits for that one."""
        if old.subscribed.is_set():
            await self.carrying.wait()
            self._release(old, "its replacement is subscribed")

    def retired(self, old: Channel) -> None:
        self._release(old, "it closed")

    def _hold(self, old: Channel) -> None:
        self.held = old
        self.session.hold(self.index, old.info)
        log.warning(
            "channel %d: the replacement's subscription is refused; the old channel stays, delivering its %d "
            "topics and those of calls that connect meanwhile, until the replacement is answered",
            self.index,
            len(self.session.slots[self.index].held_topics),
        )
        self.held_dirty.set()

    def _release(self, old: Channel, why: str) -> None:
        if self.held is not old:
            return
        self.held = None
        self.session.release(self.index, old.number)
        log.info("channel %d: the held old channel is let go (%s)", self.index, why)
        if self.refusals is not None:  # what readiness says now: the refusal, and that nothing delivers
            self.source.stream.last_error = f"{self.refusal}; the held old channel closed"
        self.streams.changed()

    def failed(self, exc: BaseException) -> str:
        self.source.stream.last_error = f"channel {self.index}: {type(exc).__name__}: {exc}"
        return self.source.stream.last_error

    # -- the channel -----------------------------------------------------------------------------------
    async def open(self) -> Channel:
        async with self.lock:
            self.conn = channel = await sup.with_retry(self._new_channel, ERRORS, delays(0.5, 30.0), self.failed)
            if channel.subscribed.is_set():
                self.carrying.set()
            else:
                self.carrying.clear()
            self.session.channel_ready(channel.info)
        log.info("channel %d open with %d topics", self.index, len(self.session.slots[self.index].subscribed))
        return channel

    async def _new_channel(self) -> Channel:
        """New channel, its socket (read from the start), and the slot's topics on it."""
        source = self.source
        token = await source.tokens.current()
        created = await source.rest.json("POST", proto.CHANNELS_PATH, ok=(200, 201))
        info = self.session.channel_created(self.index, created, source.wall())
        receive = partial(source.frame, info)
        socket = sup.Socket(source.dialer, source.watchdog, source.clock, receive, proto.PING, self.label)
        channel = Channel(info, token, socket)
        await self._connect(channel)
        try:
            await self._subscriptions(channel, "PUT", self.session.planned(self.index))
        except BaseException:
            await self.streams.close(channel, "failed")
            raise
        return channel

    async def _connect(self, channel: Channel) -> None:
        await channel.socket.connect(channel.info.uri)
        channel.socket.start()
        self.source.stream.connects += 1

    async def reopen(self, channel: Channel) -> Channel | None:
        """Back to the same channel while it exists (HEAD), else None: a new one."""
        retry = delays(0.2, 30.0)
        while True:
            try:
                if not await self.alive(channel):
                    return None
                await self._connect(channel)
                return channel
            except ERRORS as exc:
                self.failed(exc)
            await asyncio.sleep(next(retry))

    async def alive(self, channel: Channel) -> bool:
        response = await self.source.rest.request("HEAD", f"{proto.CHANNELS_PATH}/{channel.info.id}")
        return response.status_code != 404

    # -- its topics ------------------------------------------------------------------------------------
    async def sync(self) -> None:
        """Bring the channel to the planned topics, whenever the plan changes."""
        while True:
            await self.dirty.wait()
            if self.refusals is not None:  # the base topics were refused: ask again later, the same PUT
                await asyncio.sleep(next(self.refusals))
            self.dirty.clear()
            async with self.lock:
                request = (
                    ("PUT", self.session.planned(self.index))
                    if self.refusals is not None
                    else self.session.sync_request(self.index)
                )
                if self.conn is None or request is None:
                    continue
                try:
                    await self._subscriptions(self.conn, *request)
                except (RestError, SessionError, httpx.HTTPError) as exc:
                    log.warning("channel %d: updating subscriptions failed (%s); retrying", self.index, exc)
                    await asyncio.sleep(1.0)
                    self.dirty.set()

    async def keep_held(self) -> None:
        """While a rollover's old channel is held, add the topics planned meanwhile to it at once (POST)."""
        while True:
            await self.held_dirty.wait()
            self.held_dirty.clear()
            held = self.held
            topics = self.session.held_request(self.index) if held is not None else []
            if held is None or not topics:
                continue
            path = f"{proto.CHANNELS_PATH}/{held.info.id}/subscriptions?ignoreErrors=true"
            try:
                body = await self.source.rest.json("POST", path, [{"id": t} for t in topics])
                self.session.held_answered(self.index, held.number, body, topics)
            except RestError as exc:
                if 400 <= exc.status < 500 and exc.status not in (401, 404, 408, 429):
                    self.session.held_refused(self.index, held.number, topics)
                    log.warning(
                        "channel %d: adding %d topics to the held channel refused with HTTP %d; they wait for "
                        "its replacement",
                        self.index,
                        len(topics),
                        exc.status,
                    )
                    continue
                await self._held_retry(exc)
            except (SessionError, httpx.HTTPError) as exc:
                await self._held_retry(exc)

    async def _held_retry(self, exc: BaseException) -> None:
        log.warning("channel %d: adding topics to the held channel failed (%s); retrying", self.index, exc)
        await asyncio.sleep(1.0)
        self.held_dirty.set()

    async def _subscriptions(self, channel: Channel, method: str, topics: list[str]) -> None:
        # ignoreErrors=true: the platform answers each topic Permitted/Rejected instead of failing the whole
        # request for one refused topic (what the official SDKs send).
        path = f"{proto.CHANNELS_PATH}/{channel.info.id}/subscriptions?ignoreErrors=true"
        try:
            body = await self.source.rest.json(method, path, [{"id": t} for t in topics])
        except RestError as exc:
            if not 400 <= exc.status < 500 or exc.status in (401, 404, 408, 429):
                raise  # transient, or the channel is gone: retried, or a new channel
            self._refused(channel, method, topics, exc)
            return
        self.session.subscriptions_answered(self.index, method, body, topics)
        if any(t in self.session.base_topics for t in topics):
            self.refusals = None
            channel.subscribed.set()
            if channel is self.conn:
                self.carrying.set()
            self.streams.changed()

    def _refused(self, channel: Channel, method: str, topics: list[str], exc: RestError) -> None:
        old = self.conn
        if (
            self.held is None
            and old is not None
            and old is not channel  # a rollover's replacement (`open` adopts it after this answer)
            and old.subscribed.is_set()
            and old.socket.open
            and any(t in self.session.base_topics for t in topics)
        ):
            self._hold(old)  # before the refusal is recorded: it carries the slot's subscription so far
        base = self.session.subscriptions_refused(self.index, method, topics, exc.status, str(exc), exc.body)
        missing = ", ".join(refused_permissions(exc.body)) or "none named"
        named = ", ".join(topics[:3]) + (f" and {len(topics) - 3} more" if len(topics) > 3 else "")
        log.warning(
            "channel %d: %s of %s refused with HTTP %d (missing permissions: %s)%s",
            self.index,
            method,
            named,
            exc.status,
            missing,
            "; asking again on the same channel" if base else "",
        )
        if base:
            self.refusals = self.refusals or delays(*REFUSED_BACKOFF)
            self.refusal = f"channel {self.index}: base topics refused with HTTP {exc.status}: {exc}"
            self.source.stream.last_error = self.refusal
            self.dirty.set()
            self.streams.changed()
