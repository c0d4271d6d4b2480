"""Where the subject's per-message time goes outside the socket: a cost ledger of the current path.

All figures are microseconds per message averaged over the same frame mix the
ingest benchmark sends (a stage that only some frames reach is weighted by how
many do), measured in-process without a socket, best of 3 runs. The stages are
those of `AnalyticsWebSocketSource.read()`'s loop body: `proto.parse` (decode,
validate, a flat `Parsed`), then `_handle` -> `Ingest.conversation_fields`,
which updates a known agent in place or falls back to `Ingest.conversation`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from bench.ingest_bench import new_source
from genesys_sentiment_exporter.catalogue import Outcome
from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.model import Reading, StateChange
from genesys_sentiment_exporter.sources import analytics_protocol as proto
from genesys_sentiment_exporter.sources.analytics_websocket import AnalyticsWebSocketSource
from genesys_sentiment_exporter.tracker import AgentTracker

NO_SERVER = "http://127.0.0.1:1"  # the ledger never connects


class CountingIngest(Ingest):
    """Ingest that counts the events `conversation_fields` hands to the general `conversation` path."""

    def __init__(self, tracker: AgentTracker) -> None:
        super().__init__(tracker)
        self.general = 0

    def conversation(self, reading: Reading | None, state: StateChange | None, sentiment: str = "ok") -> Outcome:
        self.general += 1
        return super().conversation(reading, state, sentiment)


def read_body(source: AnalyticsWebSocketSource, frames: list[str]) -> None:
    """`AnalyticsWebSocketSource.read()`'s loop body, minus the socket."""
    handle, parse, wall, stream, mono = source.session.handle, proto.parse, time.time, source.stream, time.monotonic
    for frame in frames:
        now = wall()
        stream.last_message = now
        mono()
        handle(frame, parse(frame, now), 1, now)


def _best(fn: Callable[[], object], per: int, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) / per * 1e6


def ledger(frames: list[str]) -> dict[str, Any]:
    """Cost of each stage of the read path in µs per message of the mix, and how the events split."""
    logging.getLogger("exporter").setLevel(logging.ERROR)
    n = len(frames)
    msgs = [json.loads(f) for f in frames]
    convs = [m for m in msgs if m.get("type") == "conversation"]
    times = [m["eventTime"] for m in convs]
    sentiments = [m["sentiment"] for m in convs if "sentiment" in m]
    parsed = [proto.parse(f, 0.0) for f in frames]
    fields = [
        (p.kind, p.agent_id, p.queue_id, p.conversation_id, p.state_value, p.score, p.timestamp, p.sentiment)
        for p in parsed
        if p.kind == proto.Kind.CONVERSATION
    ]

    # Accounting and the split, on a fresh source, before any figure is reported.
    counting = CountingIngest(AgentTracker())
    read_body(new_source(NO_SERVER, counting), frames)
    accounted = sum(counting.messages.values())

    def loads() -> None:
        for f in frames:
            json.loads(f)

    def parse() -> None:
        for f in frames:
            proto.parse(f, 0.0)

    def parse_time() -> None:
        for t in times:
            proto.parse_time(t, 0.0)

    def score() -> None:
        for s in sentiments:
            proto._score(s)

    def make_parsed() -> None:
        for kind, agent, queue, conversation, state, value, timestamp, sentiment in fields:
            proto.Parsed(
                kind,
                agent_id=agent,
                queue_id=queue,
                conversation_id=conversation,
                state_value=state,
                score=value,
                timestamp=timestamp,
                sentiment=sentiment,
            )

    def handle() -> None:  # _handle + Ingest + AgentTracker on pre-parsed frames, fresh tracker each run
        source = new_source(NO_SERVER)
        for f, p in zip(frames, parsed, strict=True):
            source.session.handle(f, p, 1, 0.0)

    def body() -> None:
        read_body(new_source(NO_SERVER), frames)

    costs = {
        "json_loads": _best(loads, n),
        "proto_parse_total": _best(parse, n),
        "  parse_time(eventTime)": _best(parse_time, n),
        "  _score(sentiment)": _best(score, n),
        "  Parsed(...) (flat, conversation frames)": _best(make_parsed, n),
        "handle_conversation_fields_tracker": _best(handle, n),
        "read_loop_body_total": _best(body, n),
    }
    return {
        "frames": n,
        "accounted": accounted,
        "share": {
            "conversation": len(fields) / n,
            "in_place": (len(fields) - counting.general) / n,
            "general_path": counting.general / n,
        },
        "us_per_msg": costs,
    }
