"""Stream-side items over real sockets: 4 (nested JSON on both streams), 7 (pongs are not traffic),
8 (an answer without `entities` confirms nothing), 12 (live calls keep no bodies), 14 (no ws:// downgrade).
"""

from __future__ import annotations

import json

import pytest

from genesys_sentiment_exporter.sources import notifications_protocol as proto
from tests.fault.faulty import (
    FaultySimulator,
    conversation_body,
    json_answer,
    live_notifications,
    nested,
    send_raw,
    send_raw_analytics,
)
from tests.live_helpers import event, running, wait_for

QUEUE_TOPIC = "v2.routing.queues.q1.conversations"


def tasks_alive(exporter: object) -> bool:
    return bool(exporter.running)  # type: ignore[attr-defined]  # a core task that stops ends the run


@pytest.mark.parametrize("depth", [10_000, 990, 400])
async def test_nested_json_on_the_notifications_stream_is_malformed_not_fatal(depth: int) -> None:
    async with live_notifications() as (sim, exporter):
        envelope = '{"topicName":"' + QUEUE_TOPIC + '","eventBody":{"id":"c9","participants":[' + nested(depth) + "]}}"
        assert send_raw(sim, envelope) == 1
        assert send_raw(sim, '{"topicName":"' + QUEUE_TOPIC + '","eventBody":' + nested(depth) + "}") == 1
        sim.notifications.publish(QUEUE_TOPIC, conversation_body("c1", "a1", "q1"))
        await wait_for(lambda: exporter.ingest.messages["state_change"] >= 1, what="the next event")
        assert sum(exporter.ingest.messages.values()) >= 3  # every frame got an outcome
        assert exporter.stream.connected and tasks_alive(exporter)


@pytest.mark.parametrize("depth", [10_000, 990])
async def test_nested_json_on_the_analytics_stream_is_malformed_not_fatal(depth: int) -> None:
    async with running() as (sim, exporter):
        await wait_for(lambda: exporter.stream.connected, what="subscribed")
        assert send_raw_analytics(sim, nested(depth)) == 1
        assert send_raw_analytics(sim, '{"type":"conversation","agentId":"a","x":' + nested(depth) + "}") == 1
        sim.publish(event("a1", "c1", -0.4))
        await wait_for(lambda: exporter.ingest.messages["reading"] == 1, what="the next reading")
        assert exporter.ingest.messages["malformed"] == 2
        assert exporter.stream.connected and tasks_alive(exporter)


async def test_pongs_do_not_keep_a_silent_channel_alive() -> None:
    from genesys_cloud_simulator import SimulatorConfig

    sim = FaultySimulator(SimulatorConfig(notifications_heartbeat_seconds=3600))  # no heartbeats at all
    async with live_notifications(sim) as (_sim, exporter):
        policy = exporter.source.watchdog  # type: ignore[attr-defined]
        policy.silence, policy.ping_after = 1.5, 0.2  # pings go out, the server answers each with a pong
        await wait_for(lambda: exporter.ingest.messages["control"] >= 1, what="a pong")
        await wait_for(
            lambda: exporter.stream.disconnects["heartbeat_timeout"] >= 1, timeout=10, what="silent socket replaced"
        )
        await wait_for(lambda: exporter.stream.connected, timeout=10, what="reconnected")


async def test_a_subscription_answer_without_entities_confirms_nothing() -> None:
    sim = FaultySimulator()
    fault = sim.inject("PUT", "/api/v2/notifications/channels/", json_answer({}), times=2)
    async with live_notifications(sim, wait=False) as (_sim, exporter):
        await wait_for(lambda: fault.hits == 2, what="two answers without entities")
        # Only a real subscription (the simulator's own answer, after the fault) makes the stream ready.
        await wait_for(lambda: exporter.stream.connected, timeout=15, what="subscribed for real")
        assert sim.notifications.subscribed(QUEUE_TOPIC)
        assert proto.read_subscriptions({"entities": [{"id": "t1", "state": "Permitted"}]}, ["t1"])[0].permitted
        with pytest.raises(ValueError):
            proto.read_subscriptions({}, ["t1"])
        with pytest.raises(ValueError):
            proto.read_subscriptions({"entities": None}, ["t1"])


async def test_a_connect_uri_cannot_downgrade_to_plain_ws_toward_another_host() -> None:
    sim = FaultySimulator()
    answer = {"id": "streaming-0-evil", "connectUri": "ws://192.0.2.10/channels/streaming-0-evil", "expires": None}
    fault = sim.inject("POST", "/api/v2/notifications/channels", json_answer(answer), times=2)
    async with live_notifications(sim, wait=False) as (_sim, exporter):
        await wait_for(lambda: fault.hits >= 1, what="the downgrade offered")
        await wait_for(lambda: "ws://" in exporter.stream.last_error, what="refused with its reason")
        assert exporter.stream.connects == 0
        await wait_for(lambda: exporter.stream.connected, timeout=15, what="a proper channel afterwards")


def test_live_calls_keep_a_digest_not_their_bodies_and_are_capped() -> None:
    attribution = proto.Attribution(grace_seconds=5, max_live=1000)
    padding = "x" * 100_000
    for i in range(1500):
        body = conversation_body(f"c{i}", f"a{i}", "q1") | {"padding": padding}
        update = attribution.on_conversation(body, "q1", 0.0, 0.0)
        if i >= 1000:
            assert update.outcome == "agent_refused"
    assert len(attribution.live) == 1000
    assert all(len(t.last_body) <= 32 for t in attribution.live.values())
    again = conversation_body("c1", "a1", "q1") | {"padding": padding}
    assert attribution.on_conversation(again, "q1", 1.0, 1.0).outcome == "duplicate"
    assert len(json.dumps(padding)) > 100_000  # the body itself was big
