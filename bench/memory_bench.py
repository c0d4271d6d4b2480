"""Memory per tracked agent: N agents with full windows, fed as real frames through the real read path.

Each measurement runs in a fresh (spawned) interpreter so earlier benchmarks'
allocations do not blur it:
- tracemalloc (the budgeted figure): Python allocations still alive after
  every frame was handled and garbage collected, divided by N. It includes the
  `AgentState`, its score list and floats, the id strings it keeps (decoded by
  `json.loads`, as in production), its cached label text and its slot in the
  tracker's dict.
- RSS delta (informational): resident set growth across the same work, without
  tracemalloc; it includes allocator slack and freed-but-kept arenas.
- stock gauges (informational): tracemalloc of the same agents as five stock
  prometheus_client labelled gauges, what a per-message `Gauge.labels().set()` design would hold.
"""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import random
import resource
import time
import tracemalloc
from collections.abc import Callable
from typing import Any, cast

from genesys_cloud_simulator.scenarios import label_for

from bench.frames import EventClock, dumps, uuid_from

WINDOW = 5
STOCK_AGENTS = 5000


def agent_frames(agents: int, seed: int = 5, queues: int = 50) -> list[str]:
    """Round-robin over agents: a `connected` event, then WINDOW + 1 readings each (a full, wrapped window)."""
    rng = random.Random(seed)
    queue_ids = [uuid_from(rng) for _ in range(queues)]
    people = [(uuid_from(rng), rng.choice(queue_ids), uuid_from(rng)) for _ in range(agents)]
    frames: list[str] = []
    clock = EventClock()
    for step in range(WINDOW + 2):
        for agent_id, queue_id, conversation_id in people:
            event: dict[str, object] = {
                "type": "conversation",
                "eventTime": clock.tick(),
                "conversationId": conversation_id,
                "agentId": agent_id,
                "queueId": queue_id,
                "state": "connected",
            }
            if step:
                score = round(rng.uniform(-1, 1), 2)
                event["sentiment"] = {"score": score, "label": label_for(score)}
            frames.append(dumps(event))
    return frames


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def _feed(frames: list[str]) -> Any:
    """The read loop's body over `frames`; returns the source (which holds the tracker)."""
    from genesys_sentiment_exporter.ingest import Ingest
    from genesys_sentiment_exporter.oauth import TokenManager
    from genesys_sentiment_exporter.sources import analytics_protocol as proto
    from genesys_sentiment_exporter.sources.analytics_websocket import AnalyticsWebSocketSource
    from genesys_sentiment_exporter.stream_state import StreamState
    from genesys_sentiment_exporter.tracker import AgentTracker

    source = AnalyticsWebSocketSource(
        api_base_url="http://127.0.0.1:1",
        tokens=cast(TokenManager, None),
        ingest=Ingest(AgentTracker()),
        stream=StreamState(),
        queue_ids=[],
        agent_ids=[],
    )
    handle, parse, wall = source.session.handle, proto.parse, time.time
    for frame in frames:
        now = wall()
        handle(frame, parse(frame, now), 1, now)
    return source


def measure_tracemalloc(agents: int) -> dict[str, Any]:
    logging.getLogger("exporter").setLevel(logging.ERROR)
    frames = agent_frames(agents)
    _feed(agent_frames(10))  # import and warm everything outside the measurement
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    source = _feed(frames)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    tracker = source.ingest.tracker
    full = sum(1 for a in tracker.agents.values() if len(a.scores) == WINDOW)
    if len(tracker.agents) != agents or full != agents:
        raise AssertionError(f"{len(tracker.agents)} agents tracked, {full} with full windows; expected {agents}")
    return {"agents": agents, "bytes": after - before, "bytes_per_agent": (after - before) / agents}


def measure_rss(agents: int) -> dict[str, Any]:
    logging.getLogger("exporter").setLevel(logging.ERROR)
    frames = agent_frames(agents)
    _feed(agent_frames(10))
    gc.collect()
    before = _rss_bytes()
    source = _feed(frames)
    gc.collect()
    after = _rss_bytes()
    assert len(source.ingest.tracker.agents) == agents
    return {"agents": agents, "bytes": after - before, "bytes_per_agent": (after - before) / agents}


def measure_stock(agents: int) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry, Gauge

    agents = min(agents, STOCK_AGENTS)  # informational, and slow under tracemalloc: a sample is enough
    frames = [json.loads(f) for f in agent_frames(agents)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    registry = CollectorRegistry()
    gauges = [Gauge(f"g{i}", "x", labelnames=["agent_id", "queue_id"], registry=registry) for i in range(5)]
    for msg in frames[-agents:]:
        for gauge in gauges:
            gauge.labels(msg["agentId"], msg["queueId"]).set(msg["sentiment"]["score"])
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return {"agents": agents, "bytes": after - before, "bytes_per_agent": (after - before) / agents}


def run(agents: int = 20_000, stock: bool = True) -> dict[str, Any]:
    """Each measurement in its own fresh interpreter; two at a time (memory figures do not mind sharing CPUs)."""
    jobs: dict[str, Callable[[int], dict[str, Any]]] = {"tracemalloc": measure_tracemalloc, "rss_delta": measure_rss}
    if stock:
        jobs["stock_gauges_tracemalloc"] = measure_stock
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2, maxtasksperchild=1) as pool:
        pending = {name: pool.apply_async(fn, (agents,)) for name, fn in jobs.items()}
        result: dict[str, Any] = {name: job.get(timeout=600) for name, job in pending.items()}
    result["bytes_per_agent"] = result["tracemalloc"]["bytes_per_agent"]
    return result
