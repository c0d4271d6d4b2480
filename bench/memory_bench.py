"""Memory per tracked agent: N agents with full windows, fed as real frames through the real read path.

Each measurement runs in a fresh (spawned) interpreter so earlier benchmarks'
allocations do not blur it:
- tracemalloc (the budgeted figure, issue 13: <= 1 KiB per agent at 50 000
  agents *including the exposition cache*): Python allocations still alive after
  every frame was handled, one scrape was rendered (which builds the cache) and
  garbage collected, divided by N. It includes the `AgentState`, its window,
  the id strings it keeps (decoded by `json.loads`, as in production), its label
  bytes, its slot in the tracker's dict and its rows in `metrics.AgentText`.
  The state and the cache are also reported apart.
- RSS (issue 13: one process holds 100 000 agents within 200 MB): the whole
  process's resident set, without tracemalloc, after feeding N agents and
  rendering three scrapes (each page dropped once written, as the server does),
  and its peak (VmHWM), next to the same interpreter's RSS before the feed.
  Frames are generated lazily so the feed itself does not inflate it.
- the Notifications path (informational: the budget above was set on the analytics stream, the
  region-scale source): N agents each on one live call, fed as the platform's frames (both topics'
  conversation events, then the call's live transcript) through `NotificationsSession.receive` with
  its production decoder and `apply`, then one scrape; live bytes per agent, which here include the
  call's attribution, its topics in the subscription plan and its transcript state. N defaults to
  9 000: one OAuth client holds at most 20 channels x 1 000 topics, and each live call takes two
  (transcription, post-call sentiment).
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
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar, cast

from genesys_cloud_simulator.scenarios import label_for

from bench.frames import EventClock, dumps, uuid_from

WINDOW = 5
T = TypeVar("T")
STOCK_AGENTS = 5000


def agent_frames(agents: int, seed: int = 5, queues: int = 50) -> list[str]:
    """Round-robin over agents: a `connected` event, then WINDOW + 1 readings each (a full, wrapped window)."""
    return list(iter_agent_frames(agents, seed, queues))


def iter_agent_frames(agents: int, seed: int = 5, queues: int = 50) -> Iterator[str]:
    """`agent_frames`, one at a time."""
    rng = random.Random(seed)
    queue_ids = [uuid_from(rng) for _ in range(queues)]
    people = [(uuid_from(rng), rng.choice(queue_ids), uuid_from(rng)) for _ in range(agents)]
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
            yield dumps(event)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _scrape(ingest: Any) -> int:
    """One /metrics page as the server makes it (the cache's blocks, then dropped); its size."""
    from bench.render_bench import exporter_registry
    from genesys_sentiment_exporter.metrics import render_parts

    registry, _collector = exporter_registry(ingest)
    return sum(map(len, render_parts(registry)))


def _traced(feed: Callable[[], T], ingest: Callable[[T], Any], agents: int) -> tuple[T, dict[str, Any]]:
    """`feed()`'s live bytes per agent under tracemalloc: after the feed and a collection (state), then
    after one scrape (which builds the exposition cache) and a collection."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    fed = feed()
    gc.collect()
    state = tracemalloc.get_traced_memory()[0]
    page = _scrape(ingest(fed))
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return fed, {
        "agents": agents,
        "bytes": after - before,
        "bytes_per_agent": (after - before) / agents,
        "state_bytes_per_agent": (state - before) / agents,
        "cache_bytes_per_agent": (after - state) / agents,
        "page_bytes_per_agent": page / agents,
    }


def _feed(frames: Iterable[str], max_agents: int = 20_000) -> Any:
    """The read loop's body over `frames`; returns the source (which holds the tracker)."""
    from genesys_sentiment_exporter.ingest import Ingest
    from genesys_sentiment_exporter.oauth import TokenManager
    from genesys_sentiment_exporter.sources import analytics_protocol as proto
    from genesys_sentiment_exporter.sources.analytics_websocket import AnalyticsWebSocketSource
    from genesys_sentiment_exporter.stream_state import StreamState
    from genesys_sentiment_exporter.tracker import AgentTracker, TrackerLimits

    source = AnalyticsWebSocketSource(
        api_base_url="http://127.0.0.1:1",
        tokens=cast(TokenManager, None),
        ingest=Ingest(AgentTracker(TrackerLimits(max_agents=max_agents))),
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
    _scrape(_feed(agent_frames(10)).ingest)  # import and warm everything outside the measurement
    source, figures = _traced(lambda: _feed(frames, max_agents=agents), lambda fed: fed.ingest, agents)
    tracker = source.ingest.tracker
    full = sum(1 for a in tracker.agents.values() if len(a.scores) == WINDOW)
    if len(tracker.agents) != agents or full != agents:
        raise AssertionError(f"{len(tracker.agents)} agents tracked, {full} with full windows; expected {agents}")
    return figures


NOTIFICATIONS_CALLS = 9_000


def measure_notifications(calls: int) -> dict[str, Any]:
    from bench.notifications_bench import ConstantScorer, _script
    from genesys_sentiment_exporter.analysis.base import UtteranceAnalyzer
    from genesys_sentiment_exporter.ingest import Ingest
    from genesys_sentiment_exporter.sources.notifications_session import NotificationsSession, apply
    from genesys_sentiment_exporter.tracker import AgentTracker, TrackerLimits

    logging.getLogger("exporter").setLevel(logging.ERROR)
    queues = [f"q{n}" for n in range(7)]

    def feed(frames: list[str]) -> tuple[NotificationsSession, Ingest]:
        session = NotificationsSession(queue_ids=queues, agent_ids=[], analyzer=UtteranceAnalyzer(ConstantScorer()))
        session.start()
        ingest = Ingest(AgentTracker(TrackerLimits(grace_seconds=600, max_agents=calls)))
        receive, wall = session.receive, time.time
        for frame in frames:
            apply(ingest, receive(frame, 1, time.monotonic(), wall()))
        return session, ingest

    _scrape(feed(_script(10, 6, "warm", 1_777_629_602.0, hang_up=False))[1])  # imports and caches, unmeasured
    frames = _script(calls, 6, "c", 1_777_629_602.0, hang_up=False)
    (session, ingest), figures = _traced(lambda: feed(frames), lambda fed: fed[1], calls)
    tracker = ingest.tracker
    live = len(session.attribution.live)
    scored = sum(1 for a in tracker.agents.values() if len(a.scores))
    if len(tracker.agents) != calls or live != calls or scored != calls:
        raise AssertionError(f"{len(tracker.agents)} agents, {scored} scored, {live} live calls; expected {calls}")
    return {**figures, "live_calls": live, "frames": len(frames)}


def measure_rss(agents: int) -> dict[str, Any]:
    logging.getLogger("exporter").setLevel(logging.ERROR)
    _scrape(_feed(agent_frames(10)).ingest)
    gc.collect()
    before = _rss_bytes()
    source = _feed(iter_agent_frames(agents), max_agents=agents)
    for _ in range(3):
        _scrape(source.ingest)
    gc.collect()
    after = _rss_bytes()
    assert len(source.ingest.tracker.agents) == agents
    return {
        "agents": agents,
        "rss_bytes": after,
        "rss_mb": after / 1e6,
        "peak_rss_mb": _peak_rss_bytes() / 1e6,
        "interpreter_rss_mb": before / 1e6,
        "bytes": after - before,
        "bytes_per_agent": (after - before) / agents,
    }


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


def run(
    agents: int = 50_000, stock: bool = True, rss_agents: int = 100_000, calls: int = NOTIFICATIONS_CALLS
) -> dict[str, Any]:
    """Each measurement in its own fresh interpreter; two at a time (memory figures do not mind sharing CPUs)."""
    jobs: dict[str, tuple[Callable[[int], dict[str, Any]], int]] = {
        "tracemalloc": (measure_tracemalloc, agents),
        "rss": (measure_rss, rss_agents),
        "notifications_tracemalloc": (measure_notifications, calls),
    }
    if stock:
        jobs["stock_gauges_tracemalloc"] = (measure_stock, agents)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2, maxtasksperchild=1) as pool:
        pending = {name: pool.apply_async(fn, (size,)) for name, (fn, size) in jobs.items()}
        result: dict[str, Any] = {name: job.get(timeout=900) for name, job in pending.items()}
    result["bytes_per_agent"] = result["tracemalloc"]["bytes_per_agent"]
    return result


if __name__ == "__main__":
    import sys

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    rss_size = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    print(json.dumps(run(size, stock=False, rss_agents=rss_size), indent=2))
