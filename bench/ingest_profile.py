"""Where the per-message time goes: a cost ledger, a cProfile listing, and the fast-path prototype's gain.

All figures are microseconds per message averaged over the same realistic frame
mix the ingest benchmark sends (a stage that only some frames reach is weighted
by how many do), measured in-process without a socket, best of 3 runs.
"""

from __future__ import annotations

import cProfile
import io
import json
import logging
import pstats
import time
from collections.abc import Callable
from typing import Any, cast

from bench.fastpath import FastPathSource, equivalent
from bench.ingest_bench import StubTokens
from exporter.ingest import Ingest
from exporter.model import Reading, StateChange
from exporter.oauth import TokenManager
from exporter.sources import analytics_protocol as proto
from exporter.sources.analytics_websocket import AnalyticsWebSocketSource
from exporter.stream_state import StreamState
from exporter.tracker import AgentTracker


def new_source(cls: type[AnalyticsWebSocketSource] = AnalyticsWebSocketSource) -> AnalyticsWebSocketSource:
    return cls(
        api_base_url="http://127.0.0.1:1", tokens=cast(TokenManager, StubTokens()), ingest=Ingest(AgentTracker()),
        stream=StreamState(), queue_ids=[], agent_ids=[],
    )


def _best(fn: Callable[[], object], per: int, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) / per * 1e6


def read_body(source: AnalyticsWebSocketSource, frames: list[str]) -> None:
    """`AnalyticsWebSocketSource.read()`'s loop body, minus the socket."""
    handle, parse, wall, stream, mono = source._handle, proto.parse, time.time, source.stream, time.monotonic
    for frame in frames:
        now = wall()
        stream.last_message = now
        mono()
        handle(frame, parse(frame, now), 1)


def fast_body(source: FastPathSource, frames: list[str]) -> None:
    handle, wall, stream, mono = source.handle_frame, time.time, source.stream, time.monotonic
    for frame in frames:
        now = wall()
        stream.last_message = now
        mono()
        handle(frame, now, 1)


class _Slotted:
    """What Reading costs as a plain (non-frozen) slotted class: the fix for the frozen-dataclass cost."""

    __slots__ = ("agent_id", "conversation_id", "queue_id", "score", "timestamp", "trend")

    def __init__(self, agent_id: str, queue_id: str, conversation_id: str, score: float, timestamp: float,
                 trend: float | None = None) -> None:
        self.agent_id = agent_id
        self.queue_id = queue_id
        self.conversation_id = conversation_id
        self.score = score
        self.timestamp = timestamp
        self.trend = trend


def ledger(frames: list[str]) -> dict[str, Any]:
    """Cost of each stage of the current path, and of the prototype, in µs per message of the mix."""
    logging.getLogger("exporter").setLevel(logging.ERROR)
    n = len(frames)
    msgs = [json.loads(f) for f in frames]
    convs = [m for m in msgs if m.get("type") == "conversation"]
    times = [m["eventTime"] for m in convs]
    sentiments = [m["sentiment"] for m in convs if "sentiment" in m]
    parsed = [proto.parse(f, 0.0) for f in frames]
    readings = [(p.reading.agent_id, p.reading.queue_id, p.reading.conversation_id, p.reading.score,
                 p.reading.timestamp) for p in parsed if p.reading is not None]
    states = [(p.state.agent_id, p.state.queue_id, p.state.conversation_id, p.state.state, p.state.timestamp)
              for p in parsed if p.state is not None]

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

    def make_readings() -> None:
        for r in readings:
            Reading(*r)

    def make_slotted() -> None:
        for r in readings:
            _Slotted(*r)

    def make_states() -> None:
        for s in states:
            StateChange(*s)

    def make_parsed() -> None:
        for p in parsed:
            proto.Parsed(p.kind, reading=p.reading, state=p.state, sentiment=p.sentiment)

    def handle() -> None:  # _handle + Ingest + AgentTracker on pre-parsed frames, fresh tracker each run
        source = new_source()
        for f, p in zip(frames, parsed, strict=True):
            source._handle(f, p, 1)

    def body() -> None:
        read_body(new_source(), frames)

    def fast() -> None:
        fast_body(cast(FastPathSource, new_source(FastPathSource)), frames)

    # Equivalence of the prototype on this stream, before its figure is reported.
    real, proto_source = new_source(), cast(FastPathSource, new_source(FastPathSource))
    read_body(real, frames)
    fast_body(proto_source, frames)
    problems = equivalent(real, proto_source)

    costs = {
        "json_loads": _best(loads, n),
        "proto_parse_total": _best(parse, n),
        "  parse_time(eventTime)": _best(parse_time, n),
        "  _score(sentiment)": _best(score, n),
        "  Reading(...) frozen dataclass": _best(make_readings, n),
        "  StateChange(...) frozen dataclass": _best(make_states, n),
        "  Parsed(...)": _best(make_parsed, n),
        "  (Reading as plain __slots__ class)": _best(make_slotted, n),
        "handle_ingest_tracker": _best(handle, n),
        "read_loop_body_total": _best(body, n),
        "fastpath_prototype_body": _best(fast, n),
    }
    return {
        "frames": n,
        "share": {"reading": len(readings) / n, "state_change_object": len(states) / n},
        "us_per_msg": costs,
        "prototype_equivalent": not problems,
        "prototype_problems": problems,
    }


def cprofile_top(frames: list[str], limit: int = 18) -> str:
    """cProfile of the read loop body (tottime order). Note: generated dataclass __init__s are folded into
    their callers (`_conversation`) by the profiler, which is why the ledger times them separately."""
    logging.getLogger("exporter").setLevel(logging.ERROR)
    source = new_source()
    read_body(new_source(), frames)  # warm
    profiler = cProfile.Profile()
    profiler.enable()
    read_body(source, frames)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(limit)
    return out.getvalue()
