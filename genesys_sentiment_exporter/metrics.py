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

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.samples import Sample

from genesys_sentiment_exporter import __version__, catalogue
from genesys_sentiment_exporter.catalogue import DisconnectCode, Family
from genesys_sentiment_exporter.families import counter, gauge, info
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


_EMPTY_ROW = (b"", b"", b"")
# How long one step of a scrape's preparation may hold the event loop. A frame that arrives during a
# step waits for it and, as the loop runs the step it queued before waking the frame's reader, for
# the next one too: at 10 000 events/s, 1 ms steps left 1.1 % of readings over 5 ms, 0.5 ms 0.8 %
# (issue 13, freshness; `bench/README.md`).
SLICE_SECONDS = 0.0005
_RENDER_BATCH = 32  # agents rendered between two looks at the clock (~0.1-0.2 ms)
_MEMO_SIZE = 4096


class _Values:
    """Value text (`b"0.5\\n"`) of the families whose values repeat across agents (window counts,
    0/1, scores), made once and shared: a few thousand bytes objects instead of one per agent."""

    def __init__(self) -> None:
        self.memo: dict[float, bytes] = {}

    def text(self, value: float) -> bytes:
        text = self.memo.get(value)
        if text is None:
            text = f"{_float(value)}\n".encode()
            # 0.0 and -0.0 are one key but two texts; NaN is never found again: neither is kept.
            if value and value == value and len(self.memo) < _MEMO_SIZE:
                self.memo[value] = text
        return text


class AgentText:
    """Every tracked agent's exposition rows, per family, re-rendered only for agents that changed.

    The tracker notes each agent it adds, changes or drops (`tracker.changed`); `refresh` renders
    those and nothing else. A row is three references, (family head, the agent's label bytes,
    value text), in one list per family at the agent's `slot` (so a block of rows is one slice and
    one `bytes.join`); the label bytes are the agent's own (`AgentState.label`) and repeating
    values are shared, so the cache holds about the value text of each agent and not six copies of
    its lines. A dropped agent's row is emptied and its slot reused. Sample order follows the slots.

    The page itself is not kept between scrapes (at 50 000 agents it would be ~35 MB, more than
    the rows and the agents together): `join` builds it block by block for the scrape under way,
    in slices that `ExporterCollector.prepare` interleaves with the loop's other work (`steps`);
    `blocks_of` hands the blocks to the scrape and lets go of them once every family has been taken.

    A prepared scrape renders the agents that changed before it started and no others: changes that
    land while it runs wait for the next scrape. Chasing them (as the first cut did) made a scrape
    under a saturated stream last as long as the stream, re-rendering an agent on nearly every
    reading: 0.81x the ingest rate without scrapes (issue 13, goal 3).
    """

    BLOCK = 1024

    def __init__(self, tracker: AgentTracker) -> None:
        self.tracker = tracker
        tracker.changed = set(tracker.agents.values())
        self.rows: list[list[bytes]] = [[] for _ in AGENT_FAMILIES]
        self.free: list[int] = []
        self.slots = 0
        self.heads = [family.name.encode() + b"{" for family, _ in AGENT_FAMILIES]
        self.headers = [
            f"# HELP {family.name} {_help(family.help)}\n# TYPE {family.name} gauge\n".encode()
            for family, _ in AGENT_FAMILIES
        ]
        self.counts = _Values()  # window readings, conversation active
        self.scores = _Values()
        self.means = _Values()  # rolling averages: a few thousand distinct ones when scores are coarse
        # The page of the scrape under way: joined blocks per family, and the families handed out.
        self.page: list[list[bytes]] = [[] for _ in AGENT_FAMILIES]
        self.taken: set[int] = set()
        # One scrape prepares at a time: a second one joining the page while the first still
        # rendered the agents it found changed finished early, with part of the page.
        self.preparing = asyncio.Lock()
        self.prepared = False  # `steps` completed this page: hand it out as it is

    @classmethod
    def of(cls, tracker: AgentTracker) -> AgentText:
        """The tracker's one cache (two caches would each see only part of the changes)."""
        cache = tracker.exposition
        if not isinstance(cache, AgentText):
            cache = tracker.exposition = cls(tracker)
        return cache

    def refresh(self, budget: int | None = None) -> bool:
        """Render the changed agents, at most `budget` of them; True when none is left."""
        changed = self.tracker.changed
        assert changed is not None
        done = self._render(changed, budget)
        if done > 4096:  # a set keeps the table of its largest size: let a burst's go
            self.tracker.changed = set(changed)
        return not changed

    def _render(self, changed: set[AgentState], budget: int | None) -> int:
        """Render (and take out of `changed`) at most `budget` agents; how many were rendered."""
        agents = self.tracker.agents
        rolling, score, readings, last, active, trend_rows = self.rows
        heads = self.heads
        counts, scores_text, means_text = self.counts.text, self.scores.text, self.means.text
        counts_memo, scores_memo, means_memo = self.counts.memo, self.scores.memo, self.means.memo
        on, off, active_phase = counts(1.0), counts(0.0), Phase.ACTIVE
        done = 0
        while changed:
            if budget is not None and done >= budget:
                break
            agent = changed.pop()
            done += 1
            slot = agent.slot
            if agents.get(agent.agent_id) is not agent:  # dropped
                if slot >= 0:
                    at = 3 * slot
                    for family_rows in self.rows:
                        family_rows[at : at + 3] = _EMPTY_ROW
                    self.free.append(slot)
                    agent.slot = -1
                continue
            if slot < 0:
                if self.free:
                    slot = self.free.pop()
                else:
                    slot = self.slots
                    self.slots += 1
                    for family_rows in self.rows:
                        family_rows += _EMPTY_ROW
                agent.slot = slot
            # The AGENT_FAMILIES values, inlined (this loop is the scrape's cost); the tests compare
            # the page with generate_latest's, which goes through the value functions.
            # Head and label are written only when the row is new or the labels changed (the value
            # text is what a reading changes); `b"%r"` is `_float` for the finite values that come here.
            # Value text is looked up in the memos first (a dict hit is ~40 ns, a float repr ~330 ns).
            at = 3 * slot
            label = agent.label
            scores = agent.scores
            count = len(scores)
            if readings[at + 1] is not label:
                readings[at], readings[at + 1], active[at], active[at + 1] = heads[2], label, heads[4], label
            readings[at + 2] = counts_memo.get(count) or counts(float(count))
            active[at + 2] = on if agent.phase is active_phase else off
            if count:
                if rolling[at + 1] is not label:
                    rolling[at], rolling[at + 1], score[at], score[at + 1] = heads[0], label, heads[1], label
                    last[at], last[at + 1] = heads[3], label
                value = sum(scores) / count
                rolling[at + 2] = means_memo.get(value) or means_text(value)
                value = scores[(agent.readings - 1) % count]
                score[at + 2] = scores_memo.get(value) or scores_text(value)
                value = float(agent.last_timestamp)
                last[at + 2] = b"%r\n" % value if value - value == 0 else f"{_float(value)}\n".encode()
            elif rolling[at + 1]:
                rolling[at : at + 3] = score[at : at + 3] = last[at : at + 3] = _EMPTY_ROW
            trend = agent.trend
            if trend is not None:
                if trend_rows[at + 1] is not label:
                    trend_rows[at], trend_rows[at + 1] = heads[5], label
                trend_rows[at + 2] = scores_text(trend)
            elif trend_rows[at + 1]:
                trend_rows[at : at + 3] = _EMPTY_ROW
        return done

    def join(self, budget: int | None = None) -> bool:
        """Join the next blocks of the scrape under way, at most `budget` of them; True when the
        page is complete."""
        span = 3 * self.BLOCK
        total = (self.slots + self.BLOCK - 1) // self.BLOCK
        done = 0
        page = self.page
        while len(page[0]) < total:
            if budget is not None and done >= budget:
                return False
            block = len(page[0])
            for family_rows, family_page in zip(self.rows, page, strict=True):
                family_page.append(b"".join(family_rows[block * span : (block + 1) * span]))
            done += 1
        return True

    def steps(
        self, slice_seconds: float = SLICE_SECONDS, clock: Callable[[], float] = time.perf_counter
    ) -> Iterator[None]:
        """A scrape's preparation, yielding between slices of about `slice_seconds`: render the
        agents that changed before it began (later changes stay for the next scrape), then join
        the page's blocks."""
        changed = self.tracker.changed
        assert changed is not None
        self.tracker.changed = set()
        deadline = clock() + slice_seconds
        try:
            while changed:
                self._render(changed, _RENDER_BATCH)
                if changed and clock() >= deadline:
                    yield
                    deadline = clock() + slice_seconds
        finally:
            # A scrape cancelled mid-render (shutdown, a timeout around it) hands back what it had not
            # rendered yet: dropped, those agents would keep their old text until they changed again.
            if changed:
                self.tracker.changed |= changed
        while not self.join(1):
            if clock() >= deadline:
                yield
                deadline = clock() + slice_seconds
        self.prepared = True

    def release(self) -> None:
        """Forget the page under way (a scrape starting: whatever an earlier, cancelled or reused,
        scrape left is old by now)."""
        self.page = [[] for _ in AGENT_FAMILIES]
        self.taken = set()
        self.prepared = False

    def blocks_of(self, index: int) -> list[bytes]:
        """The family's rows as joined blocks for this scrape, completing the page first."""
        if index in self.taken:  # a new scrape
            self.release()
        if not self.prepared:  # not prepared (tests, generate_latest), or a prepare cut short
            self.refresh()
            self.join()
        blocks = self.page[index]
        self.taken.add(index)
        if len(self.taken) == len(AGENT_FAMILIES):
            self.release()
        return blocks


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


class AgentGaugeFamily(Metric):
    """A per-agent gauge: samples derived on demand (tests, generate_latest), text from `AgentText`."""

    def __init__(self, family: Family, trackers: list[AgentTracker], index: int) -> None:
        self._trackers = trackers
        self._index = index
        self._value = AGENT_FAMILIES[index][1]
        super().__init__(family.name, family.help, "gauge")

    @property
    def samples(self) -> list[Sample]:
        out = []
        for tracker in self._trackers:
            for agent in tracker.agents.values():
                value = self._value(agent)
                if value is not None:
                    labels = {"agent_id": agent.label_id, "queue_id": agent.queue_id, "party": agent.party}
                    out.append(Sample(self.name, labels, value, None, None))
        return out

    @samples.setter
    def samples(self, _ignored: list[Sample]) -> None:
        pass  # Metric.__init__ assigns an empty list; the samples are always derived

    def text(self) -> bytes:
        return b"".join(self.parts())

    def parts(self) -> list[bytes]:
        """The family's header, then the cached blocks of every tracker (one per party)."""
        caches = [AgentText.of(tracker) for tracker in self._trackers]
        out = [caches[0].headers[self._index]]
        for cache in caches:
            out += cache.blocks_of(self._index)
        return out


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
        if self.per_agent_series:
            trackers = [self.tracker, *(t for t in self.ingest.parties.values() if t is not self.tracker)]
            for index, (family, _value) in enumerate(AGENT_FAMILIES):
                yield AgentGaugeFamily(family, trackers, index)  # opt-in agent scoring: party="agent"
        else:
            yield from queue_aggregates(list(self.tracker.agents.values()), self.tracker.limits.window_size)
        yield from transcript_metrics(self.ingest, self.tracker, self.per_agent_series)
        yield from self.collect_small()

    async def prepare(self, slice_seconds: float = SLICE_SECONDS) -> None:
        """Render what changed before this scrape and join the page in slices, yielding the loop
        between them, so the scrape itself only hands out joined blocks (issue 13: no long stall
        of the stream's loop)."""
        if not self.per_agent_series:
            return
        for tracker in [self.tracker, *(t for t in self.ingest.parties.values() if t is not self.tracker)]:
            cache = AgentText.of(tracker)
            if cache.preparing.locked():
                # Another scrape is preparing: the page it renders serves this one too (the server
                # reuses a page still being sent). Preparing another would leave it unused and held
                # until the next scrape: ~80 MB at 100 000 agents, with two Prometheus scraping.
                async with cache.preparing:
                    continue
            async with cache.preparing:
                cache.release()  # what an earlier scrape left was handed out, or is older than this one
                for _ in cache.steps(slice_seconds):
                    await asyncio.sleep(0)

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
        yield counter(catalogue.STREAM_OVERLAP_ENDS, stream.overlaps_ended)
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
    return b"".join(render_parts(registry))


def render_parts(registry: CollectorRegistry) -> list[bytes]:
    """The page as pieces (headers and cached blocks), to be written one after the other: joining
    50 000 agents' rows into one object is a copy of ~35 MB that would stall the loop."""
    parts: list[bytes] = []
    small: list[Metric] = []
    for family in registry.collect():
        if isinstance(family, AgentGaugeFamily):
            parts += family.parts()
        else:
            small.append(family)
    parts.append(generate_latest(_Only(small)))
    return parts


def new_registry(collector: ExporterCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
