"""The fault-injection suite: each scenario against a real exporter on a real (faulty) simulator.

For every scenario the harness checks what the issue promises:
- the process stays up (no task of the exporter ends) and the stream is back within its bound;
- /-/ready tells the truth (503 with a reason while the stream or token is down, 200 once back);
- every message the server sent after recovery is accounted: the exporter's outcomes other than
  heartbeat/control grow by exactly what the simulator delivered;
- the canary client secret and every token are absent from the logs (debug level), /-/ready,
  /metrics, the recorded errors (`last_error`) and `check` output.
"""

from __future__ import annotations

import asyncio
import base64
import io
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from genesys_cloud_simulator import SimulatorConfig

from genesys_sentiment_exporter.app import Exporter
from genesys_sentiment_exporter.logs import Redactor
from tests.fault.faulty import (
    CANARY_SECRET,
    FaultySimulator,
    captured_logs,
    conversation_body,
    json_answer,
    status,
)
from tests.live_helpers import settings_for, wait_for

QUEUE_TOPIC = "v2.routing.queues.q1.conversations"
RECONNECT_BOUND = 10.0  # seconds from the fault to a subscribed stream (backoff caps at 30 s; faults here are one-off)


def refusals_kept_the_channel(sim: FaultySimulator, exporter: Exporter) -> None:
    """Issue 9 item 5: a 4xx to the base topics' PUT is a counted rejection, asked again on the same
    channel: no new channel, no retry storm (the two refused PUTs, then the one that succeeds)."""
    assert sim.notifications.channels_created == 1
    assert sim.faults[0].hits == 2
    assert [m for m, _c, _t in sim.notifications.subscription_requests if m == "PUT"] == ["PUT"]
    assert exporter.source.session.rejected["http_400"] == 2  # type: ignore[attr-defined]


def hang(seconds: float) -> Callable[[web.Request], Awaitable[web.StreamResponse | None]]:
    async def answer(_request: web.Request) -> web.StreamResponse | None:
        await asyncio.sleep(seconds)
        return None

    return answer


def sockets(sim: FaultySimulator) -> list[Any]:
    return [c.socket for c in sim.notifications.channels.values() if c.socket is not None]


def transport_of(sock: Any) -> asyncio.Transport:
    return sock.ws._req.transport  # type: ignore[no-any-return]


async def close_with(sim: FaultySimulator, code: int) -> None:
    for sock in sockets(sim):
        sock.close(code)


async def drop_mid_frame(sim: FaultySimulator) -> None:
    """Half a text frame (header says 1 000 bytes, 20 arrive), then the TCP connection is gone: 1006."""
    for sock in sockets(sim):
        transport = transport_of(sock)
        transport.write(b"\x81\x7e\x03\xe8" + b'{"topicName":"v2.rou')
        transport.abort()


async def reset(sim: FaultySimulator) -> None:
    """A TCP reset (RST, SO_LINGER 0), not a close."""
    for sock in sockets(sim):
        transport = transport_of(sock)
        raw = transport.get_extra_info("socket")
        if raw is not None:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()


async def restart(sim: FaultySimulator) -> None:
    port = int(sim.base_url.rsplit(":", 1)[1])
    await sim.stop()
    await asyncio.sleep(0.3)
    await sim.start("127.0.0.1", port)


async def socket_closing_storm(sim: FaultySimulator) -> None:
    for _ in range(10):
        sim.notifications.socket_closing(close_after=0.5)
        await asyncio.sleep(0.05)


async def channel_gone(sim: FaultySimulator) -> None:
    for channel_id in list(sim.notifications.channels):
        sim.notifications.delete_channel(channel_id, close_socket=False)  # HEAD now answers 404


async def silence(sim: FaultySimulator, exporter: Exporter) -> None:
    policy = exporter.source.watchdog  # type: ignore[attr-defined]
    policy.silence, policy.ping_after = 1.0, 0.2
    sim.notifications.config.notifications_heartbeat_seconds = 3600  # new sockets stay silent too...
    await wait_for(lambda: exporter.stream.disconnects["heartbeat_timeout"] >= 1, timeout=10, what="watchdog")
    policy.silence, policy.ping_after = 25.0, 12.0  # ...until the scenario ends


@dataclass
class Scenario:
    name: str
    during: Callable[[FaultySimulator, Exporter], Awaitable[None]] | None = None  # fault on a running stream
    before: Callable[[FaultySimulator], None] | None = None  # fault before the exporter starts
    counted: Callable[[Exporter], bool] | None = None  # the fault left its trace in the metrics
    after: Callable[[FaultySimulator, Exporter], None] | None = None  # what the recovery must not have done


SCENARIOS = [
    Scenario("close_1001", lambda s, e: close_with(s, 1001), counted=lambda e: e.stream.disconnects["1001"] >= 1),
    Scenario("close_1011", lambda s, e: close_with(s, 1011), counted=lambda e: e.stream.disconnects["1011"] >= 1),
    Scenario(
        "drop_1006_mid_frame", lambda s, e: drop_mid_frame(s), counted=lambda e: e.stream.disconnects["1006"] >= 1
    ),
    Scenario("tcp_reset", lambda s, e: reset(s), counted=lambda e: sum(e.stream.disconnects.values()) >= 1),
    Scenario("server_restart", lambda s, e: restart(s), counted=lambda e: sum(e.stream.disconnects.values()) >= 1),
    Scenario("silence", silence, counted=lambda e: e.stream.disconnects["heartbeat_timeout"] >= 1),
    Scenario(
        "socket_closing_storm",
        lambda s, e: socket_closing_storm(s),
        counted=lambda e: e.stream.rollovers["socket_closing"] >= 1,
    ),
    Scenario(
        "channel_head_404", lambda s, e: channel_gone(s), counted=lambda e: e.stream.rollovers["channel_gone"] >= 1
    ),
    Scenario(
        "token_429",
        before=lambda s: s.fail_token_requests(2, 429, retry_after=0.2),
        counted=lambda e: e.tokens.requests["rate_limited"] == 2,
    ),
    Scenario(
        "token_500",
        before=lambda s: s.fail_token_requests(2, 500),
        counted=lambda e: e.tokens.requests["server_error"] == 2,
    ),
    Scenario(
        "subscription_400",
        before=lambda s: s.inject("PUT", "/api/v2/notifications/channels/", status(400, "bad"), times=2) and None,
        after=refusals_kept_the_channel,
    ),
    Scenario(
        "subscription_500",
        before=lambda s: s.inject("PUT", "/api/v2/notifications/channels/", status(503, "busy"), times=2) and None,
    ),
    Scenario(
        "subscription_429",
        before=lambda s: (
            s.inject(
                "PUT", "/api/v2/notifications/channels/", status(429, "slow down", {"Retry-After": "0.2"}), times=2
            )
            and None
        ),
        counted=lambda e: e.source.rest.results["429"] >= 2,  # type: ignore[attr-defined]
    ),
    Scenario(
        "subscription_without_entities",
        before=lambda s: s.inject("PUT", "/api/v2/notifications/channels/", json_answer({}), times=2) and None,
    ),
    Scenario(
        "channel_answer_nested",
        before=lambda s: (
            s.inject("POST", "/api/v2/notifications/channels", status(200, '{"a":' * 5000 + "1" + "}" * 5000), times=2)
            and None
        ),
    ),
]


async def body(http: httpx.AsyncClient, url: str) -> tuple[int, str]:
    response = await http.get(url)
    return response.status_code, response.text


def data_outcomes(exporter: Exporter) -> int:
    messages = exporter.ingest.messages
    return sum(messages.values()) - messages["heartbeat"] - messages["control"]


async def account(sim: FaultySimulator, exporter: Exporter, calls: int = 5) -> None:
    """Publish `calls` calls (connect, three scores, wrapup) and require every delivered frame accounted."""
    sent_before, seen_before = sim.notifications.messages_sent, data_outcomes(exporter)
    tag = time.monotonic_ns()
    for i in range(calls):
        conversation, agent = f"conv-{tag}-{i}", f"agent-{i}"
        sim.notifications.publish(QUEUE_TOPIC, conversation_body(conversation, agent, "q1"))
        topic = f"v2.speechandtextanalytics.conversation.{conversation}.sentiment"
        await wait_for(lambda t=topic: sim.notifications.subscribed(t), what="sentiment topic")  # type: ignore[misc]
        for score in (-0.2, -0.4, -0.6):
            sim.notifications.publish(topic, {"conversationId": conversation, "sentimentOverallScore": score})
        sim.notifications.publish(QUEUE_TOPIC, conversation_body(conversation, agent, "q1", "disconnected"))
    sent = sim.notifications.messages_sent - sent_before
    assert sent >= calls * 5
    try:
        await wait_for(lambda: data_outcomes(exporter) - seen_before == sent, what=f"{sent} frames accounted")
    except AssertionError:
        print(dict(exporter.ingest.messages), data_outcomes(exporter) - seen_before, len(sockets(sim)))
        raise


def secrets_of(exporter: Exporter, tokens: set[str]) -> list[str]:
    basic = base64.b64encode(f"{exporter.settings.client_id}:{CANARY_SECRET}".encode()).decode()
    return [CANARY_SECRET, basic, *tokens]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_scenario(scenario: Scenario) -> None:
    sim = FaultySimulator(SimulatorConfig(client_secret=CANARY_SECRET, notifications_heartbeat_seconds=1.0))
    await sim.start()
    if scenario.before is not None:
        scenario.before(sim)
    tokens: set[str] = set()
    texts: list[str] = []
    with captured_logs("debug") as (logs, redactor):
        exporter = Exporter(
            settings_for(sim, source="notifications", queue_id=["q1"], notifications_channel_probe_seconds=0.5),
            redactor,
        )
        exporter.tokens.on_token = lambda token: (tokens.add(token.value), exporter._new_token(token))  # type: ignore[func-returns-value]
        await exporter.start()
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
                ready_url = exporter.web.url + "/-/ready"
                await wait_for(
                    lambda: exporter.stream.connected, timeout=RECONNECT_BOUND + 5, what="first subscription"
                )
                if scenario.during is not None:
                    await account(sim, exporter, calls=2)
                    texts.append((await body(http, ready_url))[1])
                    started = time.monotonic()
                    await scenario.during(sim, exporter)
                    if scenario.counted is not None:
                        await wait_for(lambda: scenario.counted(exporter), what="the fault seen")  # type: ignore[misc]
                    if not exporter.stream.connected:
                        code, text = await body(http, ready_url)
                        texts.append(text)
                        if not exporter.stream.connected:  # still down when answered: it must say so
                            assert code == 503 and "stream" in text, text
                    await wait_for(lambda: exporter.stream.connected, timeout=RECONNECT_BOUND, what="stream back")
                    took = time.monotonic() - started
                    print(f"scenario {scenario.name}: stream back {took:.2f} s after the fault")
                # Settled: one channel each side (a rollover's overlap over), so no frame is in flight to a
                # socket either side is closing; then every frame the simulator delivers must be accounted.
                live = exporter.source.live  # type: ignore[attr-defined]
                await wait_for(lambda: len(live) == 1 and len(sockets(sim)) == 1, timeout=10, what="settled")
                code, text = await body(http, ready_url)
                texts.append(text)
                assert code == 200, text
                await account(sim, exporter)
                if scenario.counted is not None:
                    assert scenario.counted(exporter), scenario.name
                if scenario.after is not None:
                    scenario.after(sim, exporter)
                texts.append((await body(http, exporter.metrics_url))[1])
                assert exporter.running, "an exporter task ended"  # one that stops ends the run
                texts += [exporter.stream.last_error, exporter.tokens.last_error]
        finally:
            await exporter.stop()
            await sim.stop()
    texts.append(logs.getvalue())
    for secret in secrets_of(exporter, tokens):
        for text in texts:
            assert secret not in text


async def test_refused_base_topics_keep_readiness_false_and_are_asked_again_on_the_same_channel() -> None:
    """A 403 naming the missing permissions: counted, logged once per answer with the topic and the
    permissions, /-/ready 503 and `check` says what to grant; once granted, the same channel subscribes."""
    sim = FaultySimulator(SimulatorConfig(client_secret=CANARY_SECRET, notifications_heartbeat_seconds=1.0))
    await sim.start()
    refusal = {
        "message": "Subscription rejected",
        "code": "missing.permissions",
        "status": 403,
        "messageParams": {"missingPermissions": "routing:queue:view, analytics:queueObservation:view"},
    }
    fault = sim.inject("PUT", "/api/v2/notifications/channels/", json_answer(refusal, 403))
    with captured_logs("debug") as (logs, redactor):
        exporter = Exporter(settings_for(sim, source="notifications", queue_id=["q1"]), redactor)
        await exporter.start()
        try:
            source = exporter.source
            async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
                await wait_for(lambda: fault.hits >= 2, timeout=20, what="the refused PUT asked again")
                code, text = await body(http, exporter.web.url + "/-/ready")
                assert code == 503 and "base topics refused with HTTP 403" in text, text
                report = source.subscription_report()
                assert any("routing:queue:view" in line for ok, _w, line in report if not ok), report
                assert source.session.rejected["http_403"] == fault.hits  # type: ignore[attr-defined]
                sim.clear()  # the permission is granted
                await wait_for(lambda: exporter.stream.connected, timeout=30, what="subscribed after the grant")
                assert (await body(http, exporter.web.url + "/-/ready"))[0] == 200
            assert sim.notifications.channels_created == 1  # every attempt on the first channel
            assert fault.hits <= 6  # a slow backoff (2 s doubling), not a retry storm
            assert QUEUE_TOPIC in sim.notifications.channels[next(iter(sim.notifications.channels))].topics
        finally:
            await exporter.stop()
            await sim.stop()
    refused = [line for line in logs.getvalue().splitlines() if "refused with HTTP 403" in line]
    assert refused and QUEUE_TOPIC in refused[0] and "analytics:queueObservation:view" in refused[0], refused


# -- failures that do not recover by themselves: the truth in /-/ready and `check`, nothing leaked --


async def _unrecoverable(base_overrides: dict[str, Any], expect: str, tmp_path: Path | None = None) -> None:
    sim = FaultySimulator(SimulatorConfig(client_secret=CANARY_SECRET))
    await sim.start()
    buffer = io.StringIO()
    try:
        with captured_logs("debug") as (logs, redactor):
            exporter = Exporter(settings_for(sim, source="notifications", queue_id=["q1"], **base_overrides), redactor)
            await exporter.start()
            try:
                async with httpx.AsyncClient(trust_env=False) as http:
                    await wait_for(lambda: expect in exporter.tokens.last_error, timeout=15, what=expect)
                    code, text = await body(http, exporter.web.url + "/-/ready")
                    metrics = (await body(http, exporter.metrics_url))[1]
                    healthy = (await body(http, exporter.web.url + "/-/healthy"))[0]
            finally:
                await exporter.stop()
            buffer.write(logs.getvalue())
    finally:
        await sim.stop()
    assert code == 503 and expect in text, text
    assert healthy == 200
    for secret in (CANARY_SECRET, base64.b64encode(f"demo-client:{CANARY_SECRET}".encode()).decode()):
        assert secret not in text and secret not in metrics and secret not in buffer.getvalue()


async def test_invalid_client_is_reported_not_retried_hot() -> None:
    await _unrecoverable({"client_secret": "wrong-secret-value"}, "invalid_client")


async def test_dns_failure_names_the_host() -> None:
    await _unrecoverable({"login_base_url": "https://login.invalid"}, "DNS lookup failed")


async def test_token_request_that_hangs_times_out_and_recovers() -> None:
    sim = FaultySimulator()
    sim.inject("POST", "/oauth/token", hang(12.0), times=1)
    await sim.start()
    exporter = Exporter(settings_for(sim, source="notifications", queue_id=["q1"]), Redactor())
    await exporter.start()
    try:
        await wait_for(lambda: "timed out" in exporter.tokens.last_error, timeout=15, what="token timeout")
        assert exporter.ready_reason() is not None
        await wait_for(lambda: exporter.stream.connected, timeout=10, what="recovered")
        assert exporter.tokens.requests["network_error"] == 1
    finally:
        await exporter.stop()
        await sim.stop()


async def test_an_unverifiable_login_certificate_is_named(tmp_path: Path) -> None:
    import ssl

    from tests.test_web import openssl_cert

    cert, key = openssl_cert(tmp_path, "login")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    runner = web.AppRunner(web.Application())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    try:
        port = runner.addresses[0][1]
        await _unrecoverable({"login_base_url": f"https://127.0.0.1:{port}"}, "certificate verify failed")
    finally:
        await runner.cleanup()


async def test_a_peer_ignoring_the_close_handshake_does_not_delay_stop() -> None:
    """Item 15: the socket's peer never answers our close frame; stop still finishes within 2 s."""

    async def deaf_socket(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoclose=False, autoping=False)
        await ws.prepare(request)
        for _ in range(600):  # heartbeats keep it looking alive; frames from the client are never read
            await ws.send_str('{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}')
            await asyncio.sleep(0.1)
        return ws

    sim = FaultySimulator()
    sim.inject("GET", "/streaming/channels/", deaf_socket)  # type: ignore[arg-type]
    await sim.start()
    exporter = Exporter(settings_for(sim, source="notifications", queue_id=["q1"]), Redactor())
    await exporter.start()
    try:
        await wait_for(lambda: exporter.stream.connected, what="connected to the deaf peer")
        await wait_for(lambda: exporter.ingest.messages["heartbeat"] >= 2, what="its heartbeats")
        started = time.monotonic()
        await asyncio.wait_for(exporter.stop(), timeout=2.0)  # the bound
        print(f"stop with a deaf peer: {time.monotonic() - started:.2f} s")
    finally:
        await sim.stop()
