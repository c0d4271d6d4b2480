"""Incremental scrape at region scale: a share of the agents changed since the last scrape.

Times are this thread's CPU time (`time.thread_time`), so another process taking the core does not
read as a stall of ours. Subject: what `/metrics` costs the event loop: `ExporterCollector.prepare`
(`AgentText.steps`: re-renders the agents changed before the scrape, then joins the page's blocks,
in slices of about a millisecond, yielding between them), then `render_parts()` (the blocks as pieces the server
writes one by one, never joined, and the small families). Baseline: `generate_latest` of
prometheus_client's stock labelled gauges holding the same series, updated for the same agents.
Reported: the scrape-cost ratio, the longest single synchronous step (a stall of the loop), and
expiry's cost next to a walk over every agent. The two pages are compared sample by sample.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import generate_latest

from bench.population import populate
from bench.render_bench import LABELS, _Small, compare, exporter_registry
from genesys_sentiment_exporter.metrics import AGENT_FAMILIES, SLICE_SECONDS, AgentText, render, render_parts
from genesys_sentiment_exporter.model import Phase, Reading
from genesys_sentiment_exporter.tracker import AgentState

BASE = 1_795_806_100.0


@dataclass
class ScrapeResult:
    agents: int
    changed: int
    slice_seconds: float
    subject_s: list[float] = field(default_factory=list)
    baseline_s: list[float] = field(default_factory=list)
    longest_step_s: list[float] = field(default_factory=list)
    render_s: list[float] = field(default_factory=list)
    check: dict[str, Any] = field(default_factory=dict)
    expire_s: float = 0.0
    walk_s: float = 0.0

    @property
    def ratio(self) -> float:
        return statistics.median(self.subject_s) / statistics.median(self.baseline_s)

    def as_dict(self) -> dict[str, Any]:
        return {
            "agents": self.agents,
            "changed_per_scrape": self.changed,
            "slice_ms": self.slice_seconds * 1e3,
            "median_ratio": self.ratio,
            "subject_median_ms": statistics.median(self.subject_s) * 1e3,
            "baseline_median_ms": statistics.median(self.baseline_s) * 1e3,
            "longest_loop_step_ms": max(self.longest_step_s) * 1e3,
            "render_parts_median_ms": statistics.median(self.render_s) * 1e3,
            "repeats": len(self.subject_s),
            "same_samples": self.check,
            "expire_ms": self.expire_s * 1e3,
            "walk_every_agent_ms": self.walk_s * 1e3,
            "expire_vs_walk_ratio": self.expire_s / self.walk_s if self.walk_s else None,
        }


def _stock(tracker_agents: dict[str, AgentState], registry_small: _Small) -> tuple[CollectorRegistry, list[Gauge]]:
    registry = CollectorRegistry(auto_describe=False)
    gauges = [
        Gauge(family.name, family.help, labelnames=LABELS, registry=registry) for family, _value in AGENT_FAMILIES
    ]
    for agent in tracker_agents.values():
        _set(gauges, agent)
    registry.register(registry_small)
    return registry, gauges


def _set(gauges: list[Gauge], agent: AgentState) -> None:
    for gauge, (_family, value_of) in zip(gauges, AGENT_FAMILIES, strict=True):
        value = value_of(agent)
        if value is not None:
            gauge.labels(agent.label_id, agent.queue_id, agent.party).set(value)


def run(
    agents: int = 50_000, changed_share: float = 0.10, repeats: int = 5, slice_seconds: float = SLICE_SECONDS
) -> ScrapeResult:
    ingest, _expected = populate(agents)
    tracker = ingest.tracker
    registry, collector = exporter_registry(ingest)
    stock, gauges = _stock(tracker.agents, _Small(collector))
    render(registry)  # every agent rendered once: the steady state a running exporter is in
    rng = random.Random(5)
    ids = list(tracker.agents)
    result = ScrapeResult(agents, int(agents * changed_share), slice_seconds)
    cache = AgentText.of(tracker)
    at = BASE
    for round_ in range(repeats):
        for agent_id in rng.sample(ids, result.changed):
            agent = tracker.agents[agent_id]
            at += 0.0001
            reading = Reading(agent_id, agent.queue_id, agent.conversation_id, round(rng.uniform(-1, 1), 2), at)
            ingest.conversation(reading, None)
            _set(gauges, agent)
        # subject: the slices prepare() runs between awaits (the same generator), then the render
        steps: list[float] = []
        start = step = time.thread_time()
        for _ in cache.steps(slice_seconds):
            steps.append(time.thread_time() - step)
            step = time.thread_time()
        steps.append(time.thread_time() - step)
        step = time.thread_time()
        parts = render_parts(registry)  # what the loop runs; the server writes the pieces as they are
        render_s = time.thread_time() - step
        result.subject_s.append(time.thread_time() - start)
        result.render_s.append(render_s)
        result.longest_step_s.append(max(*steps, render_s))
        # baseline
        start = time.thread_time()
        stock_page = generate_latest(stock)
        result.baseline_s.append(time.thread_time() - start)
        if round_ == repeats - 1:
            result.check = compare(b"".join(parts), stock_page, agents)
    # expiry: nothing due (the steady state of most calls to expire()) vs one walk over every agent
    now = ingest.clock()
    start = time.thread_time()
    for _ in range(10):
        tracker.expire(now)
    result.expire_s = (time.thread_time() - start) / 10
    start = time.thread_time()
    for _ in range(10):
        sum(1 for a in tracker.agents.values() if a.phase is Phase.ENDING and now >= a.grace_deadline)
    result.walk_s = (time.thread_time() - start) / 10
    return result


if __name__ == "__main__":
    import json
    import sys

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    print(json.dumps(run(size).as_dict(), indent=2))
