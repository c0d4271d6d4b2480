"""The analytics-websocket source over real loopback sockets against the simulator."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
from types import SimpleNamespace
from typing import cast
from unittest.mock import AsyncMock

import httpx
import pytest
from genesys_cloud_simulator import SimulatorConfig

from genesys_sentiment_exporter import logs
from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.oauth import Token, TokenManager
from genesys_sentiment_exporter.sources.analytics_websocket import AnalyticsWebSocketSource
from genesys_sentiment_exporter.stream_state import StreamState
from genesys_sentiment_exporter.tracker import AgentTracker
from tests.live_helpers import event, running, wait_for


def connected(exporter: object) -> bool:
    return bool(exporter.stream.connected)  # type: ignore[attr-defined]


async def test_readings_reach_the_metrics() -> None:
    async with running() as (sim, exporter):
        await wait_for(lambda: connected(exporter), what="subscription")
        for score in (-0.9, -0.7, -0.8):
            sim.publish(event("a1", "c1", score))
        await wait_for(lambda: exporter.ingest.messages["reading"] == 3, what="readings")
        async with httpx.AsyncClient() as http:
            text = (await http.get(exporter.metrics_url)).text
    assert 'genesys_agent_sentiment_rolling_average{agent_id="a1",queue_id="q1",party="customer"} -0.8' in text
    assert 'genesys_agent_sentiment_window_readings{agent_id="a1",queue_id="q1",party="customer"} 3.0' in text
    assert "c1" not in text  # never a conversation id
    assert sim.subscribe_messages[0]["events"][0]["fields"][0] == "sentiment.score"


async def test_reconnects_within_five_seconds_after_1006() -> None:
    async with running() as (sim, exporter):
        await wait_for(lambda: connected(exporter), what="subscription")
        await sim.drop_streams()
        took = await wait_for(lambda: exporter.stream.connects == 2, timeout=5.0, what="reconnect after 1006")
        assert took < 5.0
        assert exporter.stream.disconnects == {"1006": 1}
        sim.publish(event("a1", "c1", 0.4))
        await wait_for(lambda: exporter.ingest.messages["reading"] == 1, what="reading after reconnect")


async def test_reconnects_after_maintenance_close_1001() -> None:
    async with running() as (sim, exporter):
        await wait_for(lambda: connected(exporter), what="subscription")
        await sim.close_streams(1001)
        await wait_for(lambda: exporter.stream.connects == 2, timeout=5.0, what="reconnect after 1001")
        assert exporter.stream.disconnects == {"1001": 1}


async def test_silent_socket_is_replaced() -> None:
    async with running() as (_sim, exporter):
        await wait_for(lambda: connected(exporter), what="subscription")
        exporter.source.watchdog.silence = 0.5  # type: ignore[attr-defined]
        await wait_for(lambda: exporter.stream.disconnects["heartbeat_timeout"] >= 1, what="watchdog")
        exporter.source.watchdog.silence = 3600  # type: ignore[attr-defined]
        await wait_for(lambda: connected(exporter), what="replacement socket")
        assert exporter.stream.connects >= 2


async def test_make_before_break_loses_and_doubles_nothing() -> None:
    # An 8 s token is renewed at 80 % of its life (6.4 s); the old socket would go silent at 8 s.
    seen: list[float] = []
    async with running(SimulatorConfig(token_lifetime_seconds=8)) as (sim, exporter):
        exporter.ingest.on_reading = lambda r: seen.append(r.score)
        await wait_for(lambda: connected(exporter), what="subscription")
        published: list[float] = []
        after = 0  # readings published since the swap: they span the overlap of both sockets
        for i in range(3000):  # 10 ms apart until 100 past the rollover (a loaded machine runs slower)
            score = round(i / 1000, 4)
            sim.publish(event(f"agent-{i % 7}", f"conv-{i % 7}", score))
            published.append(score)
            await asyncio.sleep(0.01)
            after += bool(exporter.stream.rollovers["token_refresh"])
            if after >= 100:
                break
        assert exporter.stream.rollovers["token_refresh"] == 1  # the next renewal is 6.4 s away
        await wait_for(lambda: len(seen) >= len(published), timeout=5, what="all readings")
        source = exporter.source
        await wait_for(lambda: not source.session.dedup.active, what="end of the overlap")  # type: ignore[attr-defined]
        assert exporter.ingest.messages["duplicate"] > 0  # both sockets delivered during the overlap
        assert exporter.stream.overlaps_ended == {"caught_up": 1}  # readings flowed: no need for the backstop
        assert sum(exporter.stream.disconnects.values()) == 0
    assert seen == published  # every reading once, in order


async def test_missing_field_is_counted_and_not_exported_as_zero() -> None:
    async with running() as (sim, exporter):
        await wait_for(lambda: connected(exporter), what="subscription")
        sim.publish(
            {
                "conversationId": "c1",
                "agentId": "a1",
                "queueId": "q1",
                "state": "connected",
                "sentiment": {"score": None},
            }
        )
        sim.publish({"conversationId": "c1", "agentId": "a1", "queueId": "q1", "state": "connected"})
        await wait_for(lambda: exporter.ingest.messages["missing_sentiment"] == 2, what="missing counted")
        async with httpx.AsyncClient() as http:
            text = (await http.get(exporter.metrics_url)).text
    assert 'genesys_stream_messages_total{outcome="missing_sentiment"} 2.0' in text
    assert "genesys_agent_sentiment_score{" not in text
    assert "genesys_agent_sentiment_rolling_average{" not in text


async def test_late_score_inside_grace_is_accepted_and_series_go_after() -> None:
    async with running(grace_seconds=1.0) as (sim, exporter):
        await wait_for(lambda: connected(exporter), what="subscription")
        sim.publish(event("a1", "c1", -0.2))
        sim.publish(event("a1", "c1", state="ended"))
        await wait_for(lambda: getattr(exporter.tracker.agents.get("a1"), "state", "") == "ended", what="call ended")
        sim.publish(event("a1", "c1", -0.8, state="ended"))  # late, within the 1 s grace
        await wait_for(lambda: exporter.ingest.messages["reading"] == 2, what="late reading")
        async with httpx.AsyncClient() as http:
            during = (await http.get(exporter.metrics_url)).text
            assert 'genesys_agent_sentiment_window_readings{agent_id="a1",queue_id="q1",party="customer"} 2.0' in during
            assert 'genesys_agent_conversation_active{agent_id="a1",queue_id="q1",party="customer"} 0.0' in during
            await wait_for(lambda: "a1" not in exporter.tracker.agents, what="grace over")
            after = (await http.get(exporter.metrics_url)).text
    assert 'agent_id="a1"' not in after
    assert 'genesys_conversations_ended_total{had_sentiment="true",queue_id="q1"} 1.0' in after


async def test_readiness_follows_the_connection() -> None:
    async with running() as (sim, exporter), httpx.AsyncClient() as http:
        await wait_for(lambda: connected(exporter), what="subscription")
        ready = await http.get(exporter.web.url + "/-/ready")
        assert ready.status_code == 200
        await sim.stop()
        await wait_for(lambda: not connected(exporter), what="disconnect")
        not_ready = await http.get(exporter.web.url + "/-/ready")
        assert not_ready.status_code == 503
        assert "stream not connected" in not_ready.text
        await sim.start(port=int(sim.base_url.rsplit(":", 1)[1]))
        await wait_for(lambda: connected(exporter), timeout=35, what="reconnect after outage")
        assert (await http.get(exporter.web.url + "/-/ready")).status_code == 200


@pytest.fixture
def captured_logs() -> io.StringIO:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buffer = io.StringIO()
    yield buffer  # type: ignore[misc]
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


async def test_secret_and_token_never_in_logs_or_metrics(captured_logs: io.StringIO) -> None:
    canary = "canary-SECRET-7f3e9a2c"
    redactor = logs.setup("debug", "logfmt", stream=captured_logs)
    tokens: list[str] = []
    config = SimulatorConfig(client_secret=canary, token_lifetime_seconds=8)
    async with running(config, redactor=redactor) as (sim, exporter), httpx.AsyncClient() as http:
        await wait_for(lambda: connected(exporter), what="subscription")
        tokens.append(exporter.tokens.token.value)  # type: ignore[union-attr]
        await wait_for(lambda: exporter.stream.rollovers["token_refresh"] == 1, timeout=10, what="rollover")
        tokens.append(exporter.tokens.token.value)  # type: ignore[union-attr]
        sim.publish(event("a1", "c1", 0.1))
        await sim.drop_streams()
        sim.config.client_secret = "rotated"  # the exporter's secret is now wrong: invalid_client
        sim.expire_tokens()
        await wait_for(lambda: exporter.tokens.credentials_rejected, what="invalid_client")
        metrics = (await http.get(exporter.metrics_url)).text
        ready = (await http.get(exporter.web.url + "/-/ready")).text
    text = captured_logs.getvalue()
    assert "invalid_client" in text  # the failure was logged...
    for secret in (canary, *tokens):
        assert secret not in text  # ...without the secret or any token
        assert secret not in metrics
        assert secret not in ready


async def test_a_refused_connection_is_described_by_host_and_cause() -> None:
    """Like the notifications path (issue 10): the host and the cause, not aiohttp's wrapper."""
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stream = StreamState()
    token = Token("t", 3600.0, 0.0, 3600.0)
    tokens = SimpleNamespace(token=token, current=AsyncMock(return_value=token))
    source = AnalyticsWebSocketSource(
        api_base_url=f"http://127.0.0.1:{port}",
        tokens=cast(TokenManager, tokens),
        ingest=Ingest(AgentTracker()),
        stream=stream,
        queue_ids=["q1"],
        agent_ids=[],
    )
    task = asyncio.ensure_future(source.connect_with_retry())
    try:
        await wait_for(lambda: "refused" in stream.last_error, timeout=30, what="the refusal recorded")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await source.dialer.close()
    assert stream.last_error == f"cannot connect to 127.0.0.1:{port}: connection refused"
