"""Scrape rendering: `exporter.metrics.render` against prometheus_client's stock labelled gauges.

Subject: the exporter's real registry (`new_registry(ExporterCollector(...))`)
over a real tracker holding N agents, rendered with `exporter.metrics.render`,
exactly what the /metrics handler returns.
Baseline: a stock `CollectorRegistry` with one `Gauge(labelnames=["agent_id",
"queue_id"])` per per-agent family, set from an independent model of the same
agents, plus the same small families (via `collect_small()`), rendered with
`generate_latest`. Only rendering is timed (not filling the gauges).

Before timing, both outputs are parsed with `text_string_to_metric_families`
and must carry the same samples (rolling averages compared to 1e-9 relative,
since the tracker keeps a running sum); the benchmark fails if they do not.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from bench.population import Expected, populate
from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.metrics import AGENT_FAMILIES, AgentGaugeFamily, ExporterCollector, new_registry, render
from genesys_sentiment_exporter.stream_state import StreamState

LABELS = ["agent_id", "queue_id", "party"]
ROLLING, SCORE, READINGS, LAST, ACTIVE, TREND = (family.name for family, _fn in AGENT_FAMILIES)


def exporter_registry(ingest: Ingest) -> tuple[CollectorRegistry, ExporterCollector]:
    stream = StreamState()
    stream.connected = True
    stream.connects = 1
    stream.last_message = 1_795_806_100.0
    collector = ExporterCollector(
        tracker=ingest.tracker,
        ingest=ingest,
        stream=stream,
        tokens=None,
        source_name="analytics-websocket",
        ready=lambda: True,
    )
    return new_registry(collector), collector


class _Small(Collector):
    """The exporter's small families, so the stock registry renders the same page."""

    def __init__(self, collector: ExporterCollector) -> None:
        self.collector = collector

    def collect(self) -> Iterator[Metric]:
        return (f for f in self.collector.collect() if not isinstance(f, AgentGaugeFamily))


def stock_registry(expected: dict[str, Expected], collector: ExporterCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    docs = {family.name: family.help for family, _fn in AGENT_FAMILIES}
    gauges = {name: Gauge(name, docs[name], labelnames=LABELS, registry=registry) for name in docs}
    for agent_id, model in expected.items():
        labels = (agent_id, model.queue_id, "customer")
        if model.window:
            gauges[ROLLING].labels(*labels).set(sum(model.window) / len(model.window))
            gauges[SCORE].labels(*labels).set(model.window[-1])
        gauges[READINGS].labels(*labels).set(len(model.window))
        if model.last_timestamp is not None:
            gauges[LAST].labels(*labels).set(model.last_timestamp)
        gauges[ACTIVE].labels(*labels).set(1.0 if model.active else 0.0)
        # TREND: the analytics stream has no trend score, so the family has no samples on either side.
    registry.register(_Small(collector))
    return registry


SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def samples_of(text: bytes) -> dict[SampleKey, float]:
    out: dict[SampleKey, float] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            if key in out:
                raise AssertionError(f"duplicate sample {key}")
            out[key] = sample.value
    return out


def compare(subject: bytes, baseline: bytes, agents: int) -> dict[str, Any]:
    """Differences between the two pages' samples; raises if any per-agent (or other) sample differs."""
    got, want = samples_of(subject), samples_of(baseline)
    problems: list[str] = []
    for key in sorted(want.keys() - got.keys())[:5]:
        problems.append(f"missing from render(): {key}")
    for key in sorted(got.keys() - want.keys())[:5]:
        problems.append(f"extra in render(): {key}")
    worst = 0.0
    for key in want.keys() & got.keys():
        a, b = got[key], want[key]
        if math.isnan(a) and math.isnan(b):
            continue
        if a != b:
            if key[0] == ROLLING and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12):
                worst = max(worst, abs(a - b))
            elif len(problems) < 10:
                problems.append(f"{key}: render()={a!r} stock={b!r}")
    per_agent = sum(1 for name, _labels in want if name in {ROLLING, SCORE, READINGS, LAST, ACTIVE, TREND})
    if problems:
        raise AssertionError("render() and stock gauges disagree:\n  " + "\n  ".join(problems))
    if not any(name == ACTIVE for name, _ in want) or sum(1 for n, _ in want if n == ACTIVE) != agents:
        raise AssertionError("stock page does not hold one conversation_active sample per agent")
    return {"samples": len(want), "per_agent_samples": per_agent, "max_rolling_average_abs_diff": worst}


@dataclass
class RenderResult:
    agents: int
    subject_s: list[float] = field(default_factory=list)
    baseline_s: list[float] = field(default_factory=list)
    check: dict[str, Any] = field(default_factory=dict)
    bytes_subject: int = 0
    bytes_baseline: int = 0

    @property
    def ratio(self) -> float:
        return statistics.median(self.subject_s) / statistics.median(self.baseline_s)

    def as_dict(self) -> dict[str, Any]:
        return {
            "agents": self.agents,
            "median_ratio": self.ratio,
            "subject_median_ms": statistics.median(self.subject_s) * 1e3,
            "baseline_median_ms": statistics.median(self.baseline_s) * 1e3,
            "repeats": len(self.subject_s),
            "page_bytes": {"render": self.bytes_subject, "generate_latest": self.bytes_baseline},
            "same_samples": self.check,
        }


def timed(fn: Callable[[], bytes]) -> tuple[float, bytes]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run(agents: int = 10_000, repeats: int = 15) -> RenderResult:
    ingest, expected = populate(agents)
    if len(ingest.tracker.agents) != agents:
        raise AssertionError(f"tracker holds {len(ingest.tracker.agents)} agents, expected {agents}")
    registry, collector = exporter_registry(ingest)
    stock = stock_registry(expected, collector)

    def subject() -> bytes:
        return render(registry)

    def baseline() -> bytes:
        return generate_latest(stock)

    result = RenderResult(agents)
    subject_page, baseline_page = subject(), baseline()  # warm-up, and the pages to compare
    result.check = compare(subject_page, baseline_page, agents)
    result.bytes_subject, result.bytes_baseline = len(subject_page), len(baseline_page)
    for i in range(repeats):
        order = (subject, baseline) if i % 2 == 0 else (baseline, subject)
        for fn in order:
            elapsed, _page = timed(fn)
            (result.subject_s if fn is subject else result.baseline_s).append(elapsed)
    return result
