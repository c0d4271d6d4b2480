"""Genesys Cloud Notifications API, pure: parsing, attribution and the topic plan (no I/O, no clock).

Shapes follow shared/genesys-platform-notes.md (read from the official SDK models):
- envelopes `{"topicName", "eventBody", "metadata": {"CorrelationId"}}`;
- `v2.users.{id}.conversations` / `v2.routing.queues.{id}.conversations` bodies list participants
  (purpose, userId, queueId, calls[] with state, disconnectType, afterCallWork);
- `v2.speechandtextanalytics.conversation.{id}.sentiment` bodies carry the conversation's
  `sentimentOverallScore` and `sentimentTrendScore` but no agent: `Attribution` supplies the agent
  and queue from the conversation topics.

The asyncio shell (`notifications.py`) feeds frames in and performs what these classes decide:
which sentiment topics to subscribe or drop, on which channel.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from genesys_sentiment_exporter.catalogue import Outcome
from genesys_sentiment_exporter.model import ENDING_STATES, UNKNOWN_QUEUE, StateChange
from genesys_sentiment_exporter.scale import Scale as Scale  # re-exported for the shell and tests
from genesys_sentiment_exporter.scale import ScaleSetting as ScaleSetting
from genesys_sentiment_exporter.sources.transcription_protocol import WireBody

CHANNELS_PATH = "/api/v2/notifications/channels"
HEARTBEAT_TOPIC = "channel.metadata"
SOCKET_CLOSING_TOPIC = "v2.system.socket_closing"
PING = json.dumps({"message": "ping"})

_USERS = re.compile(r"^v2\.users\.([^.]+)\.conversations$")
_QUEUES = re.compile(r"^v2\.routing\.queues\.([^.]+)\.conversations$")
_SENTIMENT = re.compile(r"^v2\.speechandtextanalytics\.conversation\.([^.]+)\.sentiment$")
_TRANSCRIPTION = re.compile(r"^v2\.conversations\.([^.]+)\.transcription$")

# Outcomes this source adds to the shared set (reading, state_change, heartbeat, control, ...).
UNATTRIBUTED = Outcome.UNATTRIBUTED  # a sentiment event for a conversation with no known agent
NOT_VOICE = Outcome.NOT_VOICE  # a conversation event for chat, email, ...: no speech sentiment to attribute


def user_topic(user_id: str) -> str:
    return f"v2.users.{user_id}.conversations"


def queue_topic(queue_id: str) -> str:
    return f"v2.routing.queues.{queue_id}.conversations"


def transcription_topic(conversation_id: str) -> str:
    return f"v2.conversations.{conversation_id}.transcription"


def sentiment_topic(conversation_id: str) -> str:
    return f"v2.speechandtextanalytics.conversation.{conversation_id}.sentiment"


def topic_kind(topic: str) -> str:
    """A bounded name for a topic (metric labels, `check` output): never the id inside it."""
    if _USERS.match(topic):
        return "v2.users.{id}.conversations"
    if _QUEUES.match(topic):
        return "v2.routing.queues.{id}.conversations"
    if _SENTIMENT.match(topic):
        return "v2.speechandtextanalytics.conversation.{id}.sentiment"
    if _TRANSCRIPTION.match(topic):
        return "v2.conversations.{id}.transcription"
    return "other"


# -- envelopes --------------------------------------------------------------------------------------


class Kind:
    HEARTBEAT = "heartbeat"
    PONG = "pong"
    SOCKET_CLOSING = "socket_closing"
    CONVERSATION = "conversation"
    SENTIMENT = "sentiment"
    TRANSCRIPTION = "transcription"
    CONTROL = "control"
    MALFORMED = Outcome.MALFORMED
    UNKNOWN = Outcome.UNKNOWN_TYPE


@dataclass(slots=True)
class Message:
    kind: str
    topic: str = ""
    body: dict[str, Any] = field(default_factory=dict)
    topic_id: str = ""  # the user, queue or conversation id inside the topic name
    # Decoded by msgspec (`parse_fast`): no NaN, no infinity, no lone surrogate in it (`body_digest`'s short way).
    plain: bool = False
    # A transcription body in its typed form (`parse_fast`); `body` is then left empty.
    wire: WireBody | None = None

    def dedup_key(self) -> bytes:
        """The same event as seen on two channels during an overlap: topic and body, not metadata.

        A 16-byte digest: the de-duplicator holds up to 200 000 keys, and bodies can be 100 KB.
        """
        return body_digest(self.topic, self.body, self.plain)


# Built once: `json.dumps` with options builds a new encoder per call (~1 us of a ~9 us digest).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
# The C scanner `json.loads` ends in, without its Python wrappers (~0.8 us of a ~4.5 us decode).
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_STRICT = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False).encode
_SORTED = msgspec.json.Encoder(order="sorted").encode


def body_digest(topic: str, body: dict[str, Any], plain: bool = False) -> bytes:
    """Two bodies get the same digest exactly when they are the same JSON value (key order, spacing and
    escapes aside), as with the canonical `json.dumps(sort_keys=True)` text this digest was first taken of.
    What it guards: the second copy of each conversation update (its user and its queue topic) is counted
    `duplicate`, and an update with any field changed, read or not, is counted as the update it is.

    The text digested is msgspec's sorted-key encoding (about 1 us for a conversation body, against 8 us
    for `json.dumps`). It is one-to-one on JSON values but for two: NaN and infinities all become `null`,
    and a lone surrogate cannot be encoded. msgspec's decoder makes neither (`plain`); a body from
    `json.loads` may hold both, so it is first encoded by `json.dumps` refusing non-finite floats, and a
    body with one (or a lone surrogate) is digested in its canonical `json.dumps` text instead, behind a
    marker byte no msgspec text starts with. Which form is used depends on the value alone, never on the
    decoder: copies decoded by the two paths still match.
    """
    data: bytes | None = None
    if not plain:
        try:
            _STRICT(body)  # RecursionError on a body nested past the limit, as before: malformed
            plain = True
        except ValueError:  # NaN or an infinity in it
            pass
    if plain:
        try:
            data = _SORTED(body)
        except ValueError:  # a lone surrogate (UnicodeEncodeError)
            data = None
    if data is None:
        data = b"\x01" + _CANONICAL(body).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(topic.encode("utf-8", "surrogatepass") + b"\x00" + data, digest_size=16).digest()


def _decode(frame: str | bytes) -> Any:
    """`json.loads(frame)`, exactly: the scanner's answer only when it consumed the whole string from
    its first character; anything else (bytes, whitespace around, trailing text, errors) goes to
    `json.loads` for its own answer or error."""
    if type(frame) is str:
        try:
            value, end = _SCAN(frame, 0)
        except StopIteration:
            return json.loads(frame)  # not a value at 0: json.loads raises (or skips leading whitespace)
        if end == len(frame):
            return value
    return json.loads(frame)


def parse(frame: str | bytes) -> Message:
    try:
        message = _decode(frame)
    except (ValueError, RecursionError):  # RecursionError: nested ~1 000 deep
        return Message(Kind.MALFORMED)
    return _message(message, False)


class _TranscriptionFrame(msgspec.Struct, gc=False):
    topicName: str
    eventBody: WireBody


_TRANSCRIPTION_FRAME = msgspec.json.Decoder(_TranscriptionFrame).decode
_ANY = msgspec.json.Decoder().decode
_DECODE_ERRORS = (msgspec.MsgspecError, ValueError, RecursionError)  # ValueError: a str msgspec cannot encode
# Both decoders stop at the interpreter's recursion limit (1 000 frames by default), a level apart: near
# it one could answer where the other raises, and where that is depends on how deep the caller's stack
# is. A frame nested at most this deep is far from it for a caller under ~350 frames deep (the exporter's
# reader: ~20; a test under pytest and hypothesis: ~100). A frame nests at most half its length deep,
# and at most as deep as it has brackets: only a longer frame is counted (two passes, ~1 us per KB).
_SAFE_DEPTH = 600


class _Envelope(msgspec.Struct, gc=False):
    topicName: str
    eventBody: msgspec.Raw = msgspec.Raw(b"")  # its JSON text, checked but not decoded; absent: empty


_ENVELOPE = msgspec.json.Decoder(_Envelope).decode


@dataclass(slots=True)
class RawConversation:
    """A users or queues conversation frame read only as far as its duplicate check needs (`read_frame`):
    its topic, the user or queue id in it, and its body (an object) as the JSON text it came in, undecoded.
    Each update comes twice, through its user and its queue topic, and the second copy is most often the
    first's text again: the session tells it by that text alone (`Attribution.same_text`), and decodes
    the body (`message`) only when it is not."""

    topic: str
    topic_id: str
    text: bytes  # the body's JSON text, from its "{" to its "}"
    frame: str

    def message(self) -> Message:
        """`parse_fast`'s answer: the body decoded by msgspec, or `parse`'s answer when msgspec refuses it
        (NaN is refused before this, by the envelope's decode; lone surrogates, numbers beyond a float)."""
        try:
            body = _ANY(self.text)
        except _DECODE_ERRORS:
            return parse(self.frame)
        return Message(Kind.CONVERSATION, self.topic, body, self.topic_id, True)


def _conversation_topic_id(topic: str) -> str:
    """The id in a users or queues conversation topic (`_USERS`, `_QUEUES` without the regex), else ""."""
    if topic.startswith("v2.users."):
        ident = topic[9:-14]
    elif topic.startswith("v2.routing.queues."):
        ident = topic[18:-14]
    else:
        return ""
    return ident if ident and topic.endswith(".conversations") and "." not in ident else ""


def parse_fast(frame: str | bytes) -> Message:
    """`parse`'s answer, decoded by msgspec (a transcription body straight into its typed form, `WireBody`;
    any other frame into the same dict `json.loads` makes), and by `parse` itself whenever msgspec refuses
    the frame: invalid JSON, a transcription body of another shape, NaN, infinities, lone surrogates,
    bytes (json.loads guesses UTF-16/32 and a BOM; msgspec reads UTF-8 only). msgspec is strict where
    `json.loads` is lenient, never the other way round, and whatever both accept they read as the same
    value (repeated keys: the last); frames that may nest deep (`_SAFE_DEPTH`) go to `parse` too. So every
    frame still gets `parse`'s outcome
    (tests/test_notifications_fast_parse.py checks it on generated frames).

    Why: the bench's frames cost `json.loads` about 4.6 us each; the typed decode about 0.9 us.
    """
    read = read_frame(frame)
    if isinstance(read, tuple):
        return Message(Kind.TRANSCRIPTION, transcription_topic(read[0]), {}, read[0], True, read[1])
    if isinstance(read, RawConversation):
        return read.message()
    return read


def read_frame(frame: str | bytes) -> tuple[str, WireBody] | RawConversation | Message:
    """`parse_fast` for the session's hot path: a well-formed transcription frame as (conversation id from
    its topic, typed body), without the `Message` around it (the session reads nothing else of it); a
    well-formed users or queues conversation frame as a `RawConversation` (its body not decoded yet); any
    other frame as `parse_fast`'s `Message`. Why other shapes: a transcription frame is most of a
    stream, and `Message`'s construction was about a tenth of what the session does with one; half the
    conversation frames are second copies, told without decoding their bodies."""
    if type(frame) is not str or (len(frame) > 2 * _SAFE_DEPTH and frame.count("[") + frame.count("{") > _SAFE_DEPTH):
        return parse(frame)
    if frame.find("transcription", 0, 120) >= 0:  # a hint only: the topic is checked below
        try:
            typed = _TRANSCRIPTION_FRAME(frame)
        except _DECODE_ERRORS:
            typed = None
        if typed is not None:
            topic = typed.topicName
            # _TRANSCRIPTION without the regex: "v2.conversations." + an id without dots + ".transcription"
            conversation = topic[17:-14]
            if (
                conversation
                and topic.startswith("v2.conversations.")
                and topic.endswith(".transcription")
                and "." not in conversation
            ):
                return conversation, typed.eventBody
    elif frame.find(".conversations", 0, 120) >= 0:  # a hint only, like the one above
        try:
            envelope = _ENVELOPE(frame)
        except _DECODE_ERRORS:
            envelope = None
        if envelope is not None:
            topic_id = _conversation_topic_id(envelope.topicName)
            text = bytes(envelope.eventBody)
            if topic_id and text[:1] == b"{":  # else `_message`'s answer below (an empty body, ...)
                return RawConversation(envelope.topicName, topic_id, text, frame)
    try:
        value = _ANY(frame)
    except _DECODE_ERRORS:
        return parse(frame)
    return _message(value, True)


def _message(message: Any, plain: bool) -> Message:
    if not isinstance(message, dict):
        return Message(Kind.MALFORMED)
    topic = message.get("topicName")
    body = message.get("eventBody")
    if not isinstance(topic, str):
        return Message(Kind.MALFORMED)
    if topic == SOCKET_CLOSING_TOPIC:  # keyed on the topic name alone
        return Message(Kind.SOCKET_CLOSING, topic)
    if not isinstance(body, dict):
        body = {}
    if topic == HEARTBEAT_TOPIC:
        text = str(body.get("message", "")).lower()
        if "heartbeat" in text:
            return Message(Kind.HEARTBEAT, topic, body)
        if text == "pong":
            return Message(Kind.PONG, topic, body)
        return Message(Kind.CONTROL, topic, body)
    if topic.endswith(".transcription"):  # the bulk of a transcript stream: one match, not four
        match = _TRANSCRIPTION.match(topic)
        if match:
            return Message(Kind.TRANSCRIPTION, topic, body, match.group(1), plain)
    for pattern, kind in (
        (_USERS, Kind.CONVERSATION),
        (_QUEUES, Kind.CONVERSATION),
        (_SENTIMENT, Kind.SENTIMENT),
        (_TRANSCRIPTION, Kind.TRANSCRIPTION),
    ):
        match = pattern.match(topic)
        if match:
            return Message(kind, topic, body, match.group(1), plain)
    return Message(Kind.UNKNOWN, topic, body)


# -- scores: genesys_sentiment_exporter.scale (re-exported: the shell and tests name them here) ------


# -- conversations ----------------------------------------------------------------------------------

AGENT_PURPOSES = frozenset({"agent", "user"})
MAX_PARTICIPANTS = 64  # a call has a handful; a forged body listing thousands costs no more than this
_NON_VOICE_MEDIA = ("chats", "emails", "messages", "callbacks", "cobrowsesessions", "screenshares", "videos")
_NON_VOICE_KEYS = frozenset(_NON_VOICE_MEDIA)


@dataclass(slots=True)  # not frozen: a frozen __init__ goes through object.__setattr__ per field
class AgentLeg:
    agent_id: str
    queue_id: str
    state: str  # connected, alerting, ..., or wrapup / ended / disconnected once the call is over


def _leg_state(participant: dict[str, Any], call: dict[str, Any]) -> str:
    state = call.get("state")
    state = state.lower() if isinstance(state, str) and state else "unknown"
    if state not in ("disconnected", "terminated"):
        return state
    acw = call.get("afterCallWork")
    acw_state = acw.get("state") if isinstance(acw, dict) else None
    if acw_state == "pending":
        return "wrapup"
    if acw_state == "complete" or participant.get("endAcwTime") or participant.get("wrapup"):
        return "ended"
    return "disconnected"


@dataclass(slots=True)
class ConversationView:
    conversation_id: str
    voice: bool
    legs: list[AgentLeg]


def read_conversation(body: dict[str, Any], topic_queue: str | None) -> ConversationView | None:
    """The agents of a users/queues conversation body; None when the body has no usable id."""
    conversation_id = body.get("id")
    participants = body.get("participants")
    if not isinstance(conversation_id, str) or not conversation_id or not isinstance(participants, list):
        return None
    voice = False
    other_media = False
    acd_queue = ""
    per_agent: dict[str, AgentLeg] = {}
    for participant in participants[:MAX_PARTICIPANTS]:
        if type(participant) is not dict and not isinstance(participant, dict):
            continue
        get = participant.get
        calls = get("calls")
        if type(calls) is list:
            # Exact type checks first: a decoded body only holds plain dicts (the isinstance is for the rest).
            for call in calls:
                if type(call) is not dict:
                    calls = [c for c in calls if isinstance(c, dict)]
                    break
        else:
            calls = [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
        voice = voice or bool(calls)
        if not other_media and not _NON_VOICE_KEYS.isdisjoint(participant):  # most carry none of these keys
            other_media = any(get(m) for m in _NON_VOICE_MEDIA)
        purpose = get("purpose")
        purpose = purpose if type(purpose) is str or isinstance(purpose, str) else ""  # a list once raised TypeError
        queue = get("queueId")
        queue = queue if queue and isinstance(queue, str) else ""
        if queue and purpose == "acd":
            acd_queue = queue
        if purpose not in AGENT_PURPOSES or not calls:
            continue
        user = get("userId")
        if not user or not isinstance(user, str):
            continue
        leg = AgentLeg(user, queue, _leg_state(participant, calls[-1]))
        previous = per_agent.get(user)
        # The same agent more than once (transferred back, consult): a connected leg wins, else the latest.
        if previous is None or previous.state != "connected" or leg.state == "connected":
            per_agent[user] = leg
    if not per_agent:  # chat, email, ... with a call leg of its own is not a voice call to attribute
        return ConversationView(conversation_id, voice and not other_media, [])
    fallback = acd_queue or topic_queue or ""
    legs = list(per_agent.values())
    for leg in legs:  # each AgentLeg is new to this call: filled in place, not copied
        if not leg.queue_id:
            leg.queue_id = fallback
    return ConversationView(conversation_id, voice, legs)


@dataclass(slots=True)
class Tracked:
    conversation_id: str
    agent_id: str = ""  # who readings go to: the agent connected now, else the last one
    queue_id: str = UNKNOWN_QUEUE
    states: dict[str, str] = field(default_factory=dict)  # agent -> last state sent to the tracker
    ended_at: float | None = None  # monotonic; set when no agent leg is live any more
    last_seen: float = 0.0
    subscribed: bool = False
    last_body: bytes = b""  # digest of the last body (a duplicate check), never the body itself
    last_text: int | None = None  # the last body's JSON text's hash, when it came as text (`same_text`)
    connected_wall: float | None = None  # wall clock when an agent first connected (IVR speech is before)
    postcall_done: bool = False  # Genesys' score arrived already: no need to hold its topic after the call


@dataclass(slots=True)
class ConversationUpdate:
    outcome: str = ""  # set when the message needs no tracker work: duplicate, stale, not_voice, ...
    changes: list[StateChange] = field(default_factory=list)
    subscribe: tuple[str, ...] = ()  # per-conversation topics to add: transcription (live), sentiment (post-call)


class Attribution:
    """Which agent and queue each live voice conversation belongs to, and its topics' lives.

    A connected call gets two topics: its transcription (the live signal, dropped after the call's
    grace) and Genesys' post-call sentiment, held `postcall_hold` seconds after the call (the score is
    computed after transcription completes, "within minutes") or until the score arrives.
    `now` is monotonic (grace arithmetic); `wall` stamps the StateChanges.
    """

    def __init__(
        self,
        grace_seconds: float,
        idle_seconds: float = 900.0,
        remember: int = 10_000,
        max_live: int = 20_000,
        postcall_hold: float = 600.0,
    ) -> None:
        self.grace = grace_seconds
        self.idle = idle_seconds
        self.remember = remember
        self.postcall_hold = postcall_hold
        self.max_live = max_live  # live calls tracked at most (as many as agents by default)
        self.live: dict[str, Tracked] = {}
        self.finished: OrderedDict[str, tuple[str, str]] = OrderedDict()  # conversation -> (agent, queue)
        self.holding: dict[str, float] = {}  # conversation -> when its post-call topic goes
        self.ended_at: OrderedDict[str, float] = OrderedDict()  # finished conversation -> when it ended
        # Hash of a live call's last body's JSON text -> the call (`same_text`): one entry per live call at most.
        self.by_text: dict[int, str] = {}

    def same_text(self, text: int, now: float) -> bool:
        """Is a conversation body whose JSON text hashes to `text` a copy of its live call's last body, word
        for word? Then it is that body's duplicate (`on_conversation`'s answer for it, without decoding it:
        the same text is the same value, whichever decoder read it, and names the same call).

        The hash is Python's bytes hash (SipHash-1-3 under a key drawn at interpreter start, 64 bits; 0.25 us
        for a 750-byte body where blake2b takes 0.9): an update taken for a copy needs a collision with the
        text it replaces, about 2^-64 per update, and the key is not known outside the process (unless
        PYTHONHASHSEED fixes it: nothing in this project sets it)."""
        cid = self.by_text.get(text)
        if cid is None:
            return False
        tracked = self.live.get(cid)
        if tracked is None or tracked.last_text != text:
            return False
        tracked.last_seen = now
        return True

    def _body_seen(self, tracked: Tracked, digest: bytes, text: int | None) -> None:
        """The call's last body from now on: its value's digest, and its text's hash when it came as text
        (none when it did not: the text of an older body must not stand for this one)."""
        tracked.last_body = digest
        old = tracked.last_text
        if old is not None and self.by_text.get(old) == tracked.conversation_id:
            del self.by_text[old]
        tracked.last_text = text
        if text is not None:
            self.by_text[text] = tracked.conversation_id

    def on_conversation(
        self,
        body: dict[str, Any],
        topic_queue: str | None,
        now: float,
        wall: float,
        plain: bool = False,
        text: int | None = None,
    ) -> ConversationUpdate:
        """`text`: the hash of the body's JSON text, when the session has it (`same_text` checks it next time)."""
        # The duplicate check first: every update comes twice (its user and its queue topic), and the
        # second copy is told by its digest alone, without reading its participants (~3 us of ~12).
        # Equal digests mean the same JSON value as the last body, which `read_conversation` read as this
        # call's: the same id, the same view, so the answer it would lead to is this one.
        key = b""
        cid = body.get("id")
        tracked = self.live.get(cid) if type(cid) is str else None
        if tracked is not None and tracked.last_body:
            key = body_digest("", body, plain)
            if key == tracked.last_body:
                tracked.last_seen = now
                return ConversationUpdate(Outcome.DUPLICATE)  # the same update through the user and the queue topic
        view = read_conversation(body, topic_queue)
        if view is None:
            return ConversationUpdate(Outcome.MALFORMED)
        cid, legs = view.conversation_id, view.legs
        tracked = self.live.get(cid)
        connected = [leg for leg in legs if leg.state == "connected"]
        if tracked is None:
            if not view.voice:
                return ConversationUpdate(NOT_VOICE)
            if not legs:
                return ConversationUpdate(Outcome.MISSING_AGENT)  # in IVR or queue: nobody to attribute to yet
            if not connected and cid in self.finished:
                return ConversationUpdate("stale")  # e.g. after-call work completed after the grace
            if len(self.live) >= self.max_live:
                return ConversationUpdate("agent_refused")  # full: counted, like the tracker's agent cap
            self.finished.pop(cid, None)
            tracked = self.live[cid] = Tracked(cid)
        tracked.last_seen = now
        if not key:  # not taken above: the call is new, or had no body yet
            key = body_digest("", body, plain)
            if key == tracked.last_body:
                return ConversationUpdate(Outcome.DUPLICATE)
        self._body_seen(tracked, key, text)
        update = ConversationUpdate()
        ending: list[StateChange] = []
        active: list[StateChange] = []
        states = tracked.states
        for leg in legs:
            state = leg.state
            if states.get(leg.agent_id) == state:
                continue
            states[leg.agent_id] = state
            change = StateChange(leg.agent_id, leg.queue_id or UNKNOWN_QUEUE, cid, state, wall)
            (ending if state in ENDING_STATES else active).append(change)
        update.changes = ending + active if ending else active  # who left before who took over
        if connected:
            leg = connected[-1]
            tracked.agent_id, tracked.queue_id = leg.agent_id, leg.queue_id or UNKNOWN_QUEUE
            tracked.ended_at = None
            if not tracked.subscribed:
                tracked.subscribed = True
                tracked.connected_wall = wall
                update.subscribe = (transcription_topic(cid), sentiment_topic(cid))
        elif legs and tracked.ended_at is None and all(leg.state in ENDING_STATES for leg in legs):
            tracked.ended_at = now
        if not tracked.agent_id and legs:
            tracked.agent_id, tracked.queue_id = legs[-1].agent_id, legs[-1].queue_id or UNKNOWN_QUEUE
        if not update.changes:
            update.outcome = Outcome.STATE_CHANGE  # a participant update that moves no tracked agent
        return update

    def attribute(self, conversation_id: str, queue_ids: object) -> tuple[str, str] | str:
        """(agent, queue) for a sentiment event, or the outcome explaining why there is none."""
        tracked = self.live.get(conversation_id)
        if tracked is None or not tracked.agent_id:
            return Outcome.STALE if conversation_id in self.finished else UNATTRIBUTED
        queue = tracked.queue_id
        if queue == UNKNOWN_QUEUE and isinstance(queue_ids, list) and queue_ids and isinstance(queue_ids[0], str):
            queue = queue_ids[0]
        return tracked.agent_id, queue

    def owner(self, conversation_id: str) -> tuple[str, str] | None:
        """(agent, queue) of a live or recently finished call: whose post-call score this is."""
        tracked = self.live.get(conversation_id)
        if tracked is not None and tracked.agent_id:
            return tracked.agent_id, tracked.queue_id
        return self.finished.get(conversation_id)

    def connected_wall(self, conversation_id: str) -> float | None:
        tracked = self.live.get(conversation_id)
        return None if tracked is None else tracked.connected_wall

    def release(self, conversation_id: str) -> list[str]:
        """The post-call score arrived: its topic can go now (if the call is over)."""
        if self.holding.pop(conversation_id, None) is not None:
            return [sentiment_topic(conversation_id)]
        tracked = self.live.get(conversation_id)
        if tracked is not None:
            tracked.postcall_done = True
        return []

    def due(self, now: float) -> list[str]:
        """Forget conversations whose grace is over (or that went silent); the topics to drop: their
        transcription now, their post-call sentiment topic once its hold is over."""
        drop = [
            t
            for t in self.live.values()
            if (t.ended_at is not None and now - t.ended_at >= self.grace) or now - t.last_seen >= self.idle
        ]
        topics = []
        for tracked in drop:
            del self.live[tracked.conversation_id]
            if tracked.last_text is not None and self.by_text.get(tracked.last_text) == tracked.conversation_id:
                del self.by_text[tracked.last_text]
            self.finished[tracked.conversation_id] = (tracked.agent_id, tracked.queue_id)
            self.ended_at[tracked.conversation_id] = tracked.ended_at if tracked.ended_at is not None else now
            if tracked.subscribed:
                topics.append(transcription_topic(tracked.conversation_id))
                if tracked.postcall_done:
                    topics.append(sentiment_topic(tracked.conversation_id))
                else:
                    self.holding[tracked.conversation_id] = now + self.postcall_hold
        for cid, until in list(self.holding.items()):
            if now >= until:
                del self.holding[cid]
                topics.append(sentiment_topic(cid))
        while len(self.finished) > self.remember:
            self.finished.popitem(last=False)
        while len(self.ended_at) > self.remember:
            self.ended_at.popitem(last=False)
        return topics

    def since_end(self, conversation_id: str, now: float) -> float | None:
        """Seconds since the call ended (None: still live, or unknown): when did a topic's event arrive?"""
        tracked = self.live.get(conversation_id)
        if tracked is not None:
            return None if tracked.ended_at is None else now - tracked.ended_at
        ended = self.ended_at.get(conversation_id)
        return None if ended is None else now - ended


# -- channels and topics ----------------------------------------------------------------------------


class TopicPlan:
    """Which topic lives on which channel: at most `per_channel` topics each, at most `max_channels`."""

    def __init__(self, per_channel: int = 1000, max_channels: int = 20) -> None:
        self.per_channel = per_channel
        self.max_channels = max_channels
        self.slots: list[set[str]] = []
        self.where: dict[str, int] = {}
        self.refused = 0

    def add(self, topic: str) -> int | None:
        """The slot the topic goes to (possibly a new one), or None when every channel is full."""
        if topic in self.where:
            return self.where[topic]
        index = next((i for i, topics in enumerate(self.slots) if len(topics) < self.per_channel), -1)
        if index < 0:
            if len(self.slots) >= self.max_channels:
                self.refused += 1
                return None
            self.slots.append(set())
            index = len(self.slots) - 1
        self.slots[index].add(topic)
        self.where[topic] = index
        return index

    def remove(self, topic: str) -> int | None:
        index = self.where.pop(topic, None)
        if index is not None:
            self.slots[index].discard(topic)
        return index

    def __len__(self) -> int:
        return len(self.where)


@dataclass(slots=True, frozen=True)
class TopicResult:
    topic: str
    permitted: bool
    reason: str = ""  # bounded label: missing_permissions, or the platform's rejectionReason (slugged)
    missing_permissions: tuple[str, ...] = ()
    detail: str = ""


UNCONFIRMED = "unconfirmed"  # a requested topic the answer did not list: neither subscribed nor rejected


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug[:40] or "rejected"


def read_subscriptions(body: object, requested: list[str]) -> list[TopicResult]:
    """The subscriptions response: each requested topic permitted or rejected (with why)."""
    entities = body.get("entities") if isinstance(body, dict) else body
    if not isinstance(entities, list):
        # Once read as "every topic confirmed": a gateway's empty 200 then left calls unsubscribed.
        raise ValueError("the subscriptions answer has no entities list")
    seen: dict[str, TopicResult] = {}
    if entities:
        for entity in entities:
            if not isinstance(entity, dict) or not isinstance(entity.get("id"), str):
                continue
            topic = entity["id"]
            missing = entity.get("missingPermissions")
            missing_t = tuple(str(p) for p in missing) if isinstance(missing, list) else ()
            reason = entity.get("rejectionReason")
            rejected = entity.get("state") == "Rejected" or bool(missing_t) or bool(reason)
            if not rejected:
                seen[topic] = TopicResult(topic, True)
                continue
            label = "missing_permissions" if missing_t else _slug(str(reason)) if reason else "rejected"
            seen[topic] = TopicResult(topic, False, label, missing_t, str(reason or ""))
    # The platform lists every topic it was given; one it leaves out is not confirmed (asked again).
    return [seen.get(topic, TopicResult(topic, False, UNCONFIRMED)) for topic in requested]
