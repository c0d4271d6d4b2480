"""A rollover whose replacement channel's base-topic PUT is refused, over real sockets.

The old channel still has a working subscription; the replacement carries nothing until the same PUT,
asked again on it (the issue-9 rule), is answered. Until then the old one must stay and deliver.
"""

from __future__ import annotations

import time

from genesys_cloud_simulator import SimulatorConfig

from genesys_sentiment_exporter.app import Exporter
from tests.fault.faulty import FaultySimulator, conversation_body, json_answer, live_notifications
from tests.live_helpers import wait_for

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
