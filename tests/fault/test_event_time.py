"""Item 9: an eventTime far from the receive time is clamped to it and counted.

A far-future time kept `genesys_agent_last_reading_timestamp_seconds` "fresh" for years (the
readings-stopped alert could never fire); a far-past one fired it at once.
"""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from genesys_sentiment_exporter.ingest import EVENT_TIME_FUTURE_SECONDS, EVENT_TIME_PAST_SECONDS, Ingest
from genesys_sentiment_exporter.tracker import AgentTracker
from tests.live_helpers import event, running, wait_for


def values(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


async def test_far_future_and_far_past_event_times_are_clamped_and_counted() -> None:
    async with running() as (sim, exporter):
        await wait_for(lambda: exporter.stream.connected, what="subscribed")
        future = event("a1", "c1", -0.5) | {"eventTime": "2100-01-01T00:00:00Z"}
        past = event("a2", "c2", -0.5) | {"eventTime": "1971-01-01T00:00:00Z"}
        fine = event("a3", "c3", -0.5) | {"eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        for message in (future, past, fine):
            sim.publish(message)
        await wait_for(lambda: exporter.ingest.messages["reading"] == 3, what="three readings")
        async with httpx.AsyncClient(trust_env=False) as http:
            text = (await http.get(exporter.metrics_url)).text
    now = time.time()
    stamps = values(text, "genesys_agent_last_reading_timestamp_seconds")
    assert len(stamps) == 3
    for stamp in stamps.values():
        assert now - 60 < stamp < now + 5
    clamped = values(text, "genesys_stream_event_time_clamped_total")
    assert clamped[(("direction", "future"),)] == 1
    assert clamped[(("direction", "past"),)] == 1


def test_the_bounds_apply_on_the_fast_path_too() -> None:
    wall = [1_000_000.0]
    ingest = Ingest(AgentTracker(), clock=lambda: 0.0, wall=lambda: wall[0])
    ingest.conversation_fields("a", "q", "c", "connected", 0.1, wall[0], "ok")
    ingest.conversation_fields("a", "q", "c", None, 0.2, wall[0] + EVENT_TIME_FUTURE_SECONDS + 1, "ok")
    assert ingest.tracker.agents["a"].last_timestamp == wall[0]
    ingest.conversation_fields("a", "q", "c", None, 0.2, wall[0] - EVENT_TIME_PAST_SECONDS - 1, "ok")
    assert ingest.tracker.agents["a"].last_timestamp == wall[0]
    ingest.conversation_fields("a", "q", "c", None, 0.2, wall[0] - 3, "ok")
    assert ingest.tracker.agents["a"].last_timestamp == wall[0] - 3
    assert ingest.event_time_clamped == {"future": 1, "past": 1}
