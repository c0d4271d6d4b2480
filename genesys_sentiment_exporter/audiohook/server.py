"""The AudioHook source: a WebSocket endpoint on the exporter's web listener (asyncio shell).

Genesys Cloud connects to `wss://<exporter>/audiohook` for every monitored call. This shell
authenticates the upgrade (`signature.Verifier`), runs one `protocol.ServerSession` per socket,
sends the frames it returns, and hands audio to the worker pool; utterances come back scored and
become readings of the agent the call is attributed to, in the same tracker as every other source.

Attribution: the `open` message names the conversation, not the agent. The agent and queue come
from whatever already tracks that conversation (the notifications source's conversation topics put
it in the tracker); a session whose call nobody tracks yet is retried at each utterance and its
utterances are counted `unattributed`, never guessed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web
from prometheus_client.core import Metric

from genesys_sentiment_exporter import catalogue as c
from genesys_sentiment_exporter.audiohook import protocol
from genesys_sentiment_exporter.audiohook.protocol import (
    Audio,
    Ended,
    Gap,
    Hangup,
    LanguageChanged,
    Media,
    Send,
    ServerSession,
    SessionConfig,
    Started,
)
from genesys_sentiment_exporter.audiohook.signature import REASONS, Verifier
from genesys_sentiment_exporter.audiohook.workers import Utterance, WorkerPool, WorkerSpec
from genesys_sentiment_exporter.config import Settings
from genesys_sentiment_exporter.families import counter, gauge, histogram
from genesys_sentiment_exporter.logs import Redactor
from genesys_sentiment_exporter.model import Phase, Reading
from genesys_sentiment_exporter.tracker import AgentState, AgentTracker

log = logging.getLogger("exporter.source.audiohook")

PATH = "/audiohook"
MAX_MESSAGE = 65536
PARTY_CHANNEL = {"customer": "external", "agent": "internal"}
CHANNEL_PARTY = {channel: party for party, channel in PARTY_CHANNEL.items()}
CLIENT_ERROR_CODES = ("400", "405", "408", "409", "413", "415", "429", "500", "503")
LATENCY_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)

# How a session ended (a label of the sessions counter).
SESSION_ENDS = ("completed", "probe", "disconnected", "connection_lost", "timeout")
UTTERANCE_OUTCOMES = ("reading", "no_words", "unattributed", "stale", "agent_refused")


@dataclass(eq=False)
class _Live:
    key: int
    session: ServerSession
    ws: web.WebSocketResponse
    media: Media | None = None
    conversation_id: str = ""
    agent: tuple[str, str] | None = None  # (agent id, queue id) once attributed
    arrivals: deque[tuple[float, float, float]] = field(default_factory=lambda: deque(maxlen=600))
    end: str = ""


def build_audiohook(settings: Settings, trackers: Mapping[str, AgentTracker], redactor: Redactor) -> AudioHookSource:
    """`trackers`: one per scored party (Ingest.parties), customer first; the customer's follows every call."""
    api_key = settings.audiohook_api_key.get_secret_value()
    secret = settings.audiohook_client_secret.get_secret_value()
    redactor.add(api_key)
    redactor.add(secret)
    try:
        verifier = Verifier(api_key, secret)
    except ValueError as exc:
        field = "audiohook_client_secret_file" if "secret" in str(exc) else "audiohook_api_key_file"
        raise ValueError(f"{field}: {exc}") from None
    spec = WorkerSpec(
        engine=settings.audiohook_engine,
        model_dir=settings.audiohook_model_dir,
        analyzer=settings.sentiment_analyzer,
        analyzer_model_dir=settings.sentiment_model_dir,
        analyzer_languages=tuple(settings.sentiment_languages),
    )
    return AudioHookSource(
        verifier=verifier,
        tracker=trackers["customer"],
        trackers=trackers,
        parties=tuple(p for p in settings.score_parties if p in trackers),
        spec=spec,
        workers=settings.audiohook_workers or os.cpu_count() or 1,
        max_lag=settings.audiohook_max_lag_seconds,
    )


class TrackerAttribution:
    """(agent, queue) of the tracked agent whose current call is `conversation_id`.

    Whatever source tracks calls (the notifications source's conversation topics) puts each
    agent's current conversation in the tracker; an index from conversation to agent is rebuilt
    at most once a second on a miss, so a lookup per utterance stays O(1) with 20 000 agents.
    Asked at every utterance, it follows a transfer to another agent.
    """

    def __init__(self, tracker: AgentTracker, clock: Callable[[], float] = time.monotonic) -> None:
        self.tracker = tracker
        self.clock = clock
        self.index: dict[str, str] = {}
        self.built = float("-inf")

    def __call__(self, conversation_id: str) -> tuple[str, str] | None:
        agent = self._lookup(conversation_id)
        # A miss rebuilds at most once a second (unattributed calls must not rescan per utterance);
        # a call in its grace period rebuilds at once: someone may have taken it over.
        stale = agent is not None and agent.phase is not Phase.ACTIVE
        if stale or (agent is None and self.clock() - self.built >= 1.0):
            self._rebuild()
            agent = self._lookup(conversation_id)
        return (agent.agent_id, agent.queue_id) if agent is not None else None

    def _rebuild(self) -> None:
        index: dict[str, str] = {}
        for key, agent in list(self.tracker.agents.items()):
            # After a transfer the agent who left keeps the call in its grace period: the live one wins.
            if agent.conversation_id not in index or agent.phase is Phase.ACTIVE:
                index[agent.conversation_id] = key
        self.index = index
        self.built = self.clock()

    def _lookup(self, conversation_id: str) -> AgentState | None:
        key = self.index.get(conversation_id)
        agent = self.tracker.agents.get(key) if key is not None else None
        return agent if agent is not None and agent.conversation_id == conversation_id else None


class AudioHookSource:
    name = "audiohook"

    def __init__(
        self,
        *,
        verifier: Verifier,
        tracker: AgentTracker,
        trackers: Mapping[str, AgentTracker] | None = None,
        spec: WorkerSpec,
        workers: int,
        parties: tuple[str, ...] = ("customer",),
        attribute: Callable[[str], tuple[str, str] | None] | None = None,
        max_lag: float = 10.0,
        refusal_delay: float = 0.5,
        session_config: SessionConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.verifier = verifier
        self.tracker = tracker  # the customer's windows: it follows every call, so it attributes them
        self.trackers = trackers or {"customer": tracker}
        self.parties = parties
        self.channels_wanted = tuple(PARTY_CHANNEL[p] for p in parties)
        self.attribute = attribute or TrackerAttribution(tracker, clock)
        self.refusal_delay = refusal_delay
        self.clock = clock
        self.wall = wall
        self.session_config = session_config or SessionConfig(channels_wanted=self.channels_wanted)
        self.pool = WorkerPool(spec, workers, self._utterance, max_lag=max_lag, clock=clock)
        self.live: dict[int, _Live] = {}
        # Sessions just finished: their last utterance is recognised after the socket is gone.
        self.ended: OrderedDict[int, _Live] = OrderedDict()
        self.keys = itertools.count(1)
        self.started = asyncio.Event()
        # counters (read at scrape time)
        self.refused: Counter[str] = Counter()
        self.messages: Counter[str] = Counter()
        self.client_errors: Counter[str] = Counter()
        self.sessions_ended: Counter[str] = Counter()
        self.audio_seconds: dict[str, float] = {}
        self.dropped_seconds: dict[str, float] = {}
        self.utterances: Counter[str] = Counter()
        self.recognised_seconds = 0.0
        self.recognition_cpu = 0.0
        self.latency: list[int] = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0

    # -- life cycle --------------------------------------------------------------------------------
    def install(self, app: web.Application) -> frozenset[str]:
        """Mount the endpoint; it authenticates itself (Genesys cannot send basic auth)."""
        app.router.add_get(PATH, self.handle)
        return frozenset({PATH})

    async def run(self) -> None:
        await self.pool.start()
        self.started.set()
        log.info("AudioHook endpoint %s ready (%d recognition workers)", PATH, self.pool.size)
        supervisor = asyncio.create_task(self.pool.supervise(), name="audiohook-workers")
        try:
            while True:
                await asyncio.sleep(1.0)
                now = self.clock()
                for live in list(self.live.values()):
                    await self._apply(live, live.session.tick(now))
        finally:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
            await self._shutdown()

    async def _shutdown(self) -> None:
        """Ask Genesys to move each call elsewhere (`disconnect` error is retried), then stop workers."""
        now = self.clock()
        for live in list(self.live.values()):
            with contextlib.suppress(Exception):
                await self._apply(live, live.session.disconnect("error", "server shutting down", now))
                await live.ws.close()
        await self.pool.stop()

    # -- one socket ---------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        began = self.clock()
        verdict = self.verifier.verify(request.headers, request.raw_path, request.host, self.wall())
        if verdict.reason is not None:
            self.refused[verdict.reason] += 1
            log.warning("AudioHook connection refused: %s (from %s)", verdict.reason, request.remote)
            # Failures all take the same time, so timing tells an attacker nothing (as Genesys' reference does).
            await asyncio.sleep(max(0.0, self.refusal_delay - (self.clock() - began)))
            return web.Response(status=401, text="Unauthorized\n")
        if not self.started.is_set():
            self.refused["not_ready"] += 1
            return web.Response(status=503, text="Recognition workers are starting\n")
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, autoping=True)
        if not ws.can_prepare(request).ok:
            self.refused["not_websocket"] += 1
            return web.Response(status=400, text="WebSocket upgrade expected\n")
        await ws.prepare(request)
        session = ServerSession(verdict.session_id, verdict.organization_id, self.clock(), self.session_config)
        live = _Live(next(self.keys), session, ws)
        self.live[live.key] = live
        try:
            async for message in ws:
                now = self.clock()
                if message.type is WSMsgType.TEXT:
                    result = session.receive_text(message.data, now)
                elif message.type is WSMsgType.BINARY:
                    result = session.receive_binary(message.data, now)
                else:
                    if message.type is WSMsgType.ERROR and getattr(ws.exception(), "code", None) == 1009:
                        self.messages["too_large"] += 1  # over 64 KiB: aiohttp closed the socket with 1009
                    break
                self.messages[result.outcome] += 1
                if result.error_code:
                    code = result.error_code if result.error_code in CLIENT_ERROR_CODES else "other"
                    self.client_errors[code] += 1
                await self._apply(live, result.actions)
                if session.state is protocol.State.CLOSED and not live.end:
                    live.end = "probe" if session.probe else "completed"
        except Exception:  # a bug in one session must not take the endpoint down
            log.exception("AudioHook session failed")
        finally:
            await self._apply(live, session.connection_lost())
            if not live.end:
                live.end = "disconnected" if session.state is protocol.State.DISCONNECTING else "connection_lost"
            self.sessions_ended[live.end] += 1
            self.live.pop(live.key, None)
            self.ended[live.key] = live
            while len(self.ended) > 1000:
                self.ended.popitem(last=False)
            self.pool.close(live.key)
            if not ws.closed:
                await ws.close()
        return ws

    async def _apply(self, live: _Live, actions: Iterable[protocol.Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                if action.message["type"] == "disconnect" and not live.end:
                    live.end = "disconnected"
                if not live.ws.closed:
                    await live.ws.send_str(action.text())
            elif isinstance(action, Audio):
                self._audio(live, action)
            elif isinstance(action, Started):
                self._started(live, action)
            elif isinstance(action, Gap):
                if live.media is not None:
                    self.pool.gap(live.key)
                    if action.seconds:
                        self._drop(action.reason, action.seconds * len(live.media.channels))
            elif isinstance(action, LanguageChanged):
                self.pool.language(live.key, action.language)
            elif isinstance(action, Ended):
                self.pool.close(live.key)
            elif isinstance(action, Hangup):
                live.end = "timeout"
                await live.ws.close()

    def _started(self, live: _Live, started: Started) -> None:
        live.media = started.media
        live.conversation_id = started.conversation_id
        channels = started.media.channels
        analysed = tuple((i, CHANNEL_PARTY[c]) for i, c in enumerate(channels) if c in self.channels_wanted)
        self.pool.open(live.key, started.media.format, len(channels), analysed, started.language)

    def _audio(self, live: _Live, audio: Audio) -> None:
        media = live.media
        if media is None:
            return
        seconds = len(audio.data) / media.frame_bytes / protocol.RATE
        for channel in media.channels:
            self.audio_seconds[channel] = self.audio_seconds.get(channel, 0.0) + seconds
        live.arrivals.append((audio.start, audio.start + seconds, self.clock()))
        dropped = self.pool.audio(live.key, audio.data, audio.start)
        if dropped is not None:
            self._drop(dropped, seconds * len(media.channels))

    def _drop(self, reason: str, seconds: float) -> None:
        self.dropped_seconds[reason] = self.dropped_seconds.get(reason, 0.0) + seconds

    # -- results ----------------------------------------------------------------------------------
    def _utterance(self, utterance: Utterance) -> None:
        self.recognised_seconds += utterance.seconds
        self.recognition_cpu += utterance.cpu
        live = self.live.get(utterance.key) or self.ended.get(utterance.key)
        if utterance.score is None:
            self.utterances[utterance.outcome] += 1
            return
        if live is None:
            self.utterances["unattributed"] += 1
            return
        live.agent = self.attribute(live.conversation_id)
        if live.agent is None:
            self.utterances["unattributed"] += 1
            return
        now = self.clock()
        spoken = self._arrival(live, utterance.end)
        agent_id, queue_id = live.agent
        timestamp = self.wall() - (now - spoken) if spoken is not None else self.wall()
        party = utterance.channel  # the worker names each analysed channel by its party
        reading = Reading(agent_id, queue_id, live.conversation_id, utterance.score, timestamp, party=party)
        outcome = self.trackers[party].reading(reading, now)
        self.utterances[outcome] += 1
        if spoken is not None:
            self._observe(now - spoken)

    @staticmethod
    def _arrival(live: _Live, position: float) -> float | None:
        """When the frame holding timeline `position` arrived (the sentence's last word was heard)."""
        for start, end, at in reversed(live.arrivals):
            if start <= position <= end + 1e-6:
                return at
        return None

    def _observe(self, seconds: float) -> None:
        for index, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.latency[index] += 1
                break
        else:
            self.latency[-1] += 1
        self.latency_sum += seconds

    # -- metrics -----------------------------------------------------------------------------------
    def metrics(self) -> Iterable[Metric]:
        yield gauge(c.AUDIOHOOK_SESSIONS_ACTIVE, len(self.live))
        yield counter(c.AUDIOHOOK_SESSIONS, {o: self.sessions_ended[o] for o in SESSION_ENDS})
        refused = (*REASONS, "not_ready", "not_websocket")
        yield counter(c.AUDIOHOOK_CONNECTIONS_REFUSED, {r: self.refused[r] for r in refused})
        yield counter(c.AUDIOHOOK_MESSAGES, {o: self.messages[o] for o in (*protocol.OUTCOMES, "too_large")})
        codes = (*CLIENT_ERROR_CODES, "other", "unknown")
        yield counter(c.AUDIOHOOK_CLIENT_ERRORS, {code: self.client_errors[code] for code in codes})
        yield counter(c.AUDIOHOOK_AUDIO_RECEIVED, {ch: self.audio_seconds.get(ch, 0.0) for ch in protocol.CHANNELS})
        dropped = ("paused", "discarded", "overload", "worker_failed")
        yield counter(c.AUDIOHOOK_AUDIO_DROPPED, {r: self.dropped_seconds.get(r, 0.0) for r in dropped})
        known = (*UTTERANCE_OUTCOMES, "unsupported_language", "unknown_language", "empty_text", "analyzer_error")
        yield counter(c.AUDIOHOOK_UTTERANCES, {o: self.utterances[o] for o in known})
        yield counter(c.AUDIOHOOK_RECOGNISED_AUDIO, self.recognised_seconds)
        yield counter(c.AUDIOHOOK_RECOGNITION_CPU, self.recognition_cpu)
        yield gauge(c.AUDIOHOOK_RECOGNITION_LAG, self.pool.lag())
        yield gauge(c.AUDIOHOOK_WORKERS, self.pool.alive())
        yield counter(c.AUDIOHOOK_WORKER_RESTARTS, self.pool.restarts)
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self.latency, strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else str(bound), running))
        yield histogram(c.AUDIOHOOK_UTTERANCE_LATENCY, buckets, self.latency_sum)
