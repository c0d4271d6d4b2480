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

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.samples import Sample

from genesys_sentiment_exporter import __version__
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


AGENT_FAMILIES: tuple[tuple[str, str, Callable[[AgentState], float | None]], ...] = (
    (
        "genesys_agent_sentiment_rolling_average",
        "Mean of the agent's rolling window of sentiment scores (-1..1) in the current conversation.",
        _rolling,
    ),
    ("genesys_agent_sentiment_score", "The agent's most recent sentiment score (-1..1).", _score),
    (
        "genesys_agent_sentiment_window_readings",
        "Readings in the agent's rolling window (0 up to the window size).",
        _readings,
    ),
    (
        "genesys_agent_last_reading_timestamp_seconds",
        "Event time of the agent's most recent sentiment reading.",
        _last_reading,
    ),
    (
        "genesys_agent_conversation_active",
        "1 while the agent's conversation is live, 0 in the grace period after it ended.",
        _active,
    ),
    (
        "genesys_agent_sentiment_trend",
        "The conversation's sentiment trend score (-1..1), where the source provides one.",
        _trend,
    ),
)


class AgentGaugeFamily(Metric):
    """A per-agent gauge whose samples are produced only when someone asks for them."""

    def __init__(self, name: str, documentation: str, agents: list[AgentState], value: Any) -> None:
        self._agents = agents
        self._value = value
        super().__init__(name, documentation, "gauge")

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


QUEUE_FAMILIES: tuple[tuple[str, str], ...] = (
    ("genesys_queue_conversations_active", "Live conversations tracked in the queue."),
    ("genesys_queue_conversations_scored", "Live conversations in the queue with at least one sentiment reading."),
    (
        "genesys_queue_sentiment_full_windows",
        "Live conversations in the queue whose rolling window is full (the ones the alerts judge).",
    ),
    (
        "genesys_queue_sentiment_zero_windows",
        "Live full-window conversations in the queue whose window and last reading are exactly 0.0.",
    ),
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
    for index, (name, doc) in enumerate(QUEUE_FAMILIES):
        family = GaugeMetricFamily(name, doc, labels=["queue_id"])
        for queue_id, row in sorted(counts.items()):
            family.add_metric([queue_id], row[index])
        yield family
    minimum = GaugeMetricFamily(
        "genesys_queue_sentiment_rolling_average_min",
        "Lowest rolling average among the queue's live full-window conversations.",
        labels=["queue_id"],
    )
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
        identity = InfoMetricFamily(
            "genesys_exporter_agent_identity", "How agents are named: plain, pseudonymous or none (aggregates only)."
        )
        identity.add_metric([], {"mode": self.identity_mode})
        yield identity
        if self.ui_url:
            ui = InfoMetricFamily(
                "genesys_exporter_ui",
                "The region's Genesys Cloud web app, for links in alerts (agent links only with plain identities).",
            )
            ui.add_metric([], {"url": self.ui_url})
            yield ui
        if self.external_url and self.ui_url and self.identity_mode != "none":
            web = InfoMetricFamily(
                "genesys_exporter_web",
                "Where supervisors reach this exporter: alerts link {external_url}/-/conversation/{agent_id}.",
            )
            web.add_metric([], {"external_url": self.external_url})
            yield web


def transcript_metrics(ingest: Ingest, tracker: AgentTracker, per_agent_series: bool) -> Iterator[Metric]:
    """Utterance outcomes, and Genesys' post-call scores in families of their own (a coaching signal:
    how the agent's recent calls went, never part of the live window)."""
    utterances = CounterMetricFamily(
        "genesys_transcript_utterances",
        "Transcript utterances by party and what became of them (reading, partial, repeat, unsupported_language, ...).",
        labels=["party", "outcome"],
    )
    for (party, outcome), count in sorted(ingest.utterances.items()):
        utterances.add_metric([party or "unknown", outcome], count)
    yield utterances
    if not per_agent_series:
        return
    book = ingest.postcall
    families = (
        (
            "genesys_agent_postcall_sentiment_score",
            "Genesys' overall sentiment (-1..1) of the agent's last finished call (computed after the call).",
        ),
        (
            "genesys_agent_postcall_sentiment_trend",
            "Genesys' sentiment trend (-1..1) of the agent's last finished call.",
        ),
        (
            "genesys_agent_postcall_sentiment_mean",
            "Mean of Genesys' overall sentiment over the agent's recent calls (up to 5).",
        ),
        ("genesys_agent_postcall_timestamp_seconds", "When the agent's last post-call score arrived."),
    )
    made = [GaugeMetricFamily(name, doc, labels=["agent_id", "queue_id"]) for name, doc in families]
    calls = CounterMetricFamily(
        "genesys_agent_postcall_calls", "Calls of the agent with a post-call score.", labels=["agent_id", "queue_id"]
    )
    label = tracker.label_id
    for agent, entry in list(book.agents.items()):
        labels = [agent if label is None else label(agent), entry.queue_id]
        made[0].add_metric(labels, entry.last_score)
        if entry.last_trend is not None:
            made[1].add_metric(labels, entry.last_trend)
        made[2].add_metric(labels, book.mean(agent))
        made[3].add_metric(labels, entry.timestamp)
        calls.add_metric(labels, entry.calls)
    yield from made
    yield calls


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
            for name, doc, value in AGENT_FAMILIES:
                yield AgentGaugeFamily(name, doc, agents, value)
        else:
            yield from queue_aggregates(agents, self.tracker.limits.window_size)
        yield from transcript_metrics(self.ingest, self.tracker, self.per_agent_series)
        yield from self.collect_small()

    def collect_small(self) -> Iterator[Metric]:
        tracker, stream, ingest = self.tracker, self.stream, self.ingest
        info = InfoMetricFamily("genesys_exporter_build", "Build and source of this exporter.")
        info.add_metric([], {"version": __version__, "source": self.source_name})
        yield info
        yield GaugeMetricFamily(
            "genesys_exporter_window_size",
            "Readings per agent rolling window (a full window is this many).",
            value=tracker.limits.window_size,
        )
        yield GaugeMetricFamily(
            "genesys_exporter_ready", "1 while the stream is connected and the token valid.", value=self.ready()
        )
        yield GaugeMetricFamily("genesys_tracked_agents", "Agents currently tracked.", value=len(tracker.agents))
        yield CounterMetricFamily(
            "genesys_agents_refused",
            "New agents refused because the tracked-agent cap was reached.",
            value=tracker.agents_refused,
        )
        dropped = CounterMetricFamily(
            "genesys_agents_dropped", "Agents whose state and series were dropped.", labels=["reason"]
        )
        for reason in ("grace_elapsed", "idle"):
            dropped.add_metric([reason], tracker.dropped[reason])
        yield dropped
        ended = CounterMetricFamily(
            "genesys_conversations_ended",
            "Conversations finished, by whether any sentiment reading arrived for them.",
            labels=["queue_id", "had_sentiment"],
        )
        for (queue_id, had), count in sorted(tracker.conversations_ended.items()):
            ended.add_metric([queue_id, had], count)
        yield ended
        yield GaugeMetricFamily(
            "genesys_stream_connected", "1 while a subscribed stream socket is open.", value=stream.connected
        )
        yield CounterMetricFamily(
            "genesys_stream_connects", "Successful stream connections (subscribed).", value=stream.connects
        )
        disconnects = CounterMetricFamily(
            "genesys_stream_disconnects", "Unplanned stream socket losses by close code.", labels=["code"]
        )
        for code, count in sorted(stream.disconnects.items()):
            disconnects.add_metric([code], count)
        yield disconnects
        rollovers = CounterMetricFamily(
            "genesys_stream_rollovers", "Planned make-before-break socket swaps by reason.", labels=["reason"]
        )
        for reason, count in sorted(stream.rollovers.items()):
            rollovers.add_metric([reason], count)
        yield rollovers
        if stream.last_message:
            yield GaugeMetricFamily(
                "genesys_stream_last_message_timestamp_seconds",
                "When the stream last delivered any message.",
                value=stream.last_message,
            )
        if stream.last_heartbeat:
            yield GaugeMetricFamily(
                "genesys_stream_last_heartbeat_timestamp_seconds",
                "When the stream last delivered a heartbeat.",
                value=stream.last_heartbeat,
            )
        messages = CounterMetricFamily(
            "genesys_stream_messages", "Stream messages by what became of them.", labels=["outcome"]
        )
        for outcome, count in sorted(ingest.messages.items()):
            messages.add_metric([outcome], count)
        yield messages
        clamped = CounterMetricFamily(
            "genesys_stream_event_time_clamped",
            "Readings whose eventTime was too far from the receive time and was replaced by it.",
            labels=["direction"],
        )
        for direction in ("future", "past"):
            clamped.add_metric([direction], ingest.event_time_clamped[direction])
        yield clamped
        yield from self._token_metrics()
        for extra in self.extras:
            yield from extra.metrics()

    def _token_metrics(self) -> Iterator[Metric]:
        tokens = self.tokens
        if tokens is None:
            return
        token = tokens.token
        if token is not None:
            yield GaugeMetricFamily(
                "genesys_oauth_token_expiry_timestamp_seconds",
                "When the current OAuth token expires.",
                value=token.expires_at,
            )
            yield GaugeMetricFamily(
                "genesys_oauth_token_lifetime_seconds",
                "Lifetime the login host granted the current token (expires_in).",
                value=token.lifetime,
            )
        requests = CounterMetricFamily(
            "genesys_oauth_token_requests", "OAuth token requests by result.", labels=["result"]
        )
        for result, count in sorted(tokens.requests.items()):
            requests.add_metric([result], count)
        yield requests


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
