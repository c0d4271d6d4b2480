"""Items 5 and 13: ids from the wire cannot break or bloat /metrics.

A lone surrogate (JSON `\\ud800`) in a user or queue id once made every scrape answer 500, for a queue
id until restart; 20 MB of agent ids made a 103 MB page; 30 000 queue ids made 30 000 ended-calls
series that never went away.
"""

from __future__ import annotations

import shutil
import subprocess

import httpx

from genesys_sentiment_exporter.model import StateChange
from genesys_sentiment_exporter.tracker import MAX_ID_LENGTH, OVERFLOW_QUEUE, AgentTracker, Outcome, TrackerLimits
from tests.fault.faulty import conversation_body, json_answer, live_notifications
from tests.live_helpers import wait_for
from tests.test_notifications_live import live, scrape


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is required (scripts/install-tools.sh)"
    result = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, check=False)
    # promtool exits 3 for lint findings only (naming advice); 1 means the text did not parse.
    assert result.returncode in (0, 3), result.stderr.decode() + result.stdout.decode()
    assert b"error while linting" not in result.stderr, result.stderr


async def test_lone_surrogates_in_user_and_queue_ids_never_break_a_scrape() -> None:
    async with live_notifications(resolve_agent_names=True) as (sim, exporter):
        sim.inject("GET", "/api/v2/users/", json_answer({"id": "a3", "name": "Jane \ud800 Doe"}))
        topic = "v2.routing.queues.q1.conversations"
        sim.notifications.publish(topic, conversation_body("c1", "agent-\ud800", "q1"))
        sim.notifications.publish(topic, conversation_body("c2", "a2", "queue-\udfff"))
        sim.notifications.publish(topic, conversation_body("c3", "a3", "q1", "wrapup"))
        # A queue id in the topic name is the fallback queue: a forged topic carries one too.
        sim.notifications.publish("v2.routing.queues.\udc00.conversations", conversation_body("c4", "a4", ""))
        await wait_for(lambda: exporter.ingest.messages["invalid_id"] >= 2, what="ids refused")
        assert exporter.names is not None
        await wait_for(lambda: exporter.names is not None and exporter.names.lookups[("agent", "ok")] >= 1, what="name")
        async with httpx.AsyncClient(trust_env=False) as http:
            for _ in range(2):
                response = await http.get(exporter.metrics_url)
                assert response.status_code == 200, response.text[:300]
        promtool_check(response.text)
        assert "\\ud800" not in response.text and "?" not in response.text.split("agent_id=")[-1][:20]
        assert exporter.ingest.messages["invalid_id"] >= 2


async def test_oversized_ids_are_refused_and_counted() -> None:
    async with live() as (sim, exporter, _source):
        topic = "v2.routing.queues.q1.conversations"
        huge = "x" * 200_000
        sim.notifications.publish(topic, conversation_body("c1", huge, "q1"))
        sim.notifications.publish(topic, conversation_body("c2", "a2", huge))
        await wait_for(lambda: exporter.ingest.messages["invalid_id"] == 2, what="ids refused")
        text = await scrape(exporter)
        assert len(text) < 20_000
        assert huge[:1000] not in text


def test_tracker_refuses_ids_it_could_not_export() -> None:
    tracker = AgentTracker()
    good = "a" * MAX_ID_LENGTH
    for agent, queue in (("a\ud800", "q"), ("a", "q\udfff"), ("a" * (MAX_ID_LENGTH + 1), "q"), ("a", "q" * 10_000)):
        assert tracker.state(StateChange(agent, queue, "c", "connected", 0.0), 0.0) == Outcome.INVALID_ID
    assert tracker.state(StateChange(good, "q", "c", "connected", 0.0), 0.0) == Outcome.STATE_CHANGE
    assert tracker.state(StateChange("b", "q", "c" * 100_000, "connected", 0.0), 0.0) == Outcome.INVALID_ID
    assert list(tracker.agents) == [good]


def test_ended_calls_series_are_bounded_and_expire() -> None:
    tracker = AgentTracker(TrackerLimits(grace_seconds=0.0, max_queue_series=100, queue_series_idle_seconds=60.0))
    for i in range(30_000):
        tracker.state(StateChange(f"a{i % 50}", f"q{i}", f"c{i}", "connected", 0.0), 0.0)
        tracker.state(StateChange(f"a{i % 50}", f"q{i}", f"c{i}", "wrapup", 0.0), 0.0)
        tracker.expire(0.0)
    queues = {queue for queue, _had in tracker.conversations_ended}
    assert len(queues) <= 101
    assert OVERFLOW_QUEUE in queues
    assert sum(tracker.conversations_ended.values()) == 30_000  # bounded, not lost
    tracker.expire(61.0)
    assert not tracker.conversations_ended  # every queue idle for longer than the limit: gone
