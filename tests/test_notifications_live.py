"""The notifications source over real loopback sockets against the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from genesys_cloud_simulator import SimulatedGenesysCloud, SimulatorConfig
from genesys_cloud_simulator.scenarios import CallEvent, ScenarioEngine

from genesys_sentiment_exporter.app import Exporter
from genesys_sentiment_exporter.sources.notifications import NotificationsSource
from genesys_sentiment_exporter.sources.notifications_protocol import sentiment_topic, transcription_topic
from tests.live_helpers import say, score_numbers, settings_for, wait_for


@asynccontextmanager
async def live(
    sim_config: SimulatorConfig | None = None, **overrides: Any
) -> AsyncIterator[tuple[SimulatedGenesysCloud, Exporter, NotificationsSource]]:
    sim = SimulatedGenesysCloud(sim_config or SimulatorConfig())
    await sim.start()
    overrides.setdefault("queue_id", ["q1"])
    exporter = Exporter(settings_for(sim, source="notifications", **overrides))
    source = exporter.source
    assert isinstance(source, NotificationsSource)
    score_numbers(exporter)
    await exporter.start()
    try:
        await wait_for(lambda: exporter.stream.connected, what="channel subscribed")
        yield sim, exporter, source
    finally:
        await exporter.stop()
        await sim.stop()


def move(conv: str, agent: str, state: str, queue: str = "q1") -> CallEvent:
    return CallEvent(0.0, conv, agent, queue, state, None, False, None, True)


async def connect_call(sim: SimulatedGenesysCloud, conv: str, agent: str, queue: str = "q1") -> None:
    sim.notifications.publish_call(move(conv, agent, "alerting", queue))
    sim.notifications.publish_call(move(conv, agent, "connected", queue))
    await wait_for(lambda: sim.notifications.subscribed(transcription_topic(conv)), what=f"{conv} transcription")


async def scrape(exporter: Exporter) -> str:
    async with httpx.AsyncClient(trust_env=False) as http:
        return (await http.get(exporter.metrics_url)).text


async def test_attribution_follows_a_transfer() -> None:
    async with live() as (sim, exporter, _source):
        await connect_call(sim, "c1", "a1")
        say(sim, "c1", -0.4)
        await wait_for(lambda: exporter.ingest.messages["reading"] == 1, what="first reading")
        sim.notifications.transfer("c1", "a2", "q1")
        await wait_for(lambda: exporter.tracker.agents.get("a2") is not None, what="a2 connected")
        say(sim, "c1", -0.8)  # the scenario still names a1: a2 has it now
        await wait_for(lambda: exporter.ingest.messages["reading"] == 2, what="second reading")
        a1, a2 = exporter.tracker.agents["a1"], exporter.tracker.agents["a2"]
        assert a1.scores == [-0.4] and a1.state == "disconnected"
        assert a2.scores == [-0.8] and a2.state == "connected"
        text = await scrape(exporter)
        assert 'genesys_agent_sentiment_score{agent_id="a2",queue_id="q1",party="customer"} -0.8' in text
        assert "c1" not in text


async def test_transcription_topic_on_connect_dropped_after_grace_post_call_topic_held() -> None:
    async with live(grace_seconds=0.5, postcall_hold_seconds=1.5) as (sim, exporter, source):
        topic = transcription_topic("c1")
        assert not sim.notifications.subscribed(topic)
        await connect_call(sim, "c1", "a1")
        assert sim.notifications.subscribed(sentiment_topic("c1"))  # Genesys' post-call score comes here
        sim.notifications.publish_call(move("c1", "a1", "wrapup"))
        say(sim, "c1", -0.9)  # a late utterance, within the grace
        await wait_for(lambda: exporter.ingest.messages["reading"] == 1, what="late reading")
        await wait_for(lambda: not sim.notifications.subscribed(topic), timeout=5, what="transcription removed")
        await wait_for(lambda: "a1" not in exporter.tracker.agents, what="series gone after the grace")
        assert source.session.plan.where == {"v2.routing.queues.q1.conversations": 0, sentiment_topic("c1"): 0}
        await wait_for(lambda: len(source.session.plan) == 1, timeout=5, what="post-call topic released")
        await wait_for(lambda: not sim.notifications.subscribed(sentiment_topic("c1")), what="post-call topic gone")
        methods = [m for m, _c, _t in sim.notifications.subscription_requests]
        assert methods == ["PUT", "POST", "PUT", "PUT"]  # setup, add both topics, drop each in turn
        sim.notifications.publish_call(move("c1", "a1", "ended"))  # ACW completed after the grace
        await wait_for(lambda: exporter.ingest.messages["stale"] == 1, what="stale end")
        assert "a1" not in exporter.tracker.agents


async def test_post_call_score_goes_to_its_own_families_never_the_live_window() -> None:
    async with live(SimulatorConfig(postcall_sentiment_seconds=0.3), grace_seconds=0.2) as (sim, exporter, _src):
        await connect_call(sim, "c1", "a1")
        for value in (0.5, -0.2):
            say(sim, "c1", value)
        await wait_for(lambda: exporter.ingest.messages["reading"] == 2, what="live readings")
        sim.notifications.publish_call(CallEvent(0.0, "c1", "a1", "q1", "connected", -0.6, True, None))
        sim.notifications.publish_call(move("c1", "a1", "ended"))  # Genesys scores the call afterwards
        await wait_for(lambda: exporter.ingest.messages["postcall_score"] == 1, what="post-call score")
        await wait_for(lambda: not sim.notifications.subscribed(sentiment_topic("c1")), what="topic released")
        text = await scrape(exporter)
        assert 'genesys_agent_postcall_sentiment_score{agent_id="a1",queue_id="q1"} -0.6' in text
        assert 'genesys_agent_postcall_sentiment_mean{agent_id="a1",queue_id="q1"} -0.6' in text
        assert 'genesys_agent_postcall_calls_total{agent_id="a1",queue_id="q1"} 1.0' in text
        assert exporter.ingest.messages["reading"] == 2  # the post-call score never became a reading


async def test_socket_closing_rollover_loses_no_reading() -> None:
    seen: list[float] = []
    async with live(SimulatorConfig(socket_closing_seconds=1.0)) as (sim, exporter, source):
        exporter.ingest.on_reading = lambda r: seen.append(r.score)
        await connect_call(sim, "c1", "a1")
        published = []
        for i in range(300):  # 3 s of readings spanning the announcement, the swap and the close
            if i == 50:
                sim.notifications.socket_closing()
            value = round(i / 1000, 4)
            say(sim, "c1", value)
            published.append(value)
            await asyncio.sleep(0.01)
        await wait_for(lambda: len(seen) >= len(published), what="all readings")
        # the old channel is retired (overlap over, socket closed): nothing more can come through it
        await wait_for(lambda: not source.session.dedup.active, what="end of the overlap")
        assert seen == published
        assert exporter.stream.rollovers["socket_closing"] == 1
        assert sum(exporter.stream.overlaps_ended.values()) == 1  # caught up, or the platform's close came first
        assert not exporter.stream.overlaps_ended["max_wait"]
        assert sum(exporter.stream.disconnects.values()) == 0
        assert sim.notifications.channels_created == 2


async def test_the_1001st_topic_goes_to_a_second_channel() -> None:
    agents = [f"u{i}" for i in range(1000)]
    async with live(agent_id=agents, queue_id=[]) as (sim, exporter, source):
        assert len(source.slots) == 1 and sim.notifications.topic_count() == 1000
        await connect_call(sim, "c1", "u7")
        assert len(source.slots) == 2
        await wait_for(lambda: exporter.stream.connected, what="both channels")
        assert sim.notifications.open_sockets == 2
        say(sim, "c1", 0.3)
        await wait_for(lambda: exporter.ingest.messages["reading"] == 1, what="reading via channel 2")
        text = await scrape(exporter)
        assert "genesys_notifications_channels_open 2.0" in text
        assert "genesys_notifications_topics_subscribed 1002.0" in text  # + the call's transcription, post-call


async def test_full_channels_refuse_and_count() -> None:
    async with live(notifications_max_channels=1, notifications_topics_per_channel=3, agent_id=["a1"]) as (
        sim,
        exporter,
        source,
    ):
        await connect_call(sim, "c1", "a1")
        sim.notifications.publish_call(move("c2", "a1", "connected", "q1"))
        # base topics (a1, q1) and c1's transcription fill the channel: c1's post-call topic and c2's two are refused
        await wait_for(lambda: source.session.plan.refused == 3, what="refusal")
        text = await scrape(exporter)
        assert "genesys_notifications_subscriptions_refused_total 3.0" in text


async def test_rejected_subscriptions_are_counted_with_the_permission() -> None:
    config = SimulatorConfig(forbidden_topics=("v2.speechandtextanalytics.*",))
    async with live(config) as (sim, exporter, source):
        sim.notifications.publish_call(move("c1", "a1", "connected"))
        await wait_for(lambda: source.session.rejected["missing_permissions"] == 1, what="rejection")
        text = await scrape(exporter)
        assert 'genesys_notifications_subscriptions_rejected_total{reason="missing_permissions"} 1.0' in text
        assert "speechAndTextAnalytics:data:view" in source.session.missing_permissions
        report = source.subscription_report()
        assert (True, "topic", "v2.routing.queues.q1.conversations: permitted") in report
        assert any(not ok and "speechAndTextAnalytics:data:view" in text for ok, _t, text in report)
        assert len(source.session.plan) == 2  # the rejected topic does not hold a slot; the transcription does


async def test_channel_404_is_recovered_with_a_new_channel() -> None:
    async with live(notifications_channel_probe_seconds=0.2) as (sim, exporter, _source):
        await connect_call(sim, "c1", "a1")
        sim.notifications.delete_channel()  # socket stays open but silent; HEAD answers 404
        await wait_for(lambda: exporter.stream.rollovers["channel_gone"] == 1, what="channel_gone")
        await wait_for(lambda: sim.notifications.subscribed(transcription_topic("c1")), what="resubscribed")
        say(sim, "c1", 0.25)
        await wait_for(lambda: exporter.ingest.messages["reading"] == 1, what="reading on the new channel")


async def test_lost_socket_reconnects_to_the_same_channel() -> None:
    async with live() as (sim, exporter, _source):
        channel_id = next(iter(sim.notifications.channels))
        sock = sim.notifications.channels[channel_id].socket
        assert sock is not None
        sock.close(1011)
        await wait_for(lambda: exporter.stream.connects == 2 and exporter.stream.connected, what="reconnect")
        assert exporter.stream.disconnects == {"1011": 1}
        assert list(sim.notifications.channels) == [channel_id]


async def test_token_refresh_swaps_to_a_new_channel() -> None:
    seen: list[float] = []
    # A 6 s token is renewed after the 5 s floor; the old channel dies with its token at 6 s.
    async with live(SimulatorConfig(token_lifetime_seconds=6)) as (sim, exporter, _source):
        exporter.ingest.on_reading = lambda r: seen.append(r.score)
        await connect_call(sim, "c1", "a1")
        published = []
        after = 0  # readings published since the swap: they span the overlap of both channels
        for i in range(1000):
            value = round(i / 1000, 4)
            say(sim, "c1", value)
            published.append(value)
            await asyncio.sleep(0.01)
            after += bool(exporter.stream.rollovers["token_refresh"])
            if after >= 100:
                break
        assert exporter.stream.rollovers["token_refresh"] == 1  # the next renewal is 5 s away
        for _ in range(50):
            value = 0.9
            say(sim, "c1", value)
            published.append(value)
            await asyncio.sleep(0.01)
        await wait_for(lambda: len(seen) >= len(published), timeout=5, what="all readings")
        assert seen == published
        assert exporter.ingest.messages["duplicate"] > 0  # both channels delivered during the overlap
        assert sim.notifications.channels_created == 2
        await wait_for(lambda: sum(exporter.stream.overlaps_ended.values()) == 1, what="the old channel retired")
        assert not exporter.stream.overlaps_ended["max_wait"]  # readings flowed: caught up (or its token died)
        assert sum(exporter.stream.disconnects.values()) == 0


async def test_channel_expiry_rolls_over_before_expires() -> None:
    async with live(SimulatorConfig(channel_lifetime_seconds=3)) as (sim, exporter, _source):
        first = next(iter(sim.notifications.channels))
        await connect_call(sim, "c1", "a1")
        await wait_for(lambda: exporter.stream.rollovers["channel_expiry"] >= 1, timeout=5, what="expiry rollover")
        await wait_for(lambda: first not in sim.notifications.channels, what="the first channel expired")
        say(sim, "c1", -0.3)
        await wait_for(lambda: exporter.ingest.messages["reading"] == 1, what="reading after expiry")
        assert sum(exporter.stream.disconnects.values()) == 0


async def test_percent_scale_post_call_scores_are_normalised() -> None:
    async with live(sentiment_scale="percent", grace_seconds=0.1) as (sim, exporter, _src):
        await connect_call(sim, "c1", "a1")
        sim.notifications.publish_call(move("c1", "a1", "ended"))
        await wait_for(lambda: "a1" not in exporter.tracker.agents, what="call over")
        body = {"conversationId": "c1", "sentimentOverallScore": -55.0, "sentimentTrendScore": -30.0, "queueIds": []}
        sim.notifications.publish(sentiment_topic("c1"), body)
        await wait_for(lambda: exporter.ingest.messages["postcall_score"] == 1, what="post-call score")
        text = await scrape(exporter)
        assert 'genesys_agent_postcall_sentiment_score{agent_id="a1",queue_id="q1"} -0.55' in text
        assert 'genesys_agent_postcall_sentiment_trend{agent_id="a1",queue_id="q1"} -0.3' in text
        assert 'genesys_exporter_sentiment_scale_info{scale="percent",setting="percent"} 1.0' in text


async def test_heartbeat_and_pong_keep_the_channel_alive() -> None:
    config = SimulatorConfig(notifications_heartbeat_seconds=0.1)
    async with live(config, resolve_agent_names=True) as (sim, exporter, source):
        await wait_for(lambda: exporter.ingest.messages["heartbeat"] >= 2, what="heartbeats")
        assert exporter.stream.last_heartbeat > 0
        source.watchdog.ping_after = 0.0  # ping at once
        await wait_for(lambda: exporter.ingest.messages["control"] >= 1, what="pong")
        await connect_call(sim, "c1", "a1")
        names = exporter.names
        assert names is not None
        await wait_for(lambda: names.cache.name("agent", "a1") == "Agent a1", what="agent name")
        assert 'genesys_agent_info{agent_id="a1",agent_name="Agent a1"} 1.0' in await scrape(exporter)


async def test_demo_mix_pages_from_what_the_sour_customer_says() -> None:
    """100 s of the demo mix through transcripts and the default analyzer (VADER): the sour call's
    customer window goes below -0.5, the steady ones do not, the French calls are never 0.0 readings."""
    sim = SimulatedGenesysCloud(SimulatorConfig(transcript_batch_seconds=1.0, speed=4.0))
    await sim.start()
    queues = ["q-billing", "q-support", "q-fr", "q-payments", "q-legacy"]
    exporter = Exporter(settings_for(sim, source="notifications", queue_id=queues, grace_seconds=600))
    await exporter.start()
    try:
        await wait_for(lambda: exporter.stream.connected, what="connected")
        engine = ScenarioEngine(["demo"], seed=3)
        started = asyncio.get_running_loop().time()
        for event in engine.due(100.0):
            delay = event.at / 4.0 - (asyncio.get_running_loop().time() - started)
            if delay > 0:
                await asyncio.sleep(delay)
            sim.publish_call(event)
            sim.notifications.publish_transcripts_due()
        await asyncio.sleep(1.0)
        sour = exporter.tracker.agents["agent-sour"]
        assert sour.rolling_average < -0.5 and len(sour.scores) == 5
        steady = [a for a in exporter.tracker.agents.values() if a.agent_id.startswith("agent-0") and a.scores]
        assert steady and all(a.rolling_average > -0.5 for a in steady)
        french = [a for a in exporter.tracker.agents.values() if a.agent_id.startswith("agent-fr")]
        assert french and all(not a.scores for a in french)
        assert exporter.ingest.utterances[("customer", "unsupported_language")] > 0
        assert exporter.ingest.utterances[("agent", "party_not_scored")] > 0
        assert exporter.ingest.utterances[("customer", "partial")] > 0
    finally:
        await exporter.stop()
        await sim.stop()


async def test_a_refused_subscription_request_is_a_counted_rejection_not_a_retry_storm() -> None:
    """A 4xx to the subscription request itself (a gateway without ignoreErrors, an older platform):
    the topics are rejected and counted once, no retry loop, no new channel."""
    config = SimulatorConfig(forbidden_topics=("v2.conversations.*.transcription",))
    async with live(config) as (sim, _exporter, source):
        real = source.rest.json

        async def without_ignore_errors(method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
            return await real(method, path.replace("?ignoreErrors=true", ""), body, ok)

        source.rest.json = without_ignore_errors  # type: ignore[method-assign]
        sim.notifications.publish_call(move("c1", "a1", "connected"))
        await wait_for(lambda: source.session.rejected["http_400"] == 2, what="both topics rejected")
        await asyncio.sleep(1.5)  # a retry loop would have asked again by now
        posts = [m for m, _c, t in sim.notifications.subscription_requests if m == "POST"]
        assert len(posts) == 1 and sim.notifications.channels_created == 1
        report = source.subscription_report()
        assert any(not ok and "v2.conversations.{id}.transcription: rejected" in text for ok, _w, text in report)


async def test_the_exporter_sends_ignore_errors_and_reads_the_listing() -> None:
    config = SimulatorConfig(forbidden_topics=("v2.speechandtextanalytics.*",))
    async with live(config) as (sim, _exporter, source):
        await connect_call(sim, "c1", "a1")  # the transcription topic is permitted, the post-call one not
        await wait_for(lambda: source.session.rejected["missing_permissions"] == 1, what="post-call rejected")
        assert sim.notifications.subscribed(transcription_topic("c1"))
