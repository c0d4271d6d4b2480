"""The Notifications source's session, pure: fed frames, REST answers and `now`; returns what to do.

Rules (the shell in `notifications.py` performs them and owns nothing else but sockets and timers):
- Topics live in slots: a slot is one channel of at most `topics_per_channel` topics. The base
  topics (`v2.users.{id}.conversations`, `v2.routing.queues.{id}.conversations`) are planned at
  `start()`; a conversation's sentiment topic is added when an agent connects and dropped by
  `sweep(now)` after the grace. Either way the slot comes back as `SyncTopics` and the shell asks
  `sync_request(slot)` what REST call brings the channel to the plan.
- Each channel gets a number when the platform creates it (`channel_created`). A frame is handed
  in with the number of the channel it came through, so overlapping channels de-duplicate and a
  `v2.system.socket_closing` on the slot's current channel asks for one `Rollover`.
- Every frame gets exactly one outcome: `Received.outcome`, or, for a conversation event, the
  one `apply()` derives from the tracker's answer to its readings and state changes.
- A frame is `traffic` unless it is the pong answering our own ping: only traffic feeds the
  watchdog.
- When a rollover's replacement has its base topics refused, the old channel, whose subscription
  works, is held (`hold`) and delivers until the replacement is answered: topics planned meanwhile go
  on it too (`held_request`, additions only, within its topic limit), and every topic the refused
  request named stays planned, so the replacement gets them all once it is answered.

A new topic plugs in as: a pattern and `Kind` in `notifications_protocol.parse`, a handler in
`NotificationsSession.handlers` returning `Received`, and (for a per-conversation topic) an entry
in what `Attribution` subscribes and `due()` drops.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from prometheus_client.core import Metric

from genesys_sentiment_exporter import catalogue
from genesys_sentiment_exporter.analysis import UtteranceAnalyzer, build_analyzer
from genesys_sentiment_exporter.catalogue import ApiResult, Outcome
from genesys_sentiment_exporter.families import counter, gauge, info
from genesys_sentiment_exporter.hosts import is_loopback
from genesys_sentiment_exporter.ingest import INVALID_SCORE, MISSING_SENTIMENT, Ingest, RateLimitedWarning
from genesys_sentiment_exporter.model import UNKNOWN_QUEUE, Reading, StateChange
from genesys_sentiment_exporter.postcall import POSTCALL_SCORE
from genesys_sentiment_exporter.sources import notifications_protocol as proto
from genesys_sentiment_exporter.sources import transcription_protocol as transcription
from genesys_sentiment_exporter.sources.dedup import Deduplicator

log = logging.getLogger("exporter.source.notifications")
# Distinct rejection reasons kept as label values; more become `other` (they come from the platform).
REJECT_REASONS_LIMIT = 20
CADENCE_LIMIT = 10_000  # arrivals kept per topic kind for `check`'s cadence report
# Bound once: an enum member read through its class costs ~50 ns on CPython 3.11, paid per frame in `apply`.
_READING, _TRANSCRIPT = Outcome.READING, Outcome.TRANSCRIPT
_PARSE_FAST, _READ_FRAME = proto.parse_fast, proto.read_frame  # module globals: no attribute read per frame


class SessionError(Exception):
    """A REST answer the session cannot use (the shell retries like a network error)."""


@dataclass(slots=True, frozen=True)
class SyncTopics:
    slot: int


@dataclass(slots=True, frozen=True)
class Rollover:
    slot: int
    reason: str  # socket_closing, channel_gone, token_refresh, channel_expiry


Action = SyncTopics | Rollover


@dataclass(slots=True)
class Received:
    outcome: Outcome | None = None  # counted when no reading or state change takes its place
    reading: Reading | None = None
    changes: list[StateChange] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    traffic: bool = True  # sent by the server on its own (not the pong to our ping)
    # A transcript message: one reading per scored final utterance, the other utterances' (party, outcome).
    readings: list[Reading] = field(default_factory=list)
    utterances: list[tuple[str, str]] = field(default_factory=list)
    postcall: tuple[str, str, str, float, float | None] | None = None  # agent, queue, conversation, score, trend


@dataclass(slots=True, frozen=True)
class ChannelInfo:
    id: str
    uri: str
    expires: float  # wall clock; 0 when the platform gave none
    opened: float  # wall clock
    number: int
    slot: int


@dataclass
class SlotState:
    index: int
    channel: ChannelInfo | None = None
    subscribed: set[str] = field(default_factory=set)
    closing_announced: int = 0  # number of the channel that announced socket_closing
    # A rollover's old channel, kept open and delivering while the replacement's base topics are refused
    # (`hold`): what it is subscribed to, and what it refused (asked of the replacement alone).
    held: ChannelInfo | None = None
    held_topics: set[str] = field(default_factory=set)
    held_refused: set[str] = field(default_factory=set)


def refused_permissions(body: object) -> tuple[str, ...]:
    """The permissions a 4xx answer says are missing (`messageParams.missingPermissions`: "a, b" or a list)."""
    params = body.get("messageParams") if isinstance(body, dict) else None
    value = params.get("missingPermissions") if isinstance(params, dict) else None
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
    return tuple(sorted({i.strip()[:100] for i in items if isinstance(i, str) and i.strip()}))[:20]


def parse_expires(value: object) -> float:
    if not isinstance(value, str):
        return 0.0
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def apply(ingest: Ingest, received: Received) -> Outcome:
    """Hand a frame's events to `Ingest`; the first real state change is the counted outcome,
    the others go to the tracker uncounted (one message, one outcome)."""
    if received.reading is not None:
        return ingest.conversation(received.reading, None)
    readings, utterances = received.readings, received.utterances
    if readings or utterances:
        if utterances:
            counts = ingest.utterances  # each unscored (party, outcome) counted once
            for key in utterances:  # not Counter.update: its Mapping check costs more than the loop
                counts[key] += 1
        message = received.outcome or _TRANSCRIPT
        for reading in readings:  # the message is a `reading` when any of its utterances was one
            if ingest.utterance(reading) == _READING:
                message = _READING
        ingest.messages[message] += 1  # `ingest.count`, inlined: most frames end here
        return message
    if received.postcall is not None:
        postcall = Outcome(ingest.postcall.record(*received.postcall, ingest.wall()))
        ingest.count(postcall)
        return postcall
    tracker = ingest.tracker
    outcome: Outcome | None = None
    for change in received.changes:
        if tracker.is_current_state(change.agent_id, change.conversation_id, change.state):
            continue
        if not outcome:
            outcome = ingest.conversation(None, change)
        else:
            tracker.state(change, ingest.clock())
            if len(ingest.parties) > 1:
                ingest.follow(change, ingest.clock())
    if not outcome:
        outcome = received.outcome or Outcome.STATE_CHANGE
        ingest.count(outcome)
    return outcome


class NotificationsSession:
    def __init__(
        self,
        *,
        queue_ids: list[str],
        agent_ids: list[str],
        grace_seconds: float = 5.0,
        idle_seconds: float = 900.0,
        sentiment_scale: proto.ScaleSetting = "auto",
        max_channels: int = 20,
        topics_per_channel: int = 1000,
        analyzer: UtteranceAnalyzer | None = None,
        score_parties: frozenset[str] = frozenset({transcription.CUSTOMER}),
        postcall_hold_seconds: float = 600.0,
        parse: Callable[[str | bytes], proto.Message] = proto.parse_fast,
    ) -> None:
        if not queue_ids and not agent_ids:
            raise ValueError(
                "source: the notifications source needs at least one --agent-id or --queue-id: it subscribes "
                "v2.users.{id}.conversations / v2.routing.queues.{id}.conversations to learn which agent a "
                "conversation's sentiment belongs to"
            )
        self.parse = parse  # `proto.parse` in the tests that check the fast decoder against it
        self.base_topics = [proto.user_topic(a) for a in agent_ids] + [proto.queue_topic(q) for q in queue_ids]
        self.attribution = proto.Attribution(grace_seconds, idle_seconds, postcall_hold=postcall_hold_seconds)
        self.transcripts = transcription.Transcripts(analyzer or build_analyzer("vader"), score_parties)
        # For `check`: per topic kind, events that arrived while the call was live / after it ended.
        self.cadence: dict[str, list[float | None]] = {"transcription": [], "sentiment": []}
        self.calls_connected = 0
        self.scale = proto.Scale(sentiment_scale)
        self.plan = proto.TopicPlan(topics_per_channel, max_channels)
        self.dedup = Deduplicator()
        self.slots: list[SlotState] = []
        self.rejected: Counter[str] = Counter()
        self.topic_results: dict[str, proto.TopicResult] = {}  # latest answer per base topic / topic kind
        self.missing_permissions: set[str] = set()
        self.now = 0.0  # the latest `now` handed in: the rate-limited warnings' clock
        self._numbers = 0
        self._warn_refused = RateLimitedWarning(60.0, self._clock)
        self._warn_rejected = RateLimitedWarning(60.0, self._clock)
        self._warn_missing = RateLimitedWarning(60.0, self._clock)
        self._warn_held_full = RateLimitedWarning(60.0, self._clock)
        self.handlers: dict[str, Callable[[proto.Message, float, float], Received]] = {
            proto.Kind.CONVERSATION: self._conversation,
            proto.Kind.SENTIMENT: self._sentiment,
            proto.Kind.TRANSCRIPTION: self._transcription,
        }

    def _clock(self) -> float:
        return self.now

    def start(self) -> list[int]:
        """Plan the base topics; the slots to open."""
        for topic in self.base_topics:
            if self.plan.add(topic) is None:
                log.error("too many --agent-id/--queue-id topics for the channel limit: %s refused", topic)
        for index in range(len(self.plan.slots)):
            self._slot(index)
        return list(range(len(self.slots)))

    def _slot(self, index: int) -> SlotState:
        while len(self.slots) <= index:
            self.slots.append(SlotState(len(self.slots)))
        return self.slots[index]

    # -- frames ------------------------------------------------------------------------------------
    def receive(self, frame: str | bytes, channel: int, now: float, wall: float) -> Received:
        """One frame from the channel numbered `channel` (0: not from a known channel).

        One call per frame down to the handler (`_receive` was a second): the try costs nothing in 3.11."""
        self.now = now
        try:
            overlap = self.dedup.overlaps > 0  # `dedup.active`, read once
            # During an overlap the cross-channel key digests every body: `parse` keeps each body as a dict.
            if overlap:
                message = proto.parse(frame)
            elif self.parse is _PARSE_FAST:
                read = _READ_FRAME(frame)  # a transcription frame comes without its `Message`
                if isinstance(read, tuple):
                    return self._wire_transcript(read[1], read[0], now, wall)
                if isinstance(read, proto.RawConversation):
                    return self._raw_conversation(read, channel, now, wall)
                message = read
            else:
                message = self.parse(frame)
            return self._dispatch(message, channel, now, wall, overlap)
        except RecursionError:
            # A body that parsed just under the recursion limit can still exceed it when it is
            # serialised again (duplicate keys, de-duplication) deeper in the stack.
            return Received(proto.Kind.MALFORMED)

    def _dispatch(self, message: proto.Message, channel: int, now: float, wall: float, overlap: bool) -> Received:
        kind = message.kind
        handler = self.handlers.get(kind)  # the kinds with a handler first: nearly every frame is one
        if handler is not None:
            if overlap and channel and self.dedup.duplicate(message.dedup_key(), channel):
                return Received(Outcome.DUPLICATE)
            return handler(message, now, wall)
        if kind == proto.Kind.HEARTBEAT:
            return Received(Outcome.HEARTBEAT)
        if kind in (proto.Kind.MALFORMED, proto.Kind.UNKNOWN):
            return Received(Outcome(kind))
        if kind == proto.Kind.PONG:
            return Received(Outcome.CONTROL, traffic=False)
        if kind == proto.Kind.SOCKET_CLOSING:
            return Received(Outcome.CONTROL, actions=self._closing(channel))
        return Received(Outcome.CONTROL)  # other channel.metadata

    def _closing(self, number: int) -> list[Action]:
        for slot in self.slots:
            current = slot.channel
            if current is not None and current.number == number and slot.closing_announced != number:
                slot.closing_announced = number
                log.info("channel %d: platform announced socket_closing; rolling over", slot.index)
                return [Rollover(slot.index, "socket_closing")]
        return []

    def _raw_conversation(self, read: proto.RawConversation, channel: int, now: float, wall: float) -> Received:
        """A conversation frame with its body still text: the copy of the call's last body, word for word, is
        its duplicate (`Attribution.same_text`); any other is decoded and handled as `_conversation`, its
        text's hash kept for the next copy. Not during an overlap: `receive` uses `parse` then."""
        text = hash(read.text)
        if self.attribution.same_text(text, now):
            return Received(Outcome.DUPLICATE)
        message = read.message()
        if message.kind != proto.Kind.CONVERSATION:  # not expected: msgspec refused a frame json.loads took
            return self._dispatch(message, channel, now, wall, False)
        return self._conversation(message, now, wall, text)

    def _conversation(self, message: proto.Message, now: float, wall: float, text: int | None = None) -> Received:
        topic_queue = message.topic_id if message.topic.startswith("v2.routing.queues.") else None
        update = self.attribution.on_conversation(message.body, topic_queue, now, wall, message.plain, text)
        actions = self._subscribe(*update.subscribe) if update.subscribe else []
        self.calls_connected += bool(update.subscribe)
        return Received(Outcome(update.outcome or Outcome.STATE_CHANGE), None, update.changes, actions)

    def _sentiment(self, message: proto.Message, _now: float, wall: float) -> Received:
        """Genesys' overall score, computed after the call: to the post-call families, never the live window."""
        body = message.body
        conversation_id = body.get("conversationId")
        if not isinstance(conversation_id, str) or not conversation_id:
            conversation_id = message.topic_id
        who = self.attribution.owner(conversation_id)
        self._arrived("sentiment", conversation_id, _now)
        if who is None:
            return Received(Outcome.UNATTRIBUTED)
        agent, queue = who
        if queue == UNKNOWN_QUEUE:
            queue_ids = body.get("queueIds")
            if isinstance(queue_ids, list) and queue_ids and isinstance(queue_ids[0], str):
                queue = queue_ids[0]
        raw = body.get("sentimentOverallScore")
        if raw is None:
            self._warn_missing(
                log, "post-call sentiment without sentimentOverallScore (agent %s): not counted as 0.0", agent
            )
            return Received(MISSING_SENTIMENT)
        score = self.scale.normalise(raw, conversation_id)
        if score is None:
            return Received(INVALID_SCORE)
        trend = self.scale.trend(body.get("sentimentTrendScore"))
        actions = self._unsubscribe(self.attribution.release(conversation_id))
        return Received(
            Outcome(POSTCALL_SCORE), actions=actions, postcall=(agent, queue, conversation_id, score, trend)
        )

    def _transcription(self, message: proto.Message, now: float, wall: float) -> Received:
        wire = message.wire
        parsed = (
            transcription.read_message(message.body, message.topic_id)
            if wire is None
            else transcription.read_wire(wire, message.topic_id)
        )
        return self._transcript(parsed, now, wall)

    def _transcript(self, parsed: transcription.TranscriptMessage | None, now: float, wall: float) -> Received:
        """A batch of utterances (or a keepalive): each final utterance of a watched call scored once.

        Shaped for the hot path (most frames of a stream): the live call's `Tracked` looked up once for
        `attribute`'s answer, the cadence and the connect stamp alike."""
        if parsed is None:
            return Received(Outcome.MALFORMED)
        conversation_id = parsed.conversation_id
        tracked = self.attribution.live.get(conversation_id)
        if tracked is not None and tracked.agent_id:  # `attribute(conversation_id, None)`'s tuple
            who: tuple[str, str] | str = (tracked.agent_id, tracked.queue_id)
            connected = tracked.connected_wall
        else:
            who, connected = self.attribution.attribute(conversation_id, None), None
        if parsed.utterances:
            seen = self.cadence["transcription"]
            if len(seen) < CADENCE_LIMIT:  # `since_end`, from the Tracked at hand when the call is live
                if tracked is not None:
                    seen.append(None if tracked.ended_at is None else now - tracked.ended_at)
                else:
                    seen.append(self.attribution.since_end(conversation_id, now))
        decision = self.transcripts.decide(parsed, who, wall, connected)
        outcome = decision.outcome  # already an `Outcome` member: no conversion per frame
        # Positional: keywords and two default factories made this about 300 ns instead of 190.
        return Received(
            outcome if isinstance(outcome, Outcome) else Outcome(outcome),
            None,  # reading
            [],  # changes
            [],  # actions
            True,  # traffic
            decision.readings,
            decision.utterances,
        )

    def _wire_transcript(self, body: transcription.WireBody, topic_id: str, now: float, wall: float) -> Received:
        """`_transcript(read_wire(body, topic_id))`'s answer without the objects in between: the hot path.

        `Transcripts.decide_wire` reads and decides in one pass (no `TranscriptMessage`, `Utterance` or
        `Decision`); the lines before it are `_transcript`'s, repeated rather than shared because a call
        per frame is what this copy saves. Two sessions, one decoding with `parse` (the reference
        readers), are checked to answer alike (tests/test_notifications_fast_parse.py)."""
        conversation_id = body.conversationId or topic_id
        if not conversation_id:
            return Received(Outcome.MALFORMED)
        tracked = self.attribution.live.get(conversation_id)
        if tracked is not None and tracked.agent_id:
            who: tuple[str, str] | str = (tracked.agent_id, tracked.queue_id)
            connected = tracked.connected_wall
        else:
            who, connected = self.attribution.attribute(conversation_id, None), None
        if body.transcripts:
            seen = self.cadence["transcription"]
            if len(seen) < CADENCE_LIMIT:
                if tracked is not None:
                    seen.append(None if tracked.ended_at is None else now - tracked.ended_at)
                else:
                    seen.append(self.attribution.since_end(conversation_id, now))
        outcome, readings, utterances = self.transcripts.decide_wire(body, conversation_id, who, wall, connected)
        return Received(
            outcome if isinstance(outcome, Outcome) else Outcome(outcome), None, [], [], True, readings, utterances
        )

    def _arrived(self, kind: str, conversation_id: str, now: float) -> None:
        seen = self.cadence[kind]
        if len(seen) < CADENCE_LIMIT:
            seen.append(self.attribution.since_end(conversation_id, now))

    def cadence_report(self) -> list[tuple[bool, str, str]]:
        """For `check`: is anything live? When each topic kind's events came relative to the call's end,
        and which queues speak a dialect the analyzer cannot score."""
        lines: list[tuple[bool, str, str]] = []
        for kind, name in (
            ("transcription", transcription.TOPIC_KIND),
            ("sentiment", proto.topic_kind(proto.sentiment_topic("x"))),
        ):
            seen = self.cadence[kind]
            during = sum(1 for s in seen if s is None)
            after = sorted(s for s in seen if s is not None)
            if not seen:
                ok = kind == "sentiment" or self.calls_connected == 0
                why = (
                    "no transcripts arrived although calls connected: is transcription on for the queue "
                    "(or its flow) and the topic permitted?"
                    if not ok
                    else "no events (post-call scores come minutes after a call ends)"
                    if kind == "sentiment"
                    else "no call connected while check ran"
                )
                lines.append((ok, "cadence", f"{name}: {why}"))
                continue
            tail = (
                f"; after the call's end: {len(after)} (median {after[len(after) // 2]:.0f} s, max {after[-1]:.0f} s)"
                if after
                else ""
            )
            live = "live" if during else "post-call"
            lines.append((True, "cadence", f"{name}: {during} events while the call was live{tail} ({live})"))
        for dialect, queues in sorted(self.transcripts.unscorable.items()):
            names = ", ".join(f"{q} ({n})" for q, n in sorted(queues.items()))
            lines.append(
                (
                    False,
                    "language",
                    f"{self.transcripts.analyzer.name} cannot score {dialect} utterances on queues {names}: "
                    "they are counted unsupported_language, never 0.0; use --sentiment-analyzer onnx with a "
                    "model for it",
                )
            )
        return lines

    # -- topics ------------------------------------------------------------------------------------
    def _subscribe(self, *topics: str) -> list[Action]:
        actions: list[Action] = []
        for topic in topics:
            index = self.plan.add(topic)
            if index is None:
                self._warn_refused(
                    log,
                    "every channel is full (%d channels x %d topics): %s refused; raise "
                    "--notifications-max-channels (at most 20), lower --postcall-hold-seconds or narrow "
                    "--agent-id/--queue-id",
                    self.plan.max_channels,
                    self.plan.per_channel,
                    proto.topic_kind(topic),
                )
                continue
            self._slot(index)
            if SyncTopics(index) not in actions:
                actions.append(SyncTopics(index))
        return actions

    def _unsubscribe(self, topics: list[str]) -> list[Action]:
        actions: list[Action] = []
        for topic in topics:
            index = self.plan.remove(topic)
            if index is not None and SyncTopics(index) not in actions:
                actions.append(SyncTopics(index))
        return actions

    def sweep(self, now: float) -> list[Action]:
        """Drop the transcription topics of calls whose grace is over, and post-call topics past their hold."""
        self.now = now
        topics = self.attribution.due(now)
        for topic in topics:
            if topic.endswith(".transcription"):
                self.transcripts.forget(topic.split(".")[2])
        return self._unsubscribe(topics)

    def planned(self, slot: int) -> list[str]:
        return sorted(self.plan.slots[slot]) if slot < len(self.plan.slots) else []

    def sync_request(self, slot: int) -> tuple[str, list[str]] | None:
        """The REST call that brings the slot's channel to the plan: PUT (replace) after removals,
        POST (add) for additions only, None when nothing changed."""
        state = self.slots[slot]
        desired = set(self.planned(slot))
        if state.subscribed - desired:
            return "PUT", sorted(desired)
        adds = sorted(desired - state.subscribed)
        return ("POST", adds) if adds else None

    def subscriptions_refused(
        self, slot: int, method: str, requested: list[str], status: int, detail: str, body: object = None
    ) -> list[str]:
        """A 4xx answer to a PUT/POST of `requested` topics: every one of them is rejected (counted, logged,
        shown by `check` with the permissions the answer names): never a retry storm, never a new channel.
        Per-call topics leave the plan (not asked again). Base topics stay planned on this slot: nothing can
        be attributed without them and a permission can be granted later, so the shell asks again, slowly,
        on the same channel. While the slot holds its old channel (`hold`), the per-call topics stay too:
        the held channel carries them until the same request, asked again, is answered. Returns the base
        topics refused. With `ignoreErrors=true` the platform lists each topic instead; this is the
        fallback."""
        missing = refused_permissions(body)
        # While a channel is held it carries the per-call topics still planned (not those dropped meanwhile).
        held = [t for t in requested if self.plan.where.get(t) == slot] if self.slots[slot].held is not None else []
        answer = {"entities": [{"id": t, "state": "Rejected", "rejectionReason": f"http_{status}"} for t in requested]}
        self.subscriptions_answered(slot, method, answer, requested)
        self.missing_permissions.update(missing)
        for topic in requested:
            key = topic if topic in self.base_topics else proto.topic_kind(topic)
            result = self.topic_results.get(key)
            if result is not None and not result.permitted:
                self.topic_results[key] = proto.TopicResult(topic, False, result.reason, missing, detail[:300])
        base = [t for t in requested if t in self.base_topics]
        for topic in {*base, *held}:  # back where it was: the same channel asks again
            self.plan.slots[slot].add(topic)
            self.plan.where[topic] = slot
        return base

    def subscriptions_answered(self, slot: int, method: str, body: object, requested: list[str]) -> None:
        """Record the platform's answer to a PUT/POST of `requested` topics on the slot's channel."""
        state = self.slots[slot]
        try:
            results = proto.read_subscriptions(body, requested)
        except ValueError as exc:
            raise SessionError(f"{method} subscriptions: {exc}") from None  # retried by the shell
        if method == "PUT":
            state.subscribed = set()
        unconfirmed = [r.topic for r in results if r.reason == proto.UNCONFIRMED]
        for result in results:
            if result.reason == proto.UNCONFIRMED:
                state.subscribed.discard(result.topic)
                continue
            key = result.topic if result.topic in self.base_topics else proto.topic_kind(result.topic)
            self.topic_results[key] = result
            if result.permitted:
                state.subscribed.add(result.topic)
                continue
            self._rejected(result)
            state.subscribed.discard(result.topic)
        if unconfirmed:
            raise SessionError(f"{method} subscriptions: the answer did not list {len(unconfirmed)} topics")

    def _rejected(self, result: proto.TopicResult) -> None:
        """A topic the platform rejected: counted by reason, logged with the permissions, out of the plan."""
        reason = result.reason
        if reason not in self.rejected and len(self.rejected) >= REJECT_REASONS_LIMIT:
            reason = catalogue.RejectReason.OTHER  # the platform's reasons are wire text: a bounded label
        self.rejected[reason] += 1
        self.missing_permissions.update(result.missing_permissions)
        self.plan.remove(result.topic)
        self._warn_rejected(
            log,
            "subscription to %s rejected (%s)%s",
            result.topic,
            result.detail or result.reason,
            f"; grant the OAuth client's role: {', '.join(result.missing_permissions)}"
            if result.missing_permissions
            else "",
        )

    # -- a held channel ----------------------------------------------------------------------------
    def hold(self, slot: int, channel: ChannelInfo) -> None:
        """`channel`, the slot's channel so far, has a working subscription and stays, delivering, while
        its replacement's base topics are refused (the shell holds it until the replacement is answered
        or the platform closes it: `release`). It carries what the slot was subscribed to until now, so
        this comes before the refusal is recorded. Holding one already, the slot keeps that one."""
        state = self.slots[slot]
        if state.held is None:
            state.held, state.held_topics, state.held_refused = channel, set(state.subscribed), set()

    def held_request(self, slot: int) -> list[str]:
        """The topics to add (POST) to the slot's held channel: planned ones it lacks and has not refused,
        as many as its topic limit leaves room for (the rest wait for the replacement). Never a PUT: a
        replacement of its subscription could lose what it still delivers, and it is going anyway."""
        state = self.slots[slot]
        if state.held is None:
            return []
        lacking = sorted(set(self.planned(slot)) - state.held_topics - state.held_refused)
        room = max(0, self.plan.per_channel - len(state.held_topics))
        if len(lacking) > room:
            self._warn_held_full(
                log,
                "channel %d: the held channel is full (%d topics): %d topics wait for its replacement",
                slot,
                len(state.held_topics),
                len(lacking) - room,
            )
        return lacking[:room]

    def held_answered(self, slot: int, number: int, body: object, requested: list[str]) -> None:
        """The platform's answer to a POST of `requested` topics on the held channel numbered `number`."""
        state = self.slots[slot]
        if state.held is None or state.held.number != number:
            return  # let go meanwhile: the replacement asks for what is planned
        try:
            results = proto.read_subscriptions(body, requested)
        except ValueError as exc:
            raise SessionError(f"POST subscriptions on the held channel: {exc}") from None
        for result in results:
            if result.reason == proto.UNCONFIRMED:
                continue  # neither: asked again with the next change of plan
            key = result.topic if result.topic in self.base_topics else proto.topic_kind(result.topic)
            self.topic_results[key] = result
            if result.permitted:
                state.held_topics.add(result.topic)
            else:
                self._rejected(result)

    def held_refused(self, slot: int, number: int, requested: list[str]) -> None:
        """A 4xx to a POST on the held channel: the topics stay planned, for the replacement alone."""
        state = self.slots[slot]
        if state.held is not None and state.held.number == number:
            state.held_refused.update(requested)

    def release(self, slot: int, number: int) -> bool:
        """The held channel numbered `number` is let go (its replacement was answered, or it closed)."""
        state = self.slots[slot]
        if state.held is None or state.held.number != number:
            return False
        state.held, state.held_topics, state.held_refused = None, set(), set()
        return True

    # -- channels ----------------------------------------------------------------------------------
    def channel_created(self, slot: int, body: object, wall: float) -> ChannelInfo:
        """The answer to `POST /api/v2/notifications/channels`, numbered; not yet the slot's channel."""
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("id"), str)
            or not isinstance(body.get("connectUri"), str)
        ):
            raise SessionError("POST channels answered without id and connectUri")
        uri = urlsplit(body["connectUri"])
        if uri.scheme not in ("wss", "ws") or not uri.hostname:
            raise SessionError(f"POST channels answered a connectUri that is not a WebSocket URL ({uri.scheme}://)")
        if uri.scheme == "ws" and not is_loopback(uri.hostname):
            # TLS toward the API must not become plain text toward another host because an answer says so.
            raise SessionError(f"refused connectUri: plain ws:// to non-loopback host {uri.hostname}; wss:// only")
        self._numbers += 1
        return ChannelInfo(
            body["id"], body["connectUri"], parse_expires(body.get("expires")), wall, self._numbers, slot
        )

    def channel_ready(self, channel: ChannelInfo) -> None:
        """The channel's socket is open and its topics are on: it is the slot's channel now."""
        self.slots[channel.slot].channel = channel

    def rollover_at(self, slot: int) -> float | None:
        """Wall time to replace the slot's channel before its `expires` (None: it has none)."""
        channel = self.slots[slot].channel
        if channel is None or not channel.expires:
            return None
        margin = min(600.0, max(1.0, 0.1 * (channel.expires - channel.opened)))
        return channel.expires - margin

    def channel_gone(self, slot: int, number: int) -> list[Action]:
        """A HEAD probe answered 404 for the channel numbered `number`."""
        current = self.slots[slot].channel
        if current is None or current.number != number:
            return []
        log.warning("channel %d: HEAD answered 404; replacing the channel", slot)
        return [Rollover(slot, "channel_gone")]

    # -- what it exposes ---------------------------------------------------------------------------
    def metrics(self, channels_open: int, rest_results: Counter[ApiResult]) -> Iterable[Metric]:
        yield gauge(catalogue.NOTIFICATIONS_CHANNELS_OPEN, channels_open)
        yield gauge(catalogue.NOTIFICATIONS_CHANNELS_HELD, sum(s.held is not None for s in self.slots))
        # A held channel's topics count: it is subscribed to them (and delivers them) while its replacement is not.
        yield gauge(
            catalogue.NOTIFICATIONS_TOPICS_SUBSCRIBED, sum(len(s.subscribed | s.held_topics) for s in self.slots)
        )
        yield counter(catalogue.NOTIFICATIONS_REJECTED, self.rejected)
        yield counter(catalogue.NOTIFICATIONS_REFUSED, self.plan.refused)
        expiry = gauge(catalogue.NOTIFICATIONS_CHANNEL_EXPIRY)
        for slot in self.slots:
            if slot.channel is not None and slot.channel.expires:
                expiry.add_metric([str(slot.index)], slot.channel.expires)
        yield expiry
        yield counter(catalogue.NOTIFICATIONS_API_REQUESTS, rest_results)
        yield info(catalogue.SENTIMENT_SCALE, {"scale": self.scale.in_use, "setting": self.scale.setting})

    def subscription_report(self) -> list[tuple[bool, str, str]]:
        """For `check`: (ok, what, text) per base topic and per sentiment topic kind, then the cadence."""
        lines: list[tuple[bool, str, str]] = self.cadence_report()
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
