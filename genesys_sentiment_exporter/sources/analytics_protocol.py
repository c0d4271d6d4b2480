"""The design document's stream, as pinned in shared/analytics-websocket-protocol.md: pure parsing.

Sans-I/O: this module turns text frames into normalised events and builds the
subscribe message; the asyncio shell in `analytics_websocket.py` owns sockets.
Validation follows the document's warning that a missing score is not a neutral
one: it is reported as `missing_sentiment`, never as 0.0.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from genesys_sentiment_exporter.catalogue import Outcome
from genesys_sentiment_exporter.model import UNKNOWN_QUEUE, Reading, StateChange

PATH = "/api/v2/analytics/websocket"


def websocket_url(api_base_url: str) -> str:
    """The stream's address on the API host: https becomes wss (http, on loopback only, ws)."""
    base = api_base_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return base + PATH


REQUESTED_FIELDS = ("sentiment.score", "sentiment.label", "state")


class Kind:
    HEARTBEAT = "heartbeat"
    SUBSCRIBED = "subscribed"
    ERROR = "error"
    CONVERSATION = "conversation"
    REJECTED = "rejected"


class Sentiment:
    OK = "ok"
    ABSENT = "absent"  # no `sentiment` object at all
    MISSING = Outcome.MISSING_SENTIMENT  # `sentiment` present, score absent or null
    INVALID = Outcome.INVALID_SCORE


class Parsed:
    """One frame's meaning. `reason` is set for rejected frames and server errors.

    A conversation event keeps its validated fields flat; `reading` and `state`
    build the normalised events only when the slow path asks for them, so the
    common frame allocates nothing but this object.
    """

    __slots__ = (
        "agent_id",
        "conversation_id",
        "detail",
        "kind",
        "queue_id",
        "reason",
        "score",
        "sentiment",
        "state_value",
        "timestamp",
    )

    def __init__(
        self,
        kind: str,
        reason: str = "",
        detail: str = "",
        agent_id: str = "",
        queue_id: str = "",
        conversation_id: str = "",
        state_value: str | None = None,
        score: float | None = None,
        timestamp: float = 0.0,
        sentiment: str = Sentiment.ABSENT,
    ) -> None:
        self.kind = kind
        self.reason = reason
        self.detail = detail
        self.agent_id = agent_id
        self.queue_id = queue_id
        self.conversation_id = conversation_id
        self.state_value = state_value
        self.score = score
        self.timestamp = timestamp
        self.sentiment = sentiment

    @property
    def reading(self) -> Reading | None:
        if self.score is None:
            return None
        return Reading(self.agent_id, self.queue_id, self.conversation_id, self.score, self.timestamp)

    @property
    def state(self) -> StateChange | None:
        if self.state_value is None:
            return None
        return StateChange(self.agent_id, self.queue_id, self.conversation_id, self.state_value, self.timestamp)


_MALFORMED = Parsed(Kind.REJECTED, reason=Outcome.MALFORMED)
_HEARTBEAT = Parsed(Kind.HEARTBEAT)


def subscribe_message(queue_ids: list[str], agent_ids: list[str], heartbeat: int) -> str:
    """One `events` entry per filter combination: filters within an entry narrow (AND)."""
    combos: list[dict[str, str]] = []
    for queue_id in queue_ids or [None]:  # type: ignore[list-item]
        for agent_id in agent_ids or [None]:  # type: ignore[list-item]
            filters: dict[str, str] = {}
            if queue_id is not None:
                filters["queueId"] = queue_id
            if agent_id is not None:
                filters["agentId"] = agent_id
            combos.append(filters)
    events = [{"type": "conversation", "filters": f, "fields": list(REQUESTED_FIELDS)} for f in combos]
    return json.dumps({"action": "subscribe", "events": events, "heartbeat": heartbeat})


def parse_time(value: Any, default: float) -> float | None:
    """ISO 8601 UTC to epoch seconds; absent means now; unparseable is None."""
    if value is None:
        return default
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the protocol's times are UTC, offset or not
    return moment.timestamp()


def _score(sentiment: Any) -> tuple[str, float | None]:
    if sentiment is None:
        return Sentiment.MISSING, None
    if type(sentiment) is not dict:
        return Sentiment.INVALID, None
    score = sentiment.get("score")
    if score is None:
        return Sentiment.MISSING, None
    kind = type(score)
    if kind is not float and kind is not int:  # bool is an int subclass, so `type() is`, not isinstance
        return Sentiment.INVALID, None
    # The chained comparison is False for NaN and the infinities (json accepts both) as well.
    if not -1.0 <= score <= 1.0:
        return Sentiment.INVALID, None
    return Sentiment.OK, float(score)


def _encodable(*values: str) -> bool:
    """False for strings UTF-8 cannot carry (lone surrogates from `\\ud800` escapes); ASCII is the fast path."""
    try:
        for value in values:
            if not value.isascii():
                value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse(frame: str | bytes, received_at: float) -> Parsed:
    """Classify one server frame. Never raises: a bad frame is a counted rejection."""
    try:
        msg = json.loads(frame)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested ~1 000 deep
        return _MALFORMED
    if not isinstance(msg, dict):
        return _MALFORMED
    kind = msg.get("type")
    if kind == "conversation":
        return _conversation(msg, received_at)
    if kind == "heartbeat":
        return _HEARTBEAT
    if kind == "subscribed":
        return Parsed(Kind.SUBSCRIBED)
    if kind == "error":
        code = msg.get("code")
        text = msg.get("message")
        return Parsed(Kind.ERROR, reason=str(code)[:80], detail=str(text)[:200])
    if not isinstance(kind, str):
        return _MALFORMED
    return Parsed(Kind.REJECTED, reason=Outcome.UNKNOWN_TYPE)


def _conversation(msg: dict[str, Any], received_at: float) -> Parsed:
    agent_id = msg.get("agentId")
    if not agent_id or not isinstance(agent_id, str):
        return Parsed(Kind.REJECTED, reason=Outcome.MISSING_AGENT)
    conversation_id = msg.get("conversationId")
    if not conversation_id or not isinstance(conversation_id, str):
        return _MALFORMED
    queue_id = msg.get("queueId") or UNKNOWN_QUEUE
    if not isinstance(queue_id, str):
        return _MALFORMED
    timestamp = parse_time(msg.get("eventTime"), received_at)
    if timestamp is None:
        return _MALFORMED
    state_value = msg.get("state")
    if state_value is not None and (not isinstance(state_value, str) or not state_value):
        return _MALFORMED
    if not _encodable(agent_id, queue_id):
        return _MALFORMED  # a lone surrogate would break every later scrape
    if "sentiment" in msg:
        status, score = _score(msg["sentiment"])
    else:
        status, score = Sentiment.ABSENT, None
    return Parsed(Kind.CONVERSATION, "", "", agent_id, queue_id, conversation_id, state_value, score, timestamp, status)
