"""The exporter's metrics: one custom collector that reads live state at scrape time.

Following the "Writing exporters" guide for proxied data, nothing here is
updated per message: the collector builds families from the tracker, the
stream state and the token manager when Prometheus asks. The per-agent
families are the only large ones; they render their text directly from the
pre-escaped label text each agent caches (`render`), which is what keeps a
10 000-agent scrape cheap. `collect()` still yields ordinary families, so the
registry, `generate_latest` and tests see the same data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import product
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.samples import Sample

from genesys_sentiment_exporter import __version__, catalogue
from genesys_sentiment_exporter.catalogue import DisconnectCode, Family
from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.model import Phase
from genesys_sentiment_exporter.oauth import TokenManager
from genesys_sentiment_exporter.stream_state import StreamState
from genesys_sentiment_exporter.tracker import AgentState, AgentTracker

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _rolling(agent: AgentState) -> float | None:
    return agent.sum / len(agent.scores) if agent.scores else None


def _score(agent: AgentState) -> float | None:
    return agent.last_score if agent.scores else None


def _readings(agent: AgentState) -> float | None:
    return float(len(agent.scores))


def _last_reading(agent: AgentState) -> float | None:
    return agent.last_timestamp if agent.scores else None


def _active(agent: AgentState) -> float | None:
    return 1.0 if agent.phase is Phase.ACTIVE else 0.0


def _trend(agent: AgentState) -> float | None:
    return agent.trend


AGENT_FAMILIES: tuple[tuple[Family, Callable[[AgentState], float | None]], ...] = (
    (catalogue.AGENT_ROLLING_AVERAGE, _rolling),
    (catalogue.AGENT_SCORE, _score),
    (catalogue.AGENT_WINDOW_READINGS, _readings),
    (catalogue.AGENT_LAST_READING, _last_reading),
    (catalogue.AGENT_CONVERSATION_ACTIVE, _active),
    (catalogue.AGENT_TREND, _trend),
)


def gauge(family: Family, value: float | None = None) -> GaugeMetricFamily:
    """An empty labelled gauge of `family`, or its one unlabelled sample."""
    if value is not None:
        return GaugeMetricFamily(family.name, family.help, value=value)
    return GaugeMetricFamily(family.name, family.help, labels=family.label_names)


def info(family: Family, value: dict[str, str] | None = None) -> InfoMetricFamily:
    """An empty labelled info family of `family`, or its one unlabelled sample."""
    metric = InfoMetricFamily(family.name, family.help, labels=None if value is not None else family.label_names)
    if value is not None:
        metric.add_metric([], value)
    return metric


def histogram(family: Family, buckets: list[tuple[str, float]], sum_value: float) -> HistogramMetricFamily:
    """An unlabelled histogram of `family` from cumulative (upper bound, count) buckets."""
    return HistogramMetricFamily(family.name, family.help, buckets=buckets, sum_value=sum_value)


def counter(
    family: Family,
    counts: Mapping[Any, float] | float,
    open_values: Iterable[tuple[str, ...]] = (),
) -> CounterMetricFamily:
    """A counter family with every known value of its closed labels present, at 0 until counted.

    `counts` is keyed by the label value (one label) or the tuple of them (several); the open
    labels' values are those counted plus `open_values`, each with every closed combination.
    """
    if not family.labels:
        assert not isinstance(counts, Mapping)
        return CounterMetricFamily(family.name, family.help, value=counts)
    assert isinstance(counts, Mapping)
    metric = CounterMetricFamily(family.name, family.help, labels=family.label_names)
    labels = family.labels
    opens = [i for i, label in enumerate(labels) if label.values is None]
    rows: dict[tuple[str, ...], float] = {}
    keyed = {(tuple(map(str, key)) if isinstance(key, tuple) else (str(key),)): value for key, value in counts.items()}
    combos = {tuple(key[i] for i in opens) for key in keyed} | set(open_values) if opens else {()}
    for combo in sorted(combos):
        for closed in product(*(label.known for label in labels if label.values is not None)):
            open_it, closed_it = iter(combo), iter(closed)
            rows[tuple(next(open_it) if label.values is None else next(closed_it) for label in labels)] = 0.0
    for key, value in keyed.items():
        rows[key] = rows.get(key, 0.0) + value
    for key, value in rows.items():
        metric.add_metric(list(key), value)
    return metric


class AgentGaugeFamily(Metric):
    """A per-agent gauge whose samples are produced only when someone asks for them."""

    def __init__(self, family: Family, agents: list[AgentState], value: Any) -> None:
        self._agents = agents
        self._value = value
        super().__init__(family.name, family.help, "gauge")

    @property
    def samples(self) -> list[Sample]:
        out = []
        for agent in self._agents:
            value = self._value(agent)
            if value is not None:
                labels = {"agent_id": agent.label_id, "queue_id": agent.queue_id, "party": agent.party}
                out.append(Sample(self.name, labels, value, None, None))
        return out

    @samples.setter
    def samples(self, _ignored: list[Sample]) -> None:
        pass  # Metric.__init__ assigns an empty list; the samples are always derived

    def text(self) -> str:
        name = self.name
        value_of = self._value
        doc = self.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        lines = [f"# HELP {name} {doc}\n# TYPE {name} gauge\n"]
        append = lines.append
        for agent in self._agents:
            value = value_of(agent)
            if value is not None:
                append(f"{name}{{{agent.label_text}}} {_float(value)}\n")
        return "".join(lines)


QUEUE_FAMILIES: tuple[Family, ...] = (
    catalogue.QUEUE_CONVERSATIONS_ACTIVE,
    catalogue.QUEUE_CONVERSATIONS_SCORED,
    catalogue.QUEUE_FULL_WINDOWS,
    catalogue.QUEUE_ZERO_WINDOWS,
)


def queue_aggregates(agents: Iterable[AgentState], window_size: int) -> Iterator[Metric]:
    """Per-queue families for `--agent-identity none`: what the rules need, without naming anyone.

    The lowest full-window rolling average of a queue stands for "some call in this queue is
    sour"; it cannot say which one, by design.
    """
    counts: dict[str, list[int]] = {}
    lowest: dict[str, float] = {}
    for agent in agents:
        row = counts.setdefault(agent.queue_id, [0, 0, 0, 0])
        if agent.phase is not Phase.ACTIVE:
            continue
        row[0] += 1
        n = len(agent.scores)
        if n:
            row[1] += 1
        if n >= window_size:
            row[2] += 1
            average = agent.sum / n
            if not any(agent.scores):  # every reading of the window (the last one too) is 0.0
                row[3] += 1
            if average < lowest.get(agent.queue_id, float("inf")):
                lowest[agent.queue_id] = average
    for index, family in enumerate(QUEUE_FAMILIES):
        metric = gauge(family)
        for queue_id, row in sorted(counts.items()):
            metric.add_metric([queue_id], row[index])
        yield metric
    minimum = gauge(catalogue.QUEUE_ROLLING_AVERAGE_MIN)
    for queue_id, value in sorted(lowest.items()):
        minimum.add_metric([queue_id], value)
    yield minimum


class ExtraMetrics(Protocol):
    def metrics(self) -> Iterable[Metric]: ...


class ExporterInfo:
    """Settings the rules and dashboards read: the identity mode, and where the Genesys Cloud UI is."""

    def __init__(self, identity_mode: str, ui_url: str, external_url: str = "") -> None:
        self.identity_mode = identity_mode
        self.ui_url = ui_url
        self.external_url = external_url

    def metrics(self) -> Iterator[Metric]:
        yield info(catalogue.AGENT_IDENTITY, {"mode": self.identity_mode})
        if self.ui_url:
            yield info(catalogue.UI, {"url": self.ui_url})
        if self.external_url and self.ui_url and self.identity_mode != "none":
            yield info(catalogue.WEB, {"external_url": self.external_url})


def transcript_metrics(ingest: Ingest, tracker: AgentTracker, per_agent_series: bool) -> Iterator[Metric]:
    """Utterance outcomes, and Genesys' post-call scores in families of their own (a coaching signal:
    how the agent's recent calls went, never part of the live window)."""
    utterances: Counter[tuple[str, str]] = Counter()
    for (party, outcome), count in ingest.utterances.items():
        utterances[(party or "unknown", outcome)] += count
    yield counter(catalogue.TRANSCRIPT_UTTERANCES, utterances)
    if not per_agent_series:
        return
    book = ingest.postcall
    score, trend, mean, stamp = (
        gauge(f)
        for f in (
            catalogue.POSTCALL_SCORE,
            catalogue.POSTCALL_TREND,
            catalogue.POSTCALL_MEAN,
            catalogue.POSTCALL_TIMESTAMP,
        )
    )
    calls = CounterMetricFamily(
        catalogue.POSTCALL_CALLS.name, catalogue.POSTCALL_CALLS.help, labels=catalogue.POSTCALL_CALLS.label_names
    )
    label = tracker.label_id
    for agent, entry in list(book.agents.items()):
        labels = [agent if label is None else label(agent), entry.queue_id]
        score.add_metric(labels, entry.last_score)
        if entry.last_trend is not None:
            trend.add_metric(labels, entry.last_trend)
        mean.add_metric(labels, book.mean(agent))
        stamp.add_metric(labels, entry.timestamp)
        calls.add_metric(labels, entry.calls)
    yield from (score, trend, mean, stamp, calls)


class ExporterCollector:
    """Builds every family fresh at scrape time from the objects that own the state."""

    def __init__(
        self,
        *,
        tracker: AgentTracker,
        ingest: Ingest,
        stream: StreamState,
        tokens: TokenManager | None,
        source_name: str,
        ready: Callable[[], bool],
        extras: list[ExtraMetrics] | None = None,
        per_agent_series: bool = True,
    ) -> None:
        self.tracker = tracker
        self.ingest = ingest
        self.stream = stream
        self.tokens = tokens
        self.source_name = source_name
        self.ready = ready
        self.extras = extras or []
        self.per_agent_series = per_agent_series  # False: `--agent-identity none`

    def collect(self) -> Iterator[Metric]:
        agents = list(self.tracker.agents.values())
        if self.per_agent_series:
            for tracker in self.ingest.parties.values():
                if tracker is not self.tracker:
                    agents.extend(tracker.agents.values())  # opt-in agent scoring: same families, party="agent"
            for family, value in AGENT_FAMILIES:
                yield AgentGaugeFamily(family, agents, value)
        else:
            yield from queue_aggregates(agents, self.tracker.limits.window_size)
        yield from transcript_metrics(self.ingest, self.tracker, self.per_agent_series)
        yield from self.collect_small()

    def collect_small(self) -> Iterator[Metric]:
        tracker, stream, ingest = self.tracker, self.stream, self.ingest
        yield info(catalogue.BUILD, {"version": __version__, "source": self.source_name})
        yield gauge(catalogue.WINDOW_SIZE, tracker.limits.window_size)
        yield gauge(catalogue.READY, self.ready())
        yield gauge(catalogue.TRACKED_AGENTS, len(tracker.agents))
        yield counter(catalogue.AGENTS_REFUSED, tracker.agents_refused)
        yield counter(catalogue.AGENTS_DROPPED, tracker.dropped)
        yield counter(
            catalogue.CONVERSATIONS_ENDED, tracker.conversations_ended, ((queue,) for queue in tracker.queue_last_ended)
        )
        yield gauge(catalogue.STREAM_CONNECTED, stream.connected)
        yield counter(catalogue.STREAM_CONNECTS, stream.connects)
        codes: Counter[DisconnectCode] = Counter()
        for code, count in stream.disconnects.items():
            codes[DisconnectCode.of(code)] += count
        yield counter(catalogue.STREAM_DISCONNECTS, codes)
        yield counter(catalogue.STREAM_ROLLOVERS, stream.rollovers)
        if stream.last_message:
            yield gauge(catalogue.STREAM_LAST_MESSAGE, stream.last_message)
        if stream.last_heartbeat:
            yield gauge(catalogue.STREAM_LAST_HEARTBEAT, stream.last_heartbeat)
        yield counter(catalogue.STREAM_MESSAGES, ingest.messages)
        yield counter(catalogue.EVENT_TIME_CLAMPED, ingest.event_time_clamped)
        yield from self._token_metrics()
        for extra in self.extras:
            yield from extra.metrics()

    def _token_metrics(self) -> Iterator[Metric]:
        tokens = self.tokens
        if tokens is None:
            return
        token = tokens.token
        if token is not None:
            yield gauge(catalogue.TOKEN_EXPIRY, token.expires_at)
            yield gauge(catalogue.TOKEN_LIFETIME, token.lifetime)
        yield counter(catalogue.TOKEN_REQUESTS, tokens.requests)


class _Only:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def render(registry: CollectorRegistry) -> bytes:
    """Text exposition of the registry, with the per-agent families on their fast path."""
    parts: list[bytes] = []
    small: list[Metric] = []
    for family in registry.collect():
        if isinstance(family, AgentGaugeFamily):
            parts.append(family.text().encode())
        else:
            small.append(family)
    parts.append(generate_latest(_Only(small)))
    return b"".join(parts)


def new_registry(collector: ExporterCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
