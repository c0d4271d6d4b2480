"""WHAT-IF PROTOTYPE, not exporter code: how fast the per-message path could be, and proof it is equivalent.

The ingest budget is missed because the exporter's path builds three frozen
dataclasses per frame (Reading, StateChange, Parsed) and walks four layers of
calls to apply a reading to an agent that is already in that conversation and
state, which is what ~85 % of a live stream is. This module keeps the
exporter's code for everything else and adds one fast path in front of it:

  decode -> the common case (known agent, same conversation, same or no state,
  a valid in-range score, plain ISO eventTime) updates the AgentState in place
  and counts "reading";
  anything else -> the exporter's own `proto._conversation` + `_handle` on the
  already-decoded message (no second decode).

`FastPathSource` is an `AnalyticsWebSocketSource` whose `read()` uses it; the
benchmark runs it over the same socket as the real source, and `equivalent()`
checks it leaves the tracker and outcome counts exactly as the real path does.

`unfrozen_models()` is the smaller what-if: the exporter's code unchanged, except
that the parser builds Reading/StateChange as plain (non-frozen) slotted
dataclasses, patched into `analytics_protocol` only while it is active.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from websockets.exceptions import ConnectionClosed

from exporter.model import Phase, phase_of
from exporter.sources import analytics_protocol as proto
from exporter.sources.analytics_websocket import AnalyticsWebSocketSource, Connection
from exporter.tracker import AgentState, AgentTracker

_loads = json.loads
_fromisoformat = datetime.fromisoformat


@dataclass(slots=True)
class UnfrozenReading:
    """exporter.model.Reading without `frozen=True` (whose __init__ calls object.__setattr__ per field)."""

    agent_id: str
    queue_id: str
    conversation_id: str
    score: float
    timestamp: float
    trend: float | None = None


@dataclass(slots=True)
class UnfrozenStateChange:
    """exporter.model.StateChange without `frozen=True`."""

    agent_id: str
    queue_id: str
    conversation_id: str
    state: str
    timestamp: float

    @property
    def phase(self) -> Phase:
        return phase_of(self.state)


@contextlib.contextmanager
def unfrozen_models() -> Iterator[None]:
    """While active, `analytics_protocol` builds the unfrozen classes (one event loop: nothing else runs)."""
    saved = {name: getattr(proto, name) for name in ("Reading", "StateChange")}
    setattr(proto, "Reading", UnfrozenReading)  # noqa: B010 - a deliberate, temporary patch
    setattr(proto, "StateChange", UnfrozenStateChange)  # noqa: B010
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(proto, name, value)


class FastPathSource(AnalyticsWebSocketSource):
    """The real source with a fast path for the common frame in front of its own handling."""

    def handle_frame(self, frame: str | bytes, now: float, number: int) -> None:
        try:
            msg = _loads(frame)
        except (ValueError, UnicodeDecodeError):
            self._handle(frame, proto.parse(frame, now), number)
            return
        if type(msg) is dict and msg.get("type") == "conversation" and not self.dedup.active:
            if self._fast_reading(msg):
                return
            self._handle(frame, proto._conversation(msg, now), number)
            return
        self._handle(frame, proto.parse(frame, now), number)

    def _fast_reading(self, msg: dict[str, Any]) -> bool:
        """Apply a plain reading for an agent already in this conversation and state; False: not that case."""
        ingest = self.ingest
        agent_id = msg.get("agentId")
        if type(agent_id) is not str:
            return False
        agent: AgentState | None = ingest.tracker.agents.get(agent_id)
        if agent is None or ingest.on_reading is not None:
            return False
        sentiment = msg.get("sentiment")
        if type(sentiment) is not dict:
            return False
        score = sentiment.get("score")
        # `-1 <= x <= 1` also rejects NaN and infinities (json.loads accepts them), so no isfinite call.
        if type(score) is not float or not -1.0 <= score <= 1.0:
            if type(score) is not int or not -1 <= score <= 1:
                return False
            score = float(score)
        if msg.get("conversationId") != agent.conversation_id:
            return False
        state = msg.get("state")
        if state is not None and (state != agent.state or not state):
            return False
        queue_id = msg.get("queueId")
        if type(queue_id) is not str or not queue_id:
            return False
        event_time = msg.get("eventTime")
        if type(event_time) is not str:
            return False
        try:
            timestamp = _fromisoformat(event_time).timestamp()  # what proto.parse_time does for a string
        except ValueError:
            return False
        if queue_id != agent.queue_id:
            agent.set_queue(queue_id)
        agent.add(score, ingest.tracker.limits.window_size)
        agent.last_timestamp = timestamp
        agent.last_seen = ingest.clock()
        ingest.messages["reading"] += 1
        return True

    async def read(self, conn: Connection) -> str:
        wall = self.wall
        stream = self.stream
        handle = self.handle_frame
        monotonic = time.monotonic
        number = conn.number
        try:
            async for frame in conn.ws:
                now = wall()
                stream.last_message = now
                conn.last_frame = monotonic()
                handle(frame, now, number)
        except ConnectionClosed:
            pass
        if conn.reason:
            return conn.reason
        received = conn.ws.protocol.close_rcvd
        return str(received.code) if received is not None else "1006"


def tracker_state(tracker: AgentTracker) -> dict[str, tuple[Any, ...]]:
    return {
        agent_id: (a.queue_id, a.conversation_id, a.previous_conversation_id, a.phase, a.state,
                   list(a.scores), a.readings, a.sum, a.last_timestamp, a.trend, a.label_text)
        for agent_id, a in tracker.agents.items()
    }


def equivalent(real: AnalyticsWebSocketSource, fast: AnalyticsWebSocketSource) -> list[str]:
    """Differences between two sources' end states after the same frames (empty when equivalent)."""
    problems: list[str] = []
    if real.ingest.messages != fast.ingest.messages:
        problems.append(f"outcomes differ: {dict(real.ingest.messages)} vs {dict(fast.ingest.messages)}")
    a, b = tracker_state(real.ingest.tracker), tracker_state(fast.ingest.tracker)
    if a.keys() != b.keys():
        problems.append("different agents tracked")
    for agent_id in sorted(a.keys() & b.keys()):
        if a[agent_id] != b[agent_id]:
            problems.append(f"agent {agent_id}: {a[agent_id]} vs {b[agent_id]}")
            break
    if real.ingest.tracker.conversations_ended != fast.ingest.tracker.conversations_ended:
        problems.append("conversations_ended differs")
    return problems
