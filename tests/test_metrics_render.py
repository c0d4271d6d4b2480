"""The fast text renderer against prometheus_client, and the metric names and labels themselves."""

from __future__ import annotations

import math
import time

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from genesys_sentiment_exporter import __version__
from genesys_sentiment_exporter.ingest import MISSING_SENTIMENT, Ingest
from genesys_sentiment_exporter.metrics import AgentText, ExporterCollector, new_registry, render
from genesys_sentiment_exporter.model import Reading, StateChange
from genesys_sentiment_exporter.oauth import Token, TokenManager
from genesys_sentiment_exporter.sources import analytics_protocol as proto
from genesys_sentiment_exporter.stream_state import StreamState
from genesys_sentiment_exporter.tracker import AgentTracker, TrackerLimits

TRICKY = [
    'quote"inside',
    "back\\slash",
    "new\nline",
    "trailing\\",
    '\\"both\\n"',
    "Zoë 👩‍💻 ünïcødé",
    "{braces}=,commas",
    "",
]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class World:
    """A tracker/ingest/stream/token state fed only through the public entry points."""

    def __init__(self, window_size: int = 3, grace_seconds: float = 5.0) -> None:
        self.clock = Clock()
        limits = TrackerLimits(window_size=window_size, grace_seconds=grace_seconds, max_agents=5000)
        self.tracker = AgentTracker(limits)
        self.ingest = Ingest(self.tracker, clock=self.clock, wall=lambda: 1.7e9)  # the tests' event times
        self.stream = StreamState()
        self.http = httpx.AsyncClient()
        self.tokens = TokenManager("http://127.0.0.1:1", "c", SecretStr("s"), self.http)
        self.conversations: list[str] = []
        self.collector = ExporterCollector(
            tracker=self.tracker,
            ingest=self.ingest,
            stream=self.stream,
            tokens=self.tokens,
            source_name="analytics-websocket",
            ready=lambda: self.stream.connected,
        )
        self.registry = new_registry(self.collector)

    def conv(self, tag: str) -> str:
        conversation_id = f"conv-{tag}-7f3e9a"
        self.conversations.append(conversation_id)
        return conversation_id

    def state(self, agent: str, queue: str, conversation: str, state: str) -> str:
        return self.ingest.conversation(None, StateChange(agent, queue, conversation, state, 1.7e9))

    def reading(self, agent: str, queue: str, conversation: str, score: float, at: float = 1.7e9) -> str:
        return self.ingest.conversation(Reading(agent, queue, conversation, score, at), None)


def busy_world() -> World:
    world = World()
    # Many ordinary agents with full, wrapped windows.
    for i in range(400):
        agent, queue = f"agent-{i:04d}", f"q-{i % 7}"
        conversation = world.conv(f"a{i}")
        world.state(agent, queue, conversation, "connected")
        for j in range(i % 9):
            world.reading(agent, queue, conversation, round(math.sin(i + j), 3), 1.7e9 + i + j / 10)
    # Tricky label values in both agent_id and queue_id.
    for i, value in enumerate(TRICKY):
        conversation = world.conv(f"t{i}")
        world.state(value, value, conversation, "connected")
        world.reading(value, value, conversation, -0.25 * (i % 4))
        world.reading(f"agent {value}", f"queue {value}", world.conv(f"u{i}"), 0.5)
    # Agents with no reading at all (state only), one of them in the missing-field trap.
    for i in range(5):
        world.state(f"silent-{i}", "q-legacy", world.conv(f"s{i}"), "connected")
    world.ingest.conversation(
        None, StateChange("silent-0", "q-legacy", world.conversations[-5], "connected", 1.7e9), MISSING_SENTIMENT
    )
    # One agent whose grace has elapsed: dropped and counted.
    world.state("gone", "q-billing", world.conv("g"), "connected")
    world.reading("gone", "q-billing", world.conversations[-1], 0.1)
    world.state("gone", "q-billing", world.conversations[-1], "ended")
    world.clock.now += 6
    world.tracker.expire(world.clock.now)
    # Agents in their grace period, with and without readings.
    for i in range(6):
        agent, conversation = f"ending-{i}", world.conv(f"e{i}")
        world.state(agent, "q-billing", conversation, "connected")
        if i % 2:
            world.reading(agent, "q-billing", conversation, -0.9)
        world.state(agent, "q-billing", conversation, "wrapup")
    # Stream and token state with every optional family present.
    world.stream.connected = True
    world.stream.connects = 3
    world.stream.disconnects.update({"1001": 1, "1006": 2})
    world.stream.rollovers["token_refresh"] += 1
    world.stream.last_message = time.time()
    world.stream.last_heartbeat = time.time() - 3
    world.ingest.count("heartbeat")
    world.ingest.count("malformed")
    now = time.time()
    world.tokens.token = Token("tok-value-xyz", 3600.0, now, now + 3600.0)
    world.tokens.requests.update({"success": 2, "rate_limited": 1})
    return world


def parsed(text: str) -> list[tuple[str, str, str, list[tuple[str, tuple[tuple[str, str], ...], str]]]]:
    """Families as comparable values: name, type, help, samples (NaN-safe values).

    Samples are compared in sorted order: within a family the order carries no meaning, and the
    incremental renderer keeps an agent's rows where its slot is, not in arrival order.
    """
    out = []
    for family in text_string_to_metric_families(text):
        rows = sorted(
            (
                s.name,
                tuple(sorted((k, v) for k, v in s.labels.items() if (k, v) != ("party", "customer"))),
                repr(float(s.value)),
            )
            for s in family.samples
        )
        out.append((family.name, family.type, family.documentation, rows))
    return out


def sample_map(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if (k, v) != ("party", "customer")))): s.value
        for family in text_string_to_metric_families(render(registry).decode())
        for s in family.samples
    }


@pytest.fixture
async def world() -> World:
    w = busy_world()
    yield w
    await w.http.aclose()


# -- equivalence -------------------------------------------------------------------------------------


def test_render_parses_to_exactly_what_generate_latest_exposes(world: World) -> None:
    fast = render(world.registry).decode()
    reference = generate_latest(world.registry).decode()
    assert parsed(fast) == parsed(reference)
    families = {name for name, *_ in parsed(fast)}
    assert "genesys_agent_sentiment_rolling_average" in families
    # Every tracked agent has a window-readings sample, including the tricky ones.
    readings = [
        s
        for f in text_string_to_metric_families(fast)
        if f.name == "genesys_agent_sentiment_window_readings"
        for s in f.samples
    ]
    assert len(readings) == len(world.tracker.agents) > 400
    agent_ids = {s.labels["agent_id"] for s in readings}
    assert set(TRICKY) <= agent_ids
    assert {s.labels["queue_id"] for s in readings} >= set(TRICKY)


async def test_render_equivalent_on_an_empty_state() -> None:
    empty = World()
    try:
        assert parsed(render(empty.registry).decode()) == parsed(generate_latest(empty.registry).decode())
    finally:
        await empty.http.aclose()


def test_tricky_label_values_round_trip(world: World) -> None:
    values = sample_map(world.registry)
    for i, value in enumerate(TRICKY):
        key = ("genesys_agent_sentiment_rolling_average", (("agent_id", value), ("queue_id", value)))
        assert values[key] == -0.25 * (i % 4)


def test_output_is_valid_utf8_text_ending_in_newline(world: World) -> None:
    body = render(world.registry)
    text = body.decode("utf-8")
    assert text.endswith("\n")
    assert "\n\n" not in text


async def test_unencodable_agent_id_from_the_wire_does_not_break_scrapes() -> None:
    """A JSON frame may carry a lone surrogate (\\ud800); one such frame must not turn every scrape into an error."""
    w = World()
    try:
        frame = (
            '{"type":"conversation","agentId":"bad\\ud800","queueId":"q","conversationId":"c1",'
            '"state":"connected","sentiment":{"score":0.5}}'
        )
        parsed_frame = proto.parse(frame, 1.7e9)
        w.ingest.conversation(parsed_frame.reading, parsed_frame.state, parsed_frame.sentiment)
        w.reading("fine", "q", "c2", 0.25)
        body = render(w.registry)
        text = body.decode("utf-8")
        assert 'agent_id="fine"' in text
    finally:
        await w.http.aclose()


# -- what must never be exposed ------------------------------------------------------------------------


def test_no_conversation_id_label_or_value(world: World) -> None:
    text = render(world.registry).decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            assert not any("conversation" in label for label in s.labels), (s.name, s.labels)
    assert len(world.conversations) > 400
    for conversation_id in world.conversations:
        assert conversation_id not in text
    assert "7f3e9a" not in text  # no fragment of any conversation id either
    assert "tok-value-xyz" not in text  # nor the access token


# -- naming --------------------------------------------------------------------------------------------


def test_metric_names_follow_conventions(world: World) -> None:
    families = list(text_string_to_metric_families(render(world.registry).decode()))
    assert families
    for family in families:
        assert family.name.startswith("genesys_"), family.name
        assert family.documentation.strip(), family.name
        for s in family.samples:
            if family.type == "counter":
                assert s.name.endswith("_total"), s.name
            else:
                assert not s.name.endswith("_total"), s.name
            for bad in ("_ms", "milliseconds", "_minutes", "_hours", "_count_total"):
                assert bad not in s.name, s.name
            if "timestamp" in s.name or "seconds" in s.name or "lifetime" in s.name or "expiry" in s.name:
                assert s.name.endswith("_seconds"), s.name
    names = {f.name for f in families}
    assert "genesys_agent_last_reading_timestamp_seconds" in names
    assert "genesys_oauth_token_expiry_timestamp_seconds" in names
    assert "genesys_stream_last_heartbeat_timestamp_seconds" in names


def test_info_metric_with_version_and_source(world: World) -> None:
    values = sample_map(world.registry)
    info = [key for key in values if key[0].endswith("_info")]
    assert info == [("genesys_exporter_build_info", (("source", "analytics-websocket"), ("version", __version__)))]
    assert values[info[0]] == 1.0


def test_counters_expose_what_happened(world: World) -> None:
    values = sample_map(world.registry)
    assert values[("genesys_agents_dropped_total", (("reason", "grace_elapsed"),))] == 1.0
    assert values[("genesys_agents_dropped_total", (("reason", "idle"),))] == 0.0
    assert values[("genesys_conversations_ended_total", (("had_sentiment", "true"), ("queue_id", "q-billing")))] >= 1
    assert values[("genesys_stream_disconnects_total", (("code", "1006"),))] == 2.0
    assert values[("genesys_stream_messages_total", (("outcome", "missing_sentiment"),))] == 1.0
    assert values[("genesys_stream_messages_total", (("outcome", "malformed"),))] == 1.0
    assert values[("genesys_oauth_token_requests_total", (("result", "rate_limited"),))] == 1.0
    assert values[("genesys_oauth_token_lifetime_seconds", ())] == 3600.0
    assert values[("genesys_tracked_agents", ())] == len(world.tracker.agents)
    assert values[("genesys_exporter_window_size", ())] == 3.0


# -- per-agent values --------------------------------------------------------------------------------


def agent_key(name: str, agent: str, queue: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (name, (("agent_id", agent), ("queue_id", queue)))


def test_agent_without_readings_has_no_average_or_score(world: World) -> None:
    values = sample_map(world.registry)
    for name in (
        "genesys_agent_sentiment_rolling_average",
        "genesys_agent_sentiment_score",
        "genesys_agent_last_reading_timestamp_seconds",
    ):
        assert agent_key(name, "silent-1", "q-legacy") not in values, name  # absent, not 0.0
        assert agent_key(name, "ending-0", "q-billing") not in values, name
    assert values[agent_key("genesys_agent_sentiment_window_readings", "silent-1", "q-legacy")] == 0.0
    assert values[agent_key("genesys_agent_conversation_active", "silent-1", "q-legacy")] == 1.0


async def test_rolling_window_values_and_new_conversation_starts_clean() -> None:
    w = World(window_size=3)
    try:
        for score in (0.1, 0.2, 0.3, 0.4):
            w.reading("a", "q", "c1", score, 1.7e9 + score)
        values = sample_map(w.registry)
        assert values[agent_key("genesys_agent_sentiment_rolling_average", "a", "q")] == pytest.approx(0.3)
        assert values[agent_key("genesys_agent_sentiment_score", "a", "q")] == 0.4
        assert values[agent_key("genesys_agent_sentiment_window_readings", "a", "q")] == 3.0
        assert values[agent_key("genesys_agent_last_reading_timestamp_seconds", "a", "q")] == 1.7e9 + 0.4
        w.state("a", "q", "c2", "connected")  # the next call: the old window must not carry over
        values = sample_map(w.registry)
        assert agent_key("genesys_agent_sentiment_rolling_average", "a", "q") not in values
        assert agent_key("genesys_agent_sentiment_score", "a", "q") not in values
        assert values[agent_key("genesys_agent_sentiment_window_readings", "a", "q")] == 0.0
    finally:
        await w.http.aclose()


async def test_grace_period_then_series_disappear() -> None:
    w = World(window_size=5, grace_seconds=5.0)
    try:
        w.state("a", "q", "c1", "connected")
        w.reading("a", "q", "c1", -0.8)
        w.state("a", "q", "c1", "wrapup")
        values = sample_map(w.registry)
        assert values[agent_key("genesys_agent_conversation_active", "a", "q")] == 0.0
        assert values[agent_key("genesys_agent_sentiment_rolling_average", "a", "q")] == -0.8
        w.reading("a", "q", "c1", -0.6)  # the late final score still counts during grace
        assert sample_map(w.registry)[agent_key("genesys_agent_sentiment_rolling_average", "a", "q")] == (
            pytest.approx(-0.7)
        )
        w.clock.now += 5.0
        w.tracker.expire(w.clock.now)
        text = render(w.registry).decode()
        assert 'agent_id="a"' not in text
        assert parsed(text) == parsed(generate_latest(w.registry).decode())
    finally:
        await w.http.aclose()


async def test_incremental_page_follows_changes_drops_and_reused_rows() -> None:
    """The cached per-agent rows are re-rendered for what changed, emptied for who left, reused."""
    world = World(window_size=2, grace_seconds=1.0)
    try:
        conv = [world.conv(str(i)) for i in range(3)]
        for i in range(3):
            world.state(f"a{i}", "q", conv[i], "connected")
            world.reading(f"a{i}", "q", conv[i], 0.1 * i)
        assert parsed(render(world.registry).decode()) == parsed(generate_latest(world.registry).decode())
        world.reading("a1", "q", conv[1], -0.9)  # a change after a scrape
        world.state("a0", "q", conv[0], "disconnected")
        world.clock.now += 2.0
        world.tracker.expire(world.clock.now)  # a0 leaves
        await world.collector.prepare(slice_seconds=0.0)  # a slice per batch of agents
        page = render(world.registry).decode()
        assert parsed(page) == parsed(generate_latest(world.registry).decode())
        assert 'agent_id="a0"' not in page
        scores = {
            s.labels["agent_id"]: s.value
            for f in text_string_to_metric_families(page)
            if f.name == "genesys_agent_sentiment_score"
            for s in f.samples
        }
        assert scores == {"a1": -0.9, "a2": 0.2}
        rows = len(world.tracker.exposition.rows[0])
        world.state("a9", "q", world.conv("9"), "connected")  # takes a0's emptied row
        assert parsed(render(world.registry).decode()) == parsed(generate_latest(world.registry).decode())
        assert len(world.tracker.exposition.rows[0]) == rows
    finally:
        await world.http.aclose()


def test_every_per_agent_sample_says_whose_words_it_scores() -> None:
    """Per-agent families carry party="customer" (the default live path; party="agent" is opt-in)."""
    world = busy_world()
    families = text_string_to_metric_families(render(world.registry).decode())
    per_agent = [
        s for f in families for s in f.samples if "agent_id" in s.labels and s.name.startswith("genesys_agent_")
    ]
    assert per_agent and all(s.labels["party"] == "customer" for s in per_agent)


async def test_the_page_is_joined_in_slices_and_let_go_once_every_family_is_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A change to an agent whose block is not joined yet is on this page; one whose block is joined
    is on the next one; the cache keeps no page between scrapes (issue 13: memory)."""
    monkeypatch.setattr(AgentText, "BLOCK", 2)
    world = World(window_size=2)
    try:
        convs = {f"a{i}": world.conv(str(i)) for i in range(6)}  # three blocks of two rows
        for agent, conv in convs.items():
            world.reading(agent, "q", conv, 0.1)
        render(world.registry)
        cache = world.tracker.exposition
        assert isinstance(cache, AgentText) and cache.page == [[] for _ in cache.page]  # let go
        by_slot = sorted(convs, key=lambda agent: world.tracker.agents[agent].slot)
        early, late = by_slot[0], by_slot[-1]  # the first block's, the last block's
        world.reading(early, "q", convs[early], -0.5)
        world.reading(late, "q", convs[late], -0.5)
        cache.refresh()
        assert not cache.join(1)  # the first block only
        world.reading(early, "q", convs[early], -0.9)  # its block is on the page already
        world.reading(late, "q", convs[late], -0.9)  # its block is not
        scores = {
            s.labels["agent_id"]: s.value
            for f in text_string_to_metric_families(render(world.registry).decode())
            if f.name == "genesys_agent_sentiment_score"
            for s in f.samples
        }
        assert scores[early] == -0.5 and scores[late] == -0.9
        assert cache.page == [[] for _ in cache.page]
        assert parsed(render(world.registry).decode()) == parsed(generate_latest(world.registry).decode())
    finally:
        await world.http.aclose()


def test_shared_value_text_keeps_negative_zero_and_is_bounded() -> None:
    """Repeating values (counts, scores) share one text; -0.0 is not 0.0's, NaN is never kept."""
    from genesys_sentiment_exporter.metrics import _MEMO_SIZE, _Values

    values = _Values()
    assert values.text(0.5) is values.text(0.5) and values.text(0.5) == b"0.5\n"
    assert values.text(-0.0) == b"-0.0\n" and values.text(0.0) == b"0.0\n" and values.text(-0.0) == b"-0.0\n"
    assert values.text(math.nan) == b"NaN\n" and values.text(math.inf) == b"+Inf\n"
    for i in range(2 * _MEMO_SIZE):
        values.text(i + 0.25)
    assert len(values.memo) == _MEMO_SIZE


async def test_a_scrape_renders_what_changed_before_it_and_does_not_chase_later_changes() -> None:
    """A stream changing more agents between two slices than a slice renders once kept a scrape
    rendering for as long as the stream ran (issue 13: 0.81x ingest with scrapes). Now prepare()
    renders the changes made before it began, ends however fast agents keep changing, and the next
    scrape has the rest."""
    import asyncio

    world = World(window_size=2)
    try:
        convs = {f"a{i}": world.conv(str(i)) for i in range(500)}
        for agent, conv in convs.items():
            world.reading(agent, "q", conv, 0.1)
        render(world.registry)
        for agent, conv in convs.items():  # every agent changed before the scrape
            world.reading(agent, "q", conv, -0.5)
        agents = list(convs)

        async def churn() -> None:
            turn = 0
            while True:
                for _ in range(400):
                    agent = agents[turn % len(agents)]
                    world.reading(agent, "q", convs[agent], 0.9)
                    turn += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(churn())
        try:
            await asyncio.wait_for(world.collector.prepare(slice_seconds=0.0), timeout=60)
            page = render(world.registry).decode()
        finally:
            task.cancel()
        scores = [
            s.value
            for f in text_string_to_metric_families(page)
            if f.name == "genesys_agent_sentiment_score"
            for s in f.samples
        ]
        assert len(scores) == 500 and set(scores) <= {-0.5, 0.9}  # no agent as it was before the scrape
        assert world.tracker.changed  # the churn's later changes wait for the next scrape
        assert parsed(render(world.registry).decode()) == parsed(generate_latest(world.registry).decode())
    finally:
        await world.http.aclose()


async def test_overlapping_scrapes_each_get_the_whole_page() -> None:
    """A scrape arriving while another one still renders (here: every agent new) gets the whole page,
    not the part of it rendered so far."""
    import asyncio

    world = World(window_size=2)
    try:
        for i in range(300):
            world.reading(f"a{i}", "q", world.conv(str(i)), 0.1)

        async def scrape() -> str:
            await world.collector.prepare(slice_seconds=0.0)
            return render(world.registry).decode()  # the handler renders right after, no await between

        first, second = await asyncio.gather(scrape(), scrape())
        for page in (first, second):
            agents = {
                s.labels["agent_id"]
                for f in text_string_to_metric_families(page)
                if f.name == "genesys_agent_sentiment_score"
                for s in f.samples
            }
            assert len(agents) == 300
    finally:
        await world.http.aclose()


async def test_a_scrape_arriving_during_anothers_preparation_leaves_no_page_behind() -> None:
    """The server hands an overlapping scrape the page still being sent; a second page prepared for it
    would be held unused until the next scrape (~80 MB at 100 000 agents, two Prometheus scraping)."""
    import asyncio

    world = World(window_size=2)
    try:
        for i in range(300):
            world.reading(f"a{i}", "q", world.conv(str(i)), 0.1)

        async def first() -> None:
            await world.collector.prepare(slice_seconds=0.0)
            render(world.registry)  # the server renders right after, and sends

        async def second() -> None:
            await asyncio.sleep(0)  # arrives while the first prepares
            await world.collector.prepare(slice_seconds=0.0)

        await asyncio.gather(first(), second())
        cache = world.tracker.exposition
        assert isinstance(cache, AgentText) and not cache.prepared
        assert cache.page == [[] for _ in cache.page]
    finally:
        await world.http.aclose()


async def test_a_cancelled_scrape_hands_back_the_agents_it_had_not_rendered() -> None:
    """prepare() takes the changed set for itself; cancelled halfway, the agents it had not rendered
    yet go back, so the next scrape shows their new values instead of the text of before."""
    import asyncio

    world = World(window_size=2)
    try:
        convs = {f"a{i}": world.conv(str(i)) for i in range(300)}
        for agent, conv in convs.items():
            world.reading(agent, "q", conv, 0.1)
        render(world.registry)
        for agent, conv in convs.items():
            world.reading(agent, "q", conv, -0.5)
        task = asyncio.create_task(world.collector.prepare(slice_seconds=0.0))
        for _ in range(3):  # a few slices of 32 agents, far from all 300
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert 0 < len(world.tracker.changed or ()) < 300
        await world.collector.prepare(slice_seconds=0.0)
        page = render(world.registry).decode()
        scores = [
            s.value
            for f in text_string_to_metric_families(page)
            if f.name == "genesys_agent_sentiment_score"
            for s in f.samples
        ]
        assert len(scores) == 300 and set(scores) == {-0.5}
    finally:
        await world.http.aclose()
