"""Property tests (Hypothesis): arbitrary JSON and bytes never raise out of a source and each message
gets exactly one outcome; the tracker's window invariants hold for any sequence of events; any label
value the tracker accepts renders an exposition that Prometheus' own parser (promtool) accepts.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.metrics import ExporterCollector, new_registry, render
from genesys_sentiment_exporter.model import Phase, Reading, StateChange
from genesys_sentiment_exporter.sources import analytics_protocol, notifications_protocol
from genesys_sentiment_exporter.sources.analytics_session import AnalyticsSession
from genesys_sentiment_exporter.sources.notifications_session import NotificationsSession, apply
from genesys_sentiment_exporter.stream_state import StreamState
from genesys_sentiment_exporter.tracker import AgentTracker, TrackerLimits

PROPERTY = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
NOW = 1_800_000_000.0

# Any JSON value, with the odd text a wire can carry (lone surrogates come from "\ud800" escapes).
text = st.text(alphabet=st.characters(codec=None), max_size=40)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), text)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4), max_leaves=20
)


def dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True)  # NaN/Infinity: json.loads accepts them, so a server may send them


# -- analytics stream -------------------------------------------------------------------------------

analytics_frames = st.one_of(
    st.binary(max_size=200),
    text,
    json_values.map(dumps),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["conversation", "heartbeat", "subscribed", "error", "other"]) | json_values,
            "conversationId": text | json_values,
            "agentId": text | json_values,
            "queueId": text | json_values,
            "eventTime": text | json_values,
            "state": st.sampled_from(["connected", "wrapup", "held"]) | json_values,
            "sentiment": st.fixed_dictionaries({"score": scalars}) | json_values,
        }
    ).map(dumps),
)


@PROPERTY
@given(st.lists(analytics_frames, max_size=20))
def test_analytics_frames_never_raise_and_each_gets_one_outcome(frames: list[str | bytes]) -> None:
    ingest = Ingest(AgentTracker(), clock=lambda: 0.0, wall=lambda: NOW)
    session = AnalyticsSession(ingest, StreamState(), ["q1"], [], 30)
    for count, frame in enumerate(frames, start=1):
        parsed = analytics_protocol.parse(frame, NOW)
        if parsed.kind == analytics_protocol.Kind.CONVERSATION:
            assert parsed.score is None or -1.0 <= parsed.score <= 1.0
            assert math.isfinite(parsed.timestamp)
        session.handle(frame, parsed, 1, NOW)
        assert sum(ingest.messages.values()) == count
    for agent in ingest.tracker.agents.values():
        agent.label_text.encode("utf-8")  # every accepted id can be exported


# -- notifications stream ---------------------------------------------------------------------------

topics = st.sampled_from(
    [
        "v2.routing.queues.q1.conversations",
        "v2.users.a1.conversations",
        "v2.speechandtextanalytics.conversation.c1.sentiment",
        "channel.metadata",
        "v2.system.socket_closing",
    ]
) | text.map(lambda t: f"v2.routing.queues.{t}.conversations")
participant = st.fixed_dictionaries(
    {
        "purpose": st.sampled_from(["agent", "customer", "acd", "user"]) | json_values,
        "userId": st.sampled_from(["a1", "a2"]) | text | json_values,
        "queueId": st.sampled_from(["q1", ""]) | text | json_values,
        "calls": st.lists(
            st.fixed_dictionaries({"state": st.sampled_from(["connected", "disconnected"]) | json_values})
        )
        | json_values,
    }
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"id": st.sampled_from(["c1", "c2"]) | json_values, "participants": st.lists(participant, max_size=3)}
    ),
    st.fixed_dictionaries(
        {
            "conversationId": st.sampled_from(["c1", "c2"]) | json_values,
            "sentimentOverallScore": scalars,
            "sentimentTrendScore": scalars,
            "queueIds": json_values,
        }
    ),
    st.fixed_dictionaries({"message": st.sampled_from(["WebSocket Heartbeat", "pong"]) | json_values}),
)
notification_frames = st.one_of(
    st.binary(max_size=200),
    json_values.map(dumps),
    st.builds(lambda t, b: dumps({"topicName": t, "eventBody": b}), topics, bodies),
)


@PROPERTY
@given(st.lists(notification_frames, max_size=20))
def test_notifications_frames_never_raise_and_each_gets_one_outcome(frames: list[str | bytes]) -> None:
    ingest = Ingest(AgentTracker(), clock=lambda: 0.0, wall=lambda: NOW)
    session = NotificationsSession(queue_ids=["q1"], agent_ids=["a1"])
    session.start()
    for count, frame in enumerate(frames, start=1):
        notifications_protocol.parse(frame)
        apply(ingest, session.receive(frame, 1, float(count), NOW))
        assert sum(ingest.messages.values()) == count
    for agent in ingest.tracker.agents.values():
        agent.label_text.encode("utf-8")


# -- the tracker ------------------------------------------------------------------------------------

ids = st.sampled_from(["a1", "a2", "a3"])
conversations = st.sampled_from(["c1", "c2", "c3"])
states = st.sampled_from(["alerting", "connected", "held", "wrapup", "disconnected", "ended"])
events = st.one_of(
    st.tuples(st.just("reading"), ids, conversations, st.floats(-1.0, 1.0), st.floats(0, 10)),
    st.tuples(st.just("state"), ids, conversations, states, st.floats(0, 10)),
    st.tuples(st.just("expire"), ids, conversations, st.none(), st.floats(0, 10)),
)


@PROPERTY
@given(st.integers(1, 6), st.floats(0.0, 5.0), st.lists(events, max_size=60))
def test_tracker_window_invariants(window: int, grace: float, sequence: list[tuple[Any, ...]]) -> None:
    tracker = AgentTracker(TrackerLimits(window_size=window, grace_seconds=grace, idle_seconds=30, max_agents=2))
    now = 0.0
    for kind, agent, conversation, value, step in sequence:
        now += step
        if kind == "reading":
            tracker.reading(Reading(agent, "q", conversation, value, NOW), now)
        elif kind == "state":
            tracker.state(StateChange(agent, "q", conversation, value, NOW), now)
        else:
            tracker.expire(now)
            for state in tracker.agents.values():  # grace respected: nobody past it survives an expiry
                assert not (state.phase is Phase.ENDING and now >= state.grace_deadline)
                assert now - state.last_seen <= 30
        assert len(tracker.agents) <= 2
        for state in tracker.agents.values():
            assert len(state.scores) <= window
            if state.scores:
                assert -1.0 - 1e-9 <= state.rolling_average <= 1.0 + 1e-9
                assert math.isclose(state.sum, sum(state.scores), abs_tol=1e-9)


# -- the exposition ---------------------------------------------------------------------------------


def _page(labels: list[tuple[str, str]]) -> str:
    tracker = AgentTracker(TrackerLimits(max_agents=100))
    ingest = Ingest(tracker, clock=lambda: 0.0, wall=lambda: NOW)
    for i, (agent, queue) in enumerate(labels):
        ingest.conversation(
            Reading(agent, queue, f"c{i}", -0.5, NOW), StateChange(agent, queue, f"c{i}", "connected", NOW)
        )
        ingest.conversation(None, StateChange(agent, queue, f"c{i}", "wrapup", NOW))
    tracker.limits = TrackerLimits(grace_seconds=0.0, max_agents=100)
    tracker.expire(1.0)  # ended calls: the queue ids land in genesys_conversations_ended_total too
    for i, (agent, queue) in enumerate(labels):
        ingest.conversation(Reading(agent, queue, f"d{i}", 0.25, NOW), None)
    collector = ExporterCollector(
        tracker=tracker, ingest=ingest, stream=StreamState(), tokens=None, source_name="test", ready=lambda: True
    )
    return render(new_registry(collector)).decode("utf-8")


label_values = st.text(alphabet=st.characters(codec=None), max_size=30)


@settings(deadline=None, max_examples=300)
@given(st.lists(st.tuples(label_values, label_values), min_size=1, max_size=8))
def test_any_label_value_renders_a_page_prometheus_parses(labels: list[tuple[str, str]]) -> None:
    page = _page(labels)
    parsed = {
        (s.labels.get("agent_id"), s.labels.get("queue_id"))
        for family in text_string_to_metric_families(page)
        for s in family.samples
        if s.name == "genesys_agent_sentiment_score"
    }
    accepted = {(a, q) for a, q in labels if (a, q) in parsed}
    for agent, queue in accepted:  # what was exported round-trips exactly
        assert (agent, queue) in parsed


@settings(deadline=None, max_examples=25)
@given(st.lists(st.tuples(label_values, label_values), min_size=1, max_size=20))
def test_any_label_value_passes_promtool(labels: list[tuple[str, str]]) -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is required (scripts/install-tools.sh)"
    page = _page(labels)
    result = subprocess.run([promtool, "check", "metrics"], input=page.encode(), capture_output=True, check=False)
    assert result.returncode in (0, 3), result.stderr.decode() + result.stdout.decode()  # 3: lint advice only
    assert b"error while linting" not in result.stderr, result.stderr.decode()


# -- AudioHook (added meanwhile): the same attacks against its session ------------------------------------

audiohook_messages = st.fixed_dictionaries(
    {
        "version": st.just("2") | json_values,
        "id": st.just("s1") | json_values,
        "type": st.sampled_from(["open", "ping", "close", "pause", "resume", "update", "discarded", "error"])
        | json_values,
        "seq": st.integers(0, 4) | json_values,
        "serverseq": st.integers(0, 2) | json_values,
        "position": st.sampled_from(["PT0S", "PT1.5S", "PT-1S", "P1D"]) | json_values,
        "parameters": st.dictionaries(text, json_values, max_size=4) | json_values,
    }
).map(dumps)


@PROPERTY
@given(st.lists(st.one_of(st.binary(max_size=64), text, json_values.map(dumps), audiohook_messages), max_size=15))
def test_audiohook_frames_never_raise(frames: list[str | bytes]) -> None:
    from genesys_sentiment_exporter.audiohook.protocol import ServerSession

    session = ServerSession("s1", "org-1", 0.0)
    for step, frame in enumerate(frames, start=1):
        if isinstance(frame, bytes):
            result = session.receive_binary(frame, float(step))
        else:
            result = session.receive_text(frame, float(step))
        assert isinstance(result.outcome, str) and result.outcome


def test_audiohook_nested_json_is_malformed_not_a_crash() -> None:
    from genesys_sentiment_exporter.audiohook.protocol import ServerSession

    session = ServerSession("s1", "org-1", 0.0)
    for depth in (10_000, 990):
        result = ServerSession("s1", "org-1", 0.0).receive_text('{"a":' * depth + "1" + "}" * depth, 1.0)
        assert result.outcome
    assert session.receive_text("[" * 5000 + "]" * 5000, 1.0).outcome
