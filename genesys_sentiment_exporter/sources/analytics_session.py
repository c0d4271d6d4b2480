"""The analytics-websocket stream's session, pure: frames and `now` in, counted outcomes out.

Rules (the shell in `analytics_websocket.py` owns the socket and the timers):
- After connecting, the shell sends `subscribe` and hands every frame to `handshake()` until it
  answers True (the server acknowledged). A server `error` before that is `SubscribeRefused`;
  anything else before it is still a message and gets its outcome.
- Each acknowledged socket gets a number; during a make-before-break overlap a conversation
  frame seen on two sockets counts once (`duplicate`).
- `handle()` is the per-message hot path: it applies the parsed frame to `Ingest` (pure state)
  directly instead of returning an event object, which is what keeps ingest at the rate of a
  bare client (bench/).
"""

from __future__ import annotations

import logging

from genesys_sentiment_exporter.catalogue import Outcome
from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.sources import analytics_protocol as proto
from genesys_sentiment_exporter.sources.dedup import Deduplicator, frame_digest
from genesys_sentiment_exporter.stream_state import StreamState

log = logging.getLogger("exporter.source.analytics")


class SubscribeRefused(Exception):
    pass


class AnalyticsSession:
    def __init__(
        self, ingest: Ingest, stream: StreamState, queue_ids: list[str], agent_ids: list[str], heartbeat_seconds: int
    ) -> None:
        self.ingest = ingest
        self.stream = stream
        self.subscribe = proto.subscribe_message(queue_ids, agent_ids, heartbeat_seconds)
        self.dedup = Deduplicator()
        self._numbers = 0

    def handshake(self, frame: str | bytes, wall: float) -> int:
        """A frame before the acknowledgement: the new socket's number once acknowledged, else 0."""
        parsed = proto.parse(frame, wall)
        if parsed.kind == proto.Kind.SUBSCRIBED:
            self._numbers += 1
            self.ingest.count(Outcome.CONTROL)
            return self._numbers
        if parsed.kind == proto.Kind.ERROR:
            raise SubscribeRefused(f"server refused the subscription: {parsed.reason}: {parsed.detail}")
        self.handle(frame, parsed, 0, wall)
        return 0

    def handle(self, frame: str | bytes, parsed: proto.Parsed, number: int, wall: float) -> None:
        """Give one parsed frame from socket `number` its outcome."""
        kind = parsed.kind
        ingest = self.ingest
        if kind == proto.Kind.CONVERSATION:
            if self.dedup.overlaps and self.dedup.duplicate(frame_digest(frame), number):
                ingest.count(Outcome.DUPLICATE)
                return
            ingest.conversation_fields(
                parsed.agent_id,
                parsed.queue_id,
                parsed.conversation_id,
                parsed.state_value,
                parsed.score,
                parsed.timestamp,
                parsed.sentiment,
            )
        elif kind == proto.Kind.HEARTBEAT:
            self.stream.last_heartbeat = wall
            ingest.count(Outcome.HEARTBEAT)
        elif kind == proto.Kind.REJECTED:
            ingest.count(Outcome(parsed.reason))
        else:
            if kind == proto.Kind.ERROR:
                log.error("stream error from server: %s: %s", parsed.reason, parsed.detail)
            ingest.count(Outcome.CONTROL)
