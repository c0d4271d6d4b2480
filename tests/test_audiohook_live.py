"""AudioHook end to end over loopback: the simulator plays Genesys, speaks with espeak-ng, and the
exporter recognises (PocketSphinx, in worker processes) and scores what the customer said.

The notifications source attributes the call to its agent, exactly as in production; the audio
never passes through anything but the real socket, the real decoder, VAD, engine and analyzer.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import httpx
import pytest
from genesys_cloud_simulator import SimulatedGenesysCloud, SimulatorConfig
from genesys_cloud_simulator.audiohook_client import (
    AudioHookCaller,
    AudioHookClient,
    signed_headers,
    silence,
    synthesise,
)
from genesys_cloud_simulator.scenarios import CallEvent

from genesys_sentiment_exporter.app import Exporter
from genesys_sentiment_exporter.audiohook.server import AudioHookSource
from genesys_sentiment_exporter.sources.notifications_protocol import sentiment_topic
from tests.live_helpers import settings_for, wait_for

API_KEY = "c2ltdWxhdGVkLWF1ZGlvaG9vay1rZXk="
SECRET = base64.b64encode(b"simulated audiohook client secret").decode()
HOSTILE = ("I am really angry.", "This is awful.", "I am very angry. This is awful and horrible.")
POLITE = ("I really appreciate your help.", "That is wonderful, thank you.")


def speech(lines: tuple[str, ...]) -> bytes:
    return b"".join(synthesise(line) + silence(1.0) for line in lines)


@asynccontextmanager
async def live(**overrides: Any) -> AsyncIterator[tuple[SimulatedGenesysCloud, Exporter, AudioHookSource]]:
    sim = SimulatedGenesysCloud(SimulatorConfig())
    await sim.start()
    values: dict[str, Any] = {
        "source": "notifications,audiohook",
        "queue_id": ["q1"],
        "audiohook_api_key": API_KEY,
        "audiohook_client_secret": SECRET,
        "audiohook_workers": 1,
    }
    values.update(overrides)
    exporter = Exporter(settings_for(sim, **values))
    source = exporter.audiohook
    assert source is not None
    source.refusal_delay = 0.0
    await exporter.start()
    try:
        await wait_for(lambda: exporter.stream.connected and source.started.is_set(), 60, "stream and workers")
        yield sim, exporter, source
    finally:
        await exporter.stop()
        await sim.stop()


async def connect_call(sim: SimulatedGenesysCloud, conversation: str, agent: str) -> None:
    for state in ("alerting", "connected"):
        sim.notifications.publish_call(CallEvent(0.0, conversation, agent, "q1", state, None, False, None, True))
    await wait_for(lambda: sim.notifications.subscribed(sentiment_topic(conversation)), what="call tracked")


def client(exporter: Exporter, **overrides: Any) -> AudioHookClient:
    values: dict[str, Any] = {"url": exporter.web.url.replace("http", "ws") + "/audiohook", "api_key": API_KEY}
    values["client_secret"] = SECRET
    values.update(overrides)
    return AudioHookClient(**values)


async def scrape(exporter: Exporter) -> str:
    async with httpx.AsyncClient(trust_env=False) as http:
        return (await http.get(exporter.metrics_url)).text


def sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_hostile_customer_turns_the_agents_average_negative_and_polite_one_positive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with live() as (sim, exporter, source):
        await connect_call(sim, "conv-sour", "agent-sour")
        await connect_call(sim, "conv-kind", "agent-kind")
        sour, kind = client(exporter), client(exporter)
        for session, conversation in ((sour, "conv-sour"), (kind, "conv-kind")):
            await session.connect()
            opened = await session.open(conversation)
            assert opened["parameters"]["media"][0]["channels"] == ["external"]
        # Both calls at once, four times faster than real time (Genesys replays its buffer faster too).
        await asyncio.gather(sour.stream(speech(HOSTILE), realtime=4.0), kind.stream(speech(POLITE), realtime=4.0))
        agents = exporter.tracker.agents
        await wait_for(lambda: len(agents["agent-sour"].scores) >= 2 and len(agents["agent-kind"].scores) >= 2, 60)
        text = await scrape(exporter)
        sour_average = sample(text, "genesys_agent_sentiment_rolling_average", agent_id="agent-sour")
        kind_average = sample(text, "genesys_agent_sentiment_rolling_average", agent_id="agent-kind")
        assert sour_average is not None and sour_average < -0.3, text
        assert kind_average is not None and kind_average > 0.2, text
        assert sample(text, "genesys_audiohook_sessions_active") == 2
        assert sample(text, "genesys_audiohook_utterances_total", outcome="reading") == pytest.approx(
            len(agents["agent-sour"].scores) + len(agents["agent-kind"].scores)
        )
        received = sample(text, "genesys_audiohook_audio_received_seconds_total", channel="external")
        assert received is not None and received > 10
        assert sample(text, "genesys_audiohook_audio_received_seconds_total", channel="internal") == 0
        latency = sample(text, "genesys_audiohook_utterance_latency_seconds_count")
        assert latency is not None and latency >= 4
        await sour.close()
        await kind.close()
        await wait_for(lambda: not source.live, what="sessions finished")
        text = await scrape(exporter)
        assert sample(text, "genesys_audiohook_sessions_total", outcome="completed") == 2
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert API_KEY not in logged and SECRET not in logged


async def test_refused_upgrades_are_counted_by_reason_and_never_upgraded() -> None:
    async with live() as (_sim, exporter, _source):
        url = exporter.web.url.replace("http", "ws") + "/audiohook"
        cases = {
            "bad_signature": signed_headers(url, API_KEY, base64.b64encode(b"wrong secret").decode(), "o", "s"),
            "unknown_api_key": signed_headers(url, "d3Jvbmcta2V5", SECRET, "o", "s"),
            "missing_signature": signed_headers(url, API_KEY, "", "o", "s"),
            "stale_signature": signed_headers(url, API_KEY, SECRET, "o", "s", now=1_000_000_000),
        }
        replayed = signed_headers(url, API_KEY, SECRET, "o", str(uuid.uuid4()))
        async with aiohttp.ClientSession() as http:
            for headers in cases.values():
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(url, headers=headers)
                assert refused.value.status == 401
            first = await http.ws_connect(url, headers=replayed)
            await first.close()
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(url, headers=replayed)
            body = await (await http.get(url, headers=cases["bad_signature"])).text()
        assert body == "Unauthorized\n"
        text = await scrape(exporter)
        for reason in (*cases, "replayed_signature"):
            expected = 2 if reason == "bad_signature" else 1  # the plain GET too
            assert sample(text, "genesys_audiohook_connections_refused_total", reason=reason) == expected, reason
        assert SECRET not in text and API_KEY not in text


async def test_misbehaving_clients_end_in_counted_outcomes() -> None:
    async with live() as (sim, exporter, source):
        await connect_call(sim, "conv-1", "agent-1")
        # Sequence gap: the server disconnects with an error and the client closes.
        gap = client(exporter)
        await gap.connect()
        await gap.open("conv-1")
        await gap.send("ping", seq=gap.seq + 2)
        disconnect = await gap.expect("disconnect")
        assert disconnect["parameters"]["reason"] == "error"
        await gap.expect("closed")
        await gap.aclose()
        # Pause and resume: audio while paused is dropped and counted.
        paused = client(exporter)
        await paused.connect()
        await paused.open("conv-1")
        await paused.send("paused")
        await paused.stream(silence(1.0), realtime=0)
        await paused.send("resumed", {"start": paused.position(), "discarded": "PT1S"})
        await paused.send("ping")
        await paused.expect("pong")
        await paused.close()
        # Abrupt close: no `close` message, the socket just goes.
        abrupt = client(exporter)
        await abrupt.connect()
        await abrupt.open("conv-1")
        await abrupt.stream(silence(0.5), realtime=0)
        await abrupt.aclose()
        # Connection probe: opened without media, closed, not a call.
        probe = client(exporter)
        await probe.connect()
        opened = await probe.open("00000000-0000-0000-0000-000000000000")
        assert opened["parameters"]["media"] == []
        await probe.close()
        # A frame over the 64 KiB the protocol allows: the socket is closed (1009), the frame counted.
        big = client(exporter)
        await big.connect()
        await big.open("conv-1")
        assert big.ws is not None
        await big.ws.send_bytes(bytes(70_000))
        await wait_for(lambda: source.messages["too_large"] == 1, what="oversized frame counted")
        await big.aclose()
        await wait_for(lambda: not source.live, what="sessions finished")
        text = await scrape(exporter)
        assert sample(text, "genesys_audiohook_messages_total", outcome="sequence_error") == 1
        assert sample(text, "genesys_audiohook_messages_total", outcome="audio_paused") == 10
        # 1 s of frames received while paused, plus the 1 s the client reports it withheld (`resumed`).
        assert sample(text, "genesys_audiohook_audio_dropped_seconds_total", reason="paused") == pytest.approx(2.0)
        assert sample(text, "genesys_audiohook_sessions_total", outcome="disconnected") == 1
        assert sample(text, "genesys_audiohook_sessions_total", outcome="completed") == 1
        assert sample(text, "genesys_audiohook_sessions_total", outcome="connection_lost") == 2
        assert sample(text, "genesys_audiohook_sessions_total", outcome="probe") == 1
        lag = sample(text, "genesys_audiohook_recognition_lag_seconds")
        assert lag is not None and math.isfinite(lag)


async def test_speech_of_a_call_nobody_tracks_is_counted_unattributed() -> None:
    async with live() as (_sim, exporter, source):
        session = client(exporter)
        await session.connect()
        await session.open("conv-unknown")
        await session.stream(speech(HOSTILE[:1]), realtime=0)
        await session.close()
        await wait_for(lambda: source.utterances["unattributed"] >= 1, 30, "unattributed utterance")
        assert not exporter.tracker.agents


async def test_the_last_utterance_after_close_still_counts_and_a_transfer_moves_readings() -> None:
    async with live() as (sim, exporter, source):
        await connect_call(sim, "conv-t", "agent-a")
        session = client(exporter)
        await session.connect()
        await session.open("conv-t")
        # The sentence ends with the stream: only the close flushes it, after the socket is gone.
        await session.stream(synthesise(HOSTILE[0]), realtime=0)
        await session.close()
        agents = exporter.tracker.agents
        await wait_for(lambda: "agent-a" in agents and len(agents["agent-a"].scores) == 1, 60, "the flushed reading")
        assert source.utterances["unattributed"] == 0
        # The call moves to agent-b: readings follow it.
        sim.notifications.transfer("conv-t", "agent-b", "q1")
        await wait_for(lambda: "agent-b" in agents and agents["agent-b"].conversation_id == "conv-t", 30)
        again = client(exporter)
        await again.connect()
        await again.open("conv-t")
        await again.stream(speech(HOSTILE[:1]), realtime=0)
        await again.close()
        await wait_for(lambda: len(agents["agent-b"].scores) == 1, 60, "agent-b's reading")
        # agent-a's window (gone after its grace, or still there) got nothing more.
        assert "agent-a" not in agents or len(agents["agent-a"].scores) == 1
        assert source.utterances["reading"] == 2 and source.utterances["unattributed"] == 0


async def test_the_simulator_streams_every_connected_call_like_genesys() -> None:
    """The audio demo's caller: a session per connected call, the sour agent's customer angry, closed at the end."""
    async with live() as (sim, exporter, source):
        url = exporter.web.url.replace("http", "ws") + "/audiohook"
        caller = AudioHookCaller(sim, url, API_KEY, SECRET)
        task = asyncio.create_task(caller.run())
        try:
            await connect_call(sim, "conv-s", "agent-sour")
            agents = exporter.tracker.agents
            await wait_for(lambda: len(agents["agent-sour"].scores) >= 2, 90, "readings from the caller's speech")
            assert agents["agent-sour"].rolling_average < 0
            sim.notifications.publish_call(
                CallEvent(0.0, "conv-s", "agent-sour", "q1", "ended", None, False, None, True)
            )
            await wait_for(lambda: source.sessions_ended["completed"] == 1, 60, "the session closed with the call")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_agent_speech_is_scored_only_when_opted_in_into_its_own_party() -> None:
    async with live(score_parties=["customer", "agent"]) as (sim, exporter, _source):
        await connect_call(sim, "conv-2p", "agent-two")
        session = client(exporter)
        await session.connect()
        opened = await session.open("conv-2p")
        assert opened["parameters"]["media"][0]["channels"] == ["external", "internal"]  # stereo: both parties
        await session.stream(speech(HOSTILE[:2]), speech(POLITE), realtime=4.0)
        customer, agent = exporter.ingest.parties["customer"].agents, exporter.ingest.parties["agent"].agents
        await wait_for(lambda: len(customer["agent-two"].scores) >= 2 and len(agent["agent-two"].scores) >= 2, 60)
        assert customer["agent-two"].rolling_average < 0 < agent["agent-two"].rolling_average
        text = await scrape(exporter)
        assert 'agent_id="agent-two",queue_id="q1",party="agent"' in text
        assert 'agent_id="agent-two",queue_id="q1",party="customer"' in text
        await session.close()
