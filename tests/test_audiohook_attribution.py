"""Which agent an AudioHook call's readings go to: the tracker's view of the conversation (no I/O)."""

from __future__ import annotations

from genesys_sentiment_exporter.audiohook.server import TrackerAttribution
from genesys_sentiment_exporter.model import StateChange
from genesys_sentiment_exporter.tracker import AgentTracker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_attribution_follows_the_tracker_and_prefers_the_live_agent_after_a_transfer() -> None:
    tracker, clock = AgentTracker(), Clock()
    attribute = TrackerAttribution(tracker, clock)
    assert attribute("c1") is None
    tracker.state(StateChange("a1", "q1", "c1", "connected", 0.0), clock.now)
    assert attribute("c1") is None  # a miss rescans at most once a second
    clock.now += 1.0
    assert attribute("c1") == ("a1", "q1")
    # Transfer: a1 leaves (grace period, still on c1), a2 takes the call; no waiting for the throttle.
    tracker.state(StateChange("a1", "q1", "c1", "disconnected", 0.0), clock.now)
    tracker.state(StateChange("a2", "q2", "c1", "connected", 0.0), clock.now)
    assert attribute("c1") == ("a2", "q2")
    # a1's grace ends: a1 is gone; the call is still a2's.
    tracker.expire(clock.now + 10)
    assert attribute("c1") == ("a2", "q2")


def test_an_ending_call_is_still_attributed_during_its_grace() -> None:
    tracker, clock = AgentTracker(), Clock()
    attribute = TrackerAttribution(tracker, clock)
    tracker.state(StateChange("a1", "q1", "c1", "connected", 0.0), clock.now)
    assert attribute("c1") == ("a1", "q1")
    tracker.state(StateChange("a1", "q1", "c1", "wrapup", 0.0), clock.now)
    assert attribute("c1") == ("a1", "q1")  # late utterances of the call's last words still count
    tracker.expire(clock.now + 10)
    clock.now += 1.0
    assert attribute("c1") is None
