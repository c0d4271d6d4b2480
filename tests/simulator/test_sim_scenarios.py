"""Shapes of the scenario timelines, measured the way the design document's monitor would see them."""

from __future__ import annotations

import re
from collections import defaultdict, deque
from itertools import pairwise

import pytest
from genesys_cloud_simulator.scenarios import LATE_FINAL_SCORE, SCENARIOS, CallEvent, ScenarioEngine

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
HORIZON = 900.0


def timeline(*names: str, until: float = HORIZON, **options: object) -> list[CallEvent]:
    return ScenarioEngine(names, **options).due(until)  # type: ignore[arg-type]


def of(events: list[CallEvent], agent: str) -> list[CallEvent]:
    return [e for e in events if e.agent_id == agent]


def below_stretches(events: list[CallEvent]) -> list[tuple[float, float]]:
    """(start, end) of each stretch where a conversation's 5-reading average is below -0.5.

    A stretch starts at the reading that takes the full window below -0.5 and ends at the
    first reading that lifts it back, or when the call goes to wrapup/ended.
    """
    windows: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=5))
    open_since: dict[str, float] = {}
    out: list[tuple[float, float]] = []
    for e in events:
        cid = e.conversation_id
        if e.transition and e.state in ("wrapup", "disconnected", "ended"):
            if cid in open_since:
                out.append((open_since.pop(cid), e.at))
            continue
        if e.score is None:
            continue
        window = windows[cid]
        window.append(e.score)
        below = len(window) == 5 and sum(window) / 5 < -0.5
        if below and cid not in open_since:
            open_since[cid] = e.at
        elif not below and cid in open_since:
            out.append((open_since.pop(cid), e.at))
    return out


def calls(events: list[CallEvent]) -> dict[str, list[CallEvent]]:
    grouped: dict[str, list[CallEvent]] = defaultdict(list)
    for e in events:
        grouped[e.conversation_id].append(e)
    return grouped


def transitions(call: list[CallEvent]) -> list[str | None]:
    return [e.state for e in call if e.transition]


def test_scenario_names_are_exactly_the_documented_ones() -> None:
    assert set(SCENARIOS) == {
        "steady",
        "sour",
        "flapping",
        "late-final",
        "zero",
        "masking",
        "missing-field",
        "no-sentiment",
        "demo",
    }
    assert all(SCENARIOS.values())


def test_unknown_scenario_is_refused_with_the_known_names() -> None:
    with pytest.raises(ValueError, match="sour"):
        ScenarioEngine(["nope"])


def test_same_seed_gives_the_same_timeline_and_another_seed_does_not() -> None:
    assert timeline("demo", seed=7) == timeline("demo", seed=7)
    assert timeline("demo", seed=7) != timeline("demo", seed=8)


def test_due_returns_each_event_once_in_time_order() -> None:
    engine = ScenarioEngine(["demo"], seed=3)
    first = engine.due(10.0)
    assert first and all(e.at <= 10.0 for e in first)
    pieces = first + engine.due(10.0) + engine.due(300.0)
    assert engine.due(200.0) == []
    assert pieces == timeline("demo", seed=3, until=300.0)
    times = [e.at for e in pieces]
    assert times == sorted(times)
    assert engine.next_at() is not None and engine.next_at() > 300.0  # type: ignore[operator]


def test_conversation_ids_look_like_uuid4() -> None:
    ids = {e.conversation_id for e in timeline("demo", until=300.0)}
    assert len(ids) > 20
    assert all(UUID4.match(cid) for cid in ids)


def test_lanes_do_not_depend_on_the_rest_of_the_mix() -> None:
    alone = timeline("sour", seed=5)
    assert of(timeline("demo", seed=5), "agent-sour") == alone


def test_steady_is_twenty_healthy_agents_with_full_call_lifecycles() -> None:
    events = timeline("steady", seed=1)
    agents = sorted({e.agent_id for e in events})
    assert agents == [f"agent-{i:04d}" for i in range(1, 21)]
    assert {e.queue_id for e in events} == {"q-billing", "q-support"}
    assert below_stretches(events) == []
    scores = [e.score for e in events if e.score is not None]
    assert 0.05 < sum(scores) / len(scores) < 0.35
    assert min(scores) >= -0.5

    by_agent: dict[str, list[list[CallEvent]]] = defaultdict(list)
    for call in calls(events).values():
        by_agent[call[0].agent_id].append(call)
    for agent_calls in by_agent.values():
        finished = [c for c in agent_calls if transitions(c) == ["alerting", "connected", "wrapup", "ended"]]
        assert len(finished) >= 2
        for call in finished:
            at = {e.state: e.at for e in call if e.transition}
            assert 60.0 <= at["wrapup"] - at["connected"] <= 240.0
            readings = [e.at for e in call if e.sentiment]
            gaps = [b - a for a, b in pairwise(readings)]
            assert gaps and all(2.0 <= g <= 4.0 for g in gaps)
        for before, after in pairwise(finished):
            ended = next(e.at for e in before if e.state == "ended")
            assert 5.0 <= after[0].at - ended <= 20.0


def test_agents_option_and_demo_default() -> None:
    assert {e.agent_id for e in timeline("steady", agents=3, until=60.0)} == {"agent-0001", "agent-0002", "agent-0003"}
    demo_steady = {e.agent_id for e in timeline("demo", until=60.0) if e.agent_id.startswith("agent-0")}
    assert len(demo_steady) == 8


def test_reading_interval_is_configurable() -> None:
    normal = [e for e in timeline("sour", until=300.0) if e.sentiment]
    fast = [e for e in timeline("sour", until=300.0, reading_interval=1.0) if e.sentiment]
    assert 2.5 < len(fast) / len(normal) < 3.5


def test_sour_stays_below_minus_half_for_well_over_thirty_seconds_from_the_first_minute() -> None:
    events = timeline("sour")
    assert {(e.agent_id, e.queue_id) for e in events} == {("agent-sour", "q-billing")}
    stretches = below_stretches(events)
    assert len(stretches) >= 3  # it repeats
    first_start, first_end = stretches[0]
    assert first_start < 60.0
    assert all(45.0 <= end - start <= 80.0 for start, end in stretches)
    first_low = next(e.at for e in events if e.score is not None and e.score < -0.5)
    assert first_low <= 20.0
    assert first_end - first_start > 30.0


def test_flapping_never_stays_below_for_thirty_seconds_in_a_long_call() -> None:
    events = timeline("flapping")
    assert {(e.agent_id, e.queue_id) for e in events} == {("agent-flap", "q-support")}
    stretches = below_stretches(events)
    assert len(stretches) >= 10
    assert all(15.0 <= end - start < 30.0 for start, end in stretches)
    recoveries = [b[0] - a[1] for a, b in pairwise(stretches)]
    assert all(r >= 15.0 for r in recoveries)
    first_call = next(iter(calls(events).values()))
    in_first = [s for s in stretches if s[1] <= max(e.at for e in first_call)]
    assert len(in_first) >= 10  # the flapping happens within one long call


@pytest.mark.parametrize("interval", [1.0, 2.0, 5.0])
def test_flapping_keeps_its_shape_at_other_reading_intervals(interval: float) -> None:
    stretches = below_stretches(timeline("flapping", reading_interval=interval, until=400.0))
    assert stretches and all(10.0 <= end - start < 30.0 for start, end in stretches)


def test_late_final_score_arrives_two_seconds_after_ended() -> None:
    events = timeline("late-final", until=300.0)
    assert {(e.agent_id, e.queue_id) for e in events} == {("agent-late", "q-support")}
    finished = [c for c in calls(events).values() if "ended" in transitions(c)]
    assert len(finished) >= 3
    for call in finished:
        ended = next(e for e in call if e.transition and e.state == "ended")
        after = [e for e in call if e.at > ended.at]
        assert len(after) == 1
        final = after[0]
        assert final.sentiment and final.score == LATE_FINAL_SCORE and final.label == "negative"
        assert 1.5 <= final.at - ended.at <= 3.0
        assert all(e.score is None or e.score > 0 for e in call if e.at < ended.at)


def test_zero_scores_are_exactly_zero_on_the_french_queue() -> None:
    events = timeline("zero", until=300.0)
    assert {e.agent_id for e in events} == {"agent-fr-1", "agent-fr-2", "agent-fr-3"}
    assert {e.queue_id for e in events} == {"q-fr"}
    readings = [e for e in events if e.sentiment]
    assert len(readings) > 50
    assert all(e.score == 0.0 and e.label == "neutral" for e in readings)


def test_masking_readings_stop_while_the_call_stays_connected() -> None:
    events = timeline("masking", until=600.0)
    assert {(e.agent_id, e.queue_id) for e in events} == {("agent-masked", "q-payments")}
    finished = [c for c in calls(events).values() if "ended" in transitions(c)]
    assert finished
    for call in finished:
        at = {e.state: e.at for e in call if e.transition}
        assert at["wrapup"] - at["connected"] >= 200.0
        readings = [e.at for e in call if e.sentiment]
        assert len(readings) >= 5
        assert max(readings) - at["connected"] <= 45.0


def test_missing_field_sends_null_scores_and_bare_events_never_a_number() -> None:
    events = timeline("missing-field", until=200.0)
    assert {(e.agent_id, e.queue_id) for e in events} == {("agent-nofield", "q-support")}
    assert all(e.score is None for e in events)
    null_scores = [e for e in events if e.sentiment]
    bare = [e for e in events if not e.sentiment and not e.transition]
    assert len(null_scores) > 10 and len(bare) > 10
    assert all(e.state == "connected" for e in null_scores + bare)


def test_no_sentiment_calls_only_change_state() -> None:
    events = timeline("no-sentiment")
    assert {e.agent_id for e in events} == {"agent-legacy-1", "agent-legacy-2"}
    assert {e.queue_id for e in events} == {"q-legacy"}
    assert not any(e.sentiment for e in events)
    finished = [c for c in calls(events).values() if "ended" in transitions(c)]
    assert finished and all(transitions(c) == ["alerting", "connected", "ended"] for c in finished)


def test_demo_mixes_every_scenario() -> None:
    agents = {e.agent_id for e in timeline("demo", until=120.0)}
    for expected in (
        "agent-sour",
        "agent-flap",
        "agent-late",
        "agent-fr-1",
        "agent-masked",
        "agent-nofield",
        "agent-legacy-1",
        "agent-0008",
    ):
        assert expected in agents
    assert "agent-0009" not in agents
