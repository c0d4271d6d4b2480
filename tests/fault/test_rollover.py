"""A rollover whose replacement channel's base-topic PUT is refused, over real sockets.

The old channel still has a working subscription; the replacement carries nothing until the same PUT,
asked again on it (the issue-9 rule), is answered. Until then the old one must stay and deliver.
"""

from __future__ import annotations

import time

import httpx
from genesys_cloud_simulator import SimulatorConfig
from genesys_cloud_simulator.scenarios import CallEvent

from genesys_sentiment_exporter.app import Exporter
from genesys_sentiment_exporter.sources.notifications_protocol import transcription_topic
from tests.fault.faulty import FaultySimulator, conversation_body, json_answer, live_notifications
from tests.live_helpers import say, score_numbers, wait_for

QUEUE_TOPIC = "v2.routing.queues.q1.conversations"
REFUSAL = {
    "message": "Subscription rejected",
    "code": "missing.permissions",
    "status": 403,
    "messageParams": {"missingPermissions": "routing:queue:view"},
}


async def test_a_refused_replacement_keeps_the_old_channel_until_it_is_subscribed() -> None:
    sim = FaultySimulator(SimulatorConfig(notifications_heartbeat_seconds=1.0))
    async with live_notifications(sim) as (_sim, exporter):
        source = exporter.source
        streams = source.streams  # type: ignore[attr-defined]
        streams.max_wait = 0.5  # the backstop, short: it must not apply while the replacement is refused
        notifications = sim.notifications
        [old_id] = list(notifications.channels)
        fault = sim.inject("PUT", "/api/v2/notifications/channels/", json_answer(REFUSAL, 403))
        notifications.socket_closing(close_after=3600)  # announced; the platform keeps the old socket for now
        await wait_for(lambda: exporter.stream.rollovers["socket_closing"] == 1, what="rollover")
        await wait_for(lambda: fault.hits >= 2, timeout=30, what="the refused PUT asked again")
        new_id = next(c for c in notifications.channels if c != old_id)
        assert notifications.channels_created == 2  # asked again on the replacement, no third channel
        assert notifications.channels[old_id].socket is not None  # the old one is still open...
        assert not exporter.stream.overlaps_ended and len(source.live) == 2  # type: ignore[attr-defined]
        before = handled(exporter)
        assert notifications.publish(QUEUE_TOPIC, conversation_body("c-old", "a1", "q1")) == 1  # ...and delivers
        await wait_for(lambda: handled(exporter) == before + 1, what="delivered by the old channel")
        assert len(source.live) == 2  # type: ignore[attr-defined]
        sim.clear()  # the permission is granted: the replacement's next PUT is answered
        await wait_for(lambda: QUEUE_TOPIC in notifications.channels[new_id].topics, timeout=60, what="subscribed")
        tag = time.monotonic_ns()
        for i in range(100):  # events on both until the old channel is let go
            if exporter.stream.overlaps_ended:
                break
            seen = handled(exporter) + exporter.ingest.messages["duplicate"]
            notifications.publish(QUEUE_TOPIC, conversation_body(f"c-{tag}-{i}", "a1", "q1"))
            await wait_for(lambda: handled(exporter) + exporter.ingest.messages["duplicate"] > seen, what="an event")  # noqa: B023
        await wait_for(lambda: bool(exporter.stream.overlaps_ended), what="the old channel retired")
        assert sum(exporter.stream.overlaps_ended.values()) == 1
        await wait_for(lambda: notifications.channels[old_id].socket is None, what="the old socket closed")
        assert len(source.live) == 1  # type: ignore[attr-defined]


def move(conv: str, agent: str, state: str, queue: str = "q1") -> CallEvent:
    return CallEvent(0.0, conv, agent, queue, state, None, False, None, True)


def handled(exporter: Exporter) -> int:
    """Events given an outcome, but not the copy of one that a second socket delivered."""
    messages = exporter.ingest.messages
    return sum(messages.values()) - messages["heartbeat"] - messages["control"] - messages["duplicate"]


async def test_the_old_channel_held_through_a_second_refused_rollover_goes_once_the_newest_is_subscribed() -> None:
    sim = FaultySimulator(SimulatorConfig(notifications_heartbeat_seconds=1.0))
    async with live_notifications(sim) as (_sim, exporter):
        source = exporter.source
        source.streams.max_wait = 0.5  # type: ignore[attr-defined]
        notifications = sim.notifications
        [first] = list(notifications.channels)
        fault = sim.inject("PUT", "/api/v2/notifications/channels/", json_answer(REFUSAL, 403))
        notifications.socket_closing(close_after=3600)
        await wait_for(lambda: notifications.channels_created == 2, what="the first replacement")
        await wait_for(lambda: fault.hits >= 1, what="its PUT refused")
        notifications.socket_closing(close_after=3600)  # the platform's maintenance again: the replacement goes too
        await wait_for(lambda: exporter.stream.rollovers["socket_closing"] == 2, timeout=30, what="second rollover")
        await wait_for(lambda: exporter.stream.overlaps_ended["max_wait"] == 1, what="the refused replacement retired")
        assert notifications.channels[first].socket is not None  # the working one stays...
        before = handled(exporter)
        assert notifications.publish(QUEUE_TOPIC, conversation_body("c-old", "a1", "q1")) == 1
        await wait_for(lambda: handled(exporter) == before + 1, what="delivered by the first channel")
        sim.clear()  # granted: the newest channel's next PUT is answered
        newest = list(notifications.channels)[-1]
        await wait_for(lambda: QUEUE_TOPIC in notifications.channels[newest].topics, timeout=60, what="subscribed")
        await wait_for(lambda: notifications.channels[first].socket is None, what="the first channel let go")
        assert sum(exporter.stream.overlaps_ended.values()) == 2 and len(source.live) == 1  # type: ignore[attr-defined]


async def get_ready(exporter: Exporter) -> tuple[int, str]:
    async with httpx.AsyncClient(trust_env=False) as http:
        answer = await http.get(exporter.web.url + "/-/ready")
        return answer.status_code, answer.text


async def scrape(exporter: Exporter) -> str:
    async with httpx.AsyncClient(trust_env=False) as http:
        return (await http.get(exporter.metrics_url)).text


async def test_ready_while_the_held_old_channel_delivers_and_not_once_it_is_gone() -> None:
    """Readiness says whether events flow: the held old channel delivers every event, so the exporter is
    ready (and says it holds one); once that channel is gone too, nothing delivers: not ready."""
    sim = FaultySimulator(SimulatorConfig(notifications_heartbeat_seconds=1.0))
    async with live_notifications(sim) as (_sim, exporter):
        source = exporter.source
        source.streams.max_wait = 0.5  # type: ignore[attr-defined]
        notifications = sim.notifications
        [old_id] = list(notifications.channels)
        sim.inject("PUT", "/api/v2/notifications/channels/", json_answer(REFUSAL, 403))
        notifications.socket_closing(close_after=3600)
        await wait_for(lambda: exporter.stream.rollovers["socket_closing"] == 1, what="rollover")
        assert notifications.channels[old_id].socket is not None
        assert await get_ready(exporter) == (200, "Ready\n")
        assert "genesys_notifications_channels_held 1.0" in await scrape(exporter)
        before = handled(exporter)
        assert notifications.publish(QUEUE_TOPIC, conversation_body("c-old", "a1", "q1")) == 1
        await wait_for(lambda: handled(exporter) == before + 1, what="delivered by the held channel")
        notifications.channels[old_id].socket.close(1001)  # type: ignore[union-attr]  # the held one goes too
        await wait_for(lambda: exporter.stream.overlaps_ended["closed_by_server"] == 1, what="held channel gone")
        status, text = await get_ready(exporter)
        assert status == 503 and "base topics refused with HTTP 403" in text
        assert "genesys_notifications_channels_held 0.0" in await scrape(exporter)
        sim.clear()  # granted: the replacement's next PUT is answered
        await wait_for(lambda: exporter.stream.connected, timeout=60, what="ready again")
        assert await get_ready(exporter) == (200, "Ready\n")


async def test_a_call_connected_while_the_replacement_is_refused_is_heard_on_the_held_channel_then_carried() -> None:
    """New calls' per-call topics go on the channel that delivers (the held old one) at once, the calls
    it already carried stay planned, and the replacement gets both once answered: every utterance
    counted once, before, during and after the handover."""
    sim = FaultySimulator(SimulatorConfig(notifications_heartbeat_seconds=1.0))
    async with live_notifications(sim) as (_sim, exporter):
        score_numbers(exporter)
        source = exporter.source
        source.streams.max_wait = 30.0  # type: ignore[attr-defined]  # the overlap ends by catching up
        notifications = sim.notifications
        [old_id] = list(notifications.channels)
        before, new = transcription_topic("c-before"), transcription_topic("c-new")
        notifications.publish_call(move("c-before", "a1", "connected"))
        await wait_for(lambda: before in notifications.channels[old_id].topics, what="c-before subscribed")
        fault = sim.inject("PUT", "/api/v2/notifications/channels/", json_answer(REFUSAL, 403))
        notifications.socket_closing(close_after=3600)
        await wait_for(lambda: exporter.stream.rollovers["socket_closing"] == 1, what="rollover")
        new_id = next(c for c in notifications.channels if c != old_id)
        notifications.publish_call(move("c-new", "a2", "connected"))
        await wait_for(lambda: new in notifications.channels[old_id].topics, what="c-new on the held channel")
        assert fault.hits == 1  # at once, not after the refused PUT's backoff
        said: list[float] = []

        async def utter(conversation: str, value: float) -> None:
            seen = exporter.ingest.messages["reading"]
            assert say(sim, conversation, value) >= 1
            said.append(value)
            await wait_for(lambda: exporter.ingest.messages["reading"] == seen + 1, what=f"{conversation} {value}")

        await utter("c-new", -0.11)  # heard through the held channel while the replacement is refused
        await utter("c-before", -0.12)
        sim.clear()  # granted: the replacement's next PUT carries both calls
        await wait_for(lambda: {before, new} <= set(notifications.channels[new_id].topics), timeout=60, what="carried")
        for i in range(100):  # on both channels until the old one has caught up and goes: counted once
            if exporter.stream.overlaps_ended:
                break
            await utter("c-new" if i % 2 else "c-before", round(0.01 * (i + 1), 2))
        await wait_for(lambda: notifications.channels[old_id].socket is None, what="the old channel let go")
        assert exporter.stream.overlaps_ended["caught_up"] == 1
        await utter("c-new", -0.21)  # after the handover: through the replacement alone
        await utter("c-before", -0.22)
        scores = [*exporter.tracker.agents["a1"].scores, *exporter.tracker.agents["a2"].scores]
        assert sorted(scores) == sorted(said)
        assert exporter.ingest.messages["reading"] == len(said)
