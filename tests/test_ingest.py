"""Every message ends in exactly one counted outcome; a missing score is never a 0.0."""

from __future__ import annotations

import json
import logging

import pytest

from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.sources.analytics_protocol import parse
from genesys_sentiment_exporter.tracker import AgentTracker, TrackerLimits


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def feed(ingest: Ingest, **event: object) -> str:
    message = {"type": "conversation", "conversationId": "c1", "agentId": "a1", "queueId": "q1", **event}
    parsed = parse(json.dumps(message), 1000.0)
    return ingest.conversation(parsed.reading, parsed.state, parsed.sentiment)


@pytest.fixture
def ingest() -> Ingest:
    return Ingest(AgentTracker(TrackerLimits(window_size=5, grace_seconds=5)), clock=Clock())


def test_outcomes_for_a_call(ingest: Ingest) -> None:
    assert feed(ingest, state="alerting") == "state_change"
    assert feed(ingest, state="connected", sentiment={"score": 0.3}) == "reading"
    assert feed(ingest, state="connected", sentiment={"score": -0.2}) == "reading"
    assert feed(ingest, state="held") == "state_change"
    assert feed(ingest, state="held") == "missing_sentiment"  # repeats the state, carries nothing
    assert feed(ingest, state="ended") == "state_change"
    assert dict(ingest.messages) == {"state_change": 3, "reading": 2, "missing_sentiment": 1}


def test_null_score_is_missing_not_zero(ingest: Ingest) -> None:
    feed(ingest, state="connected", sentiment={"score": 0.5})
    assert feed(ingest, state="connected", sentiment={"score": None, "label": "neutral"}) == "missing_sentiment"
    agent = ingest.tracker.agents["a1"]
    assert agent.window_readings == 1
    assert agent.rolling_average == 0.5


def test_event_without_state_or_sentiment_is_missing_sentiment(ingest: Ingest) -> None:
    assert feed(ingest) == "missing_sentiment"
    assert "a1" not in ingest.tracker.agents


def test_null_score_still_applies_the_state_change(ingest: Ingest) -> None:
    feed(ingest, state="connected", sentiment={"score": 0.5})
    assert feed(ingest, state="ended", sentiment={"score": None}) == "missing_sentiment"
    assert ingest.tracker.agents["a1"].phase.value == "ending"


def test_invalid_score_counted(ingest: Ingest) -> None:
    assert feed(ingest, state="connected", sentiment={"score": 3}) == "invalid_score"
    assert ingest.messages["invalid_score"] == 1
    assert not ingest.tracker.agents["a1"].scores


def test_missing_sentiment_warning_is_rate_limited_and_names_the_cause(
    ingest: Ingest, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ingest.clock
    assert isinstance(clock, Clock)
    with caplog.at_level(logging.WARNING, logger="exporter.ingest"):
        for _ in range(50):
            feed(ingest, state="connected", sentiment={"score": None})
        clock.now = 61.0
        feed(ingest, state="connected", sentiment={"score": None})
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert "not requested" in warnings[0] and "NOT counted as 0.0" in warnings[0]
    assert "49 similar warnings suppressed" in warnings[1]


def test_refused_agent_is_an_outcome() -> None:
    ingest = Ingest(AgentTracker(TrackerLimits(max_agents=1)), clock=Clock())
    feed(ingest, state="connected", sentiment={"score": 0.1})
    message = {
        "type": "conversation",
        "conversationId": "c9",
        "agentId": "a9",
        "state": "connected",
        "sentiment": {"score": 0.1},
    }
    parsed = parse(json.dumps(message), 0)
    assert ingest.conversation(parsed.reading, parsed.state, parsed.sentiment) == "agent_refused"
    assert ingest.messages["agent_refused"] == 1
