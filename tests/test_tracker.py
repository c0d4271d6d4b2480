"""The per-agent tracker: pure state, driven with explicit clock values."""

from __future__ import annotations

import math
import sys

import pytest

from genesys_sentiment_exporter.model import Reading, StateChange
from genesys_sentiment_exporter.tracker import AgentState, AgentTracker, Outcome, TrackerLimits


def reading(agent: str, conv: str, score: float, queue: str = "q1", ts: float = 100.0) -> Reading:
    return Reading(agent, queue, conv, score, ts)


def state(agent: str, conv: str, value: str, queue: str = "q1") -> StateChange:
    return StateChange(agent, queue, conv, value, 100.0)


def test_each_agent_has_its_own_window() -> None:
    tracker = AgentTracker(TrackerLimits(window_size=3))
    for score in (-0.9, -0.9, -0.9):
        tracker.reading(reading("sour", "c1", score), 0)
    for score in (0.6, 0.6, 0.6):
        tracker.reading(reading("happy", "c2", score), 0)
    assert tracker.agents["sour"].rolling_average == pytest.approx(-0.9)
    assert tracker.agents["happy"].rolling_average == pytest.approx(0.6)


def test_window_keeps_only_the_last_n_readings() -> None:
    tracker = AgentTracker(TrackerLimits(window_size=5))
    scores = [0.9, 0.8, -0.1, -0.2, -0.3, -0.4, -0.5]
    for score in scores:
        tracker.reading(reading("a", "c1", score), 0)
    agent = tracker.agents["a"]
    assert agent.window_readings == 5
    assert agent.rolling_average == pytest.approx(sum(scores[-5:]) / 5)
    assert agent.last_score == -0.5


def test_running_sum_stays_exact_over_a_long_call() -> None:
    tracker = AgentTracker(TrackerLimits(window_size=5))
    scores = [math.sin(i) * 0.99 for i in range(10_000)]
    for score in scores:
        tracker.reading(reading("a", "c1", score), 0)
    assert tracker.agents["a"].rolling_average == pytest.approx(sum(scores[-5:]) / 5, abs=1e-12)


def test_a_new_conversation_starts_a_new_window_and_counts_the_old_one() -> None:
    tracker = AgentTracker(TrackerLimits(window_size=5))
    for score in (-0.9, -0.9, -0.9):
        tracker.reading(reading("a", "c1", score), 0)
    tracker.reading(reading("a", "c2", 0.5), 1)
    agent = tracker.agents["a"]
    assert agent.window_readings == 1
    assert agent.rolling_average == 0.5
    assert tracker.conversations_ended[("q1", "true")] == 1


def test_late_reading_inside_grace_is_accepted_then_series_go() -> None:
    tracker = AgentTracker(TrackerLimits(window_size=5, grace_seconds=5))
    tracker.state(state("a", "c1", "connected"), 0)
    tracker.reading(reading("a", "c1", -0.2), 1)
    assert tracker.state(state("a", "c1", "ended"), 10) == Outcome.STATE_CHANGE
    # The final score arrives after `ended` (the design document's race condition).
    assert tracker.reading(reading("a", "c1", -0.8), 12) == Outcome.READING
    assert tracker.agents["a"].window_readings == 2
    tracker.expire(14.9)
    assert "a" in tracker.agents
    tracker.expire(15.0)
    assert "a" not in tracker.agents
    assert tracker.dropped["grace_elapsed"] == 1
    assert tracker.conversations_ended[("q1", "true")] == 1


def test_repeated_end_states_do_not_extend_the_grace() -> None:
    tracker = AgentTracker(TrackerLimits(grace_seconds=5))
    tracker.state(state("a", "c1", "wrapup"), 0)
    tracker.state(state("a", "c1", "disconnected"), 4)
    tracker.expire(5.0)
    assert "a" not in tracker.agents


def test_two_calls_ending_in_the_same_instant_drop_the_agent_once() -> None:
    # Found by the property test (window 1, grace 0): two heap entries with one deadline made
    # expire() pop the agent twice, a KeyError that would end the exporter.
    tracker = AgentTracker(TrackerLimits(window_size=1, grace_seconds=0.0, max_agents=2))
    tracker.reading(reading("a1", "c1", 0.5), 0.0)
    tracker.state(state("a3", "c1", "wrapup"), 0.0)
    tracker.state(state("a3", "c2", "wrapup"), 0.0)
    tracker.expire(0.0)
    assert "a3" not in tracker.agents
    assert sum(tracker.dropped.values()) == 1


def test_call_without_any_reading_counts_as_ended_without_sentiment() -> None:
    tracker = AgentTracker(TrackerLimits(grace_seconds=1))
    tracker.state(state("a", "c1", "connected", queue="legacy"), 0)
    tracker.state(state("a", "c1", "ended", queue="legacy"), 5)
    tracker.expire(6)
    assert tracker.conversations_ended == {("legacy", "false"): 1}


def test_reading_for_previous_conversation_is_stale_and_does_not_pollute() -> None:
    tracker = AgentTracker(TrackerLimits(window_size=5))
    tracker.reading(reading("a", "c1", -0.9), 0)
    tracker.state(state("a", "c1", "ended"), 1)
    tracker.state(state("a", "c2", "connected"), 2)
    tracker.reading(reading("a", "c2", 0.4), 3)
    assert tracker.reading(reading("a", "c1", -1.0), 4) == Outcome.STALE
    assert tracker.agents["a"].rolling_average == 0.4


def test_new_call_resumes_active_phase() -> None:
    tracker = AgentTracker(TrackerLimits(grace_seconds=5))
    tracker.state(state("a", "c1", "ended"), 0)
    tracker.state(state("a", "c2", "connected"), 1)
    tracker.expire(100)  # not idle yet (idle default 900 s) and no longer in grace
    assert "a" in tracker.agents


def test_idle_agents_are_dropped() -> None:
    tracker = AgentTracker(TrackerLimits(idle_seconds=60))
    tracker.reading(reading("a", "c1", 0.1), 0)
    tracker.reading(reading("b", "c2", 0.1), 50)
    tracker.expire(61)
    assert list(tracker.agents) == ["b"]
    assert tracker.dropped["idle"] == 1


def test_cap_refuses_new_agents_and_counts_them() -> None:
    tracker = AgentTracker(TrackerLimits(max_agents=2))
    tracker.reading(reading("a", "c1", 0.1), 0)
    tracker.reading(reading("b", "c2", 0.1), 0)
    assert tracker.reading(reading("c", "c3", 0.1), 0) == Outcome.AGENT_REFUSED
    assert tracker.state(state("d", "c4", "connected"), 0) == Outcome.AGENT_REFUSED
    # Known agents keep working.
    assert tracker.reading(reading("a", "c1", 0.2), 0) == Outcome.READING
    assert set(tracker.agents) == {"a", "b"}
    assert tracker.agents_refused == 2


def test_queue_change_rerenders_labels() -> None:
    tracker = AgentTracker()
    tracker.reading(reading("a", "c1", 0.1, queue="q1"), 0)
    tracker.reading(reading("a", "c1", 0.1, queue="q2"), 0)
    assert tracker.agents["a"].label_text == 'agent_id="a",queue_id="q2",party="customer"'


def test_labels_are_escaped_once() -> None:
    agent = AgentState('we"ird\\id\n', "q", "c", 0)
    assert agent.label_text == 'agent_id="we\\"ird\\\\id\\n",queue_id="q",party="customer"'


def test_agent_state_is_small() -> None:
    agent = AgentState("3f2b5c1e-8d6a-4b7e-9c0d-1a2b3c4d5e6f", "9a8b7c6d-5e4f-3a2b-1c0d-ef0123456789", "c" * 36, 0)
    for i in range(5):
        agent.add(i / 10, 5)
    size = sys.getsizeof(agent) + sys.getsizeof(agent.scores)  # the window holds doubles, not float objects
    size += sys.getsizeof(agent.label) + sys.getsizeof(agent.agent_id) + sys.getsizeof(agent.conversation_id)
    assert size < 600  # the queue id is shared (interned); bench/memory_bench.py measures the whole


def test_window_is_a_ring_of_doubles_equal_to_the_list_of_its_scores() -> None:
    tracker = AgentTracker(TrackerLimits(window_size=3))
    for score in (0.1, -0.2, 0.3, 0.4):
        tracker.reading(reading("a", "c1", score), 0)
    window = tracker.agents["a"].scores
    assert window == [0.4, -0.2, 0.3] and window != [0.1, -0.2, 0.3]
    assert repr(window) == "[0.4, -0.2, 0.3]" and len(window) == 3
    assert window.buffer_info()[1] == 3  # copied to its exact size when it filled
    assert tracker.agents["a"].sum == pytest.approx(0.5) and tracker.agents["a"].last_score == 0.4


def test_queue_ids_and_states_are_shared_between_agents_and_the_party_is_in_the_label() -> None:
    tracker = AgentTracker(party="agent")
    for agent in ("a", "b"):
        # ids decoded from two frames are two objects; the tracker keeps one
        tracker.state(StateChange(agent, "".join(["q", "1"]), "c" + agent, "".join(["conn", "ected"]), 1.0), 0)
    a, b = tracker.agents["a"], tracker.agents["b"]
    assert a.queue_id is b.queue_id and a.state is b.state
    assert a.party == "agent" and a.label == b'agent_id="a",queue_id="q1",party="agent"} '
    tracker.reading(reading("a", "ca", 0.1, queue="q2"), 1)
    assert a.party == "agent" and a.label_text == 'agent_id="a",queue_id="q2",party="agent"'


def test_idle_expiry_follows_the_last_event_not_the_first() -> None:
    tracker = AgentTracker(TrackerLimits(idle_seconds=60))
    tracker.reading(reading("a", "c1", 0.1), 0)
    tracker.reading(reading("b", "c2", 0.1), 10)
    tracker.state(state("a", "c1", "connected"), 40)  # a spoke last: b is now the idlest
    tracker.expire(71)
    assert list(tracker.agents) == ["a"]
    tracker.reading(reading("a", "c1", 0.2), 90)
    tracker.expire(149)
    assert list(tracker.agents) == ["a"]
    tracker.expire(151)
    assert not tracker.agents and tracker.dropped["idle"] == 2


def test_expiry_by_deadline_skips_a_call_that_came_back_and_drops_in_deadline_order() -> None:
    tracker = AgentTracker(TrackerLimits(grace_seconds=5.0, idle_seconds=100.0))
    tracker.state(state("back", "c1", "connected"), 0)
    tracker.state(state("back", "c1", "disconnected"), 1)  # grace until 6
    tracker.state(state("back", "c2", "connected"), 2)  # a new call: the old deadline no longer applies
    tracker.state(state("ends", "c3", "connected"), 3)
    tracker.state(state("ends", "c3", "wrapup"), 4)  # grace until 9
    tracker.state(state("quiet", "c4", "connected"), 5)
    tracker.expire(8)
    assert set(tracker.agents) == {"back", "ends", "quiet"}
    tracker.expire(9)
    assert set(tracker.agents) == {"back", "quiet"}
    assert tracker.dropped["grace_elapsed"] == 1
    tracker.reading(reading("back", "c2", 0.1), 50)  # keeps "back" active; "quiet" last seen at 5
    tracker.expire(104)
    assert set(tracker.agents) == {"back", "quiet"}
    tracker.expire(105.5)
    assert set(tracker.agents) == {"back"}
    assert tracker.dropped["idle"] == 1
    tracker.expire(151)
    assert not tracker.agents and tracker.dropped["idle"] == 2


def test_a_known_agents_reading_with_a_new_queue_id_is_checked_like_a_new_agents() -> None:
    """The next reading of the agent's call skips the id checks only while its ids equal the agent's
    current ones: a new queue id is checked (refused when it cannot be a label) and then taken."""
    tracker = AgentTracker(TrackerLimits())
    assert tracker.reading(Reading("a1", "q1", "c1", 0.1, 1.0), 0.0) == Outcome.READING
    assert tracker.reading(Reading("a1", "q" * 200, "c1", 0.2, 2.0), 1.0) == Outcome.INVALID_ID
    assert tracker.reading(Reading("a1", "q2", "c1", 0.3, 3.0), 2.0) == Outcome.READING
    agent = tracker.agents["a1"]
    assert agent.queue_id == "q2" and agent.scores == [0.1, 0.3]
