"""Ingest throughput: the exporter's real per-message path against a bare `websockets` client.

Every client connects to the same blasting server (another process), sends the
subscribe message, waits for the acknowledgement and then times how long it
takes to consume every frame until the server's close. Within a round the
clients run one after another in an order that alternates from round to round, so
drift (thermal, other load) hits both of them; the subject's figure is the
median over rounds of its rate / the baseline's rate in the same round.

- baseline: `websockets.asyncio.client.connect()`, then `json.loads` on each
  frame and nothing else (the budget's yardstick).
- subject (budgeted): `AnalyticsWebSocketSource.connect_with_retry()` (its real
  aiohttp `open()`, subscribe, wait for the ack), then its real `read()` loop
  feeding a real `Ingest` and `AgentTracker`. It must account for every frame.

With `profile=True`, one more subject round runs under cProfile (socket,
event loop and all) and its listing is returned with the result.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import json
import logging
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from websockets.asyncio.client import connect

from bench.blast_server import BlastServer
from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.oauth import Token, TokenManager
from genesys_sentiment_exporter.sources import analytics_protocol as proto
from genesys_sentiment_exporter.sources.analytics_websocket import AnalyticsWebSocketSource
from genesys_sentiment_exporter.stream_state import StreamState
from genesys_sentiment_exporter.tracker import AgentTracker

SUBSCRIBE = proto.subscribe_message([], [], 30)
# The same message-size limit and opening timeout as the exporter's source (AnalyticsWebSocketSource.open).
CONNECT_OPTIONS: dict[str, Any] = {"max_size": 2**20, "open_timeout": 10.0}

BASELINE = "baseline"
SUBJECT = "subject"


class StubTokens:
    """Stands in for TokenManager: the source only asks it for the current token."""

    def __init__(self) -> None:
        now = time.time()
        self.token = Token(value="bench-token", lifetime=3600.0, issued_at=now, expires_at=now + 3600.0)

    async def current(self) -> Token:
        return self.token

    async def obtain(self) -> Token:
        return self.token

    async def wait_newer(self, _token: Token) -> Token:
        await asyncio.Event().wait()
        return self.token


def new_source(base_url: str, ingest: Ingest | None = None) -> AnalyticsWebSocketSource:
    return AnalyticsWebSocketSource(
        api_base_url=base_url,
        tokens=cast(TokenManager, StubTokens()),
        ingest=ingest if ingest is not None else Ingest(AgentTracker()),
        stream=StreamState(),
        queue_ids=[],
        agent_ids=[],
        heartbeat_seconds=30,
    )


@dataclass
class Outcome:
    rate: float  # messages per second
    source: AnalyticsWebSocketSource | None = None


async def baseline_round(server: BlastServer) -> Outcome:
    """Bare client: receive every frame and decode it."""
    async with connect(server.ws_url, **CONNECT_OPTIONS) as ws:
        await ws.send(SUBSCRIBE)
        json.loads(await ws.recv())  # the acknowledgement
        loads = json.loads
        received = 0
        start = time.perf_counter()
        async for frame in ws:
            loads(frame)
            received += 1
        elapsed = time.perf_counter() - start
    if received != server.frames:
        raise RuntimeError(f"baseline received {received} frames, expected {server.frames}")
    return Outcome(received / elapsed)


async def source_round(server: BlastServer, profiler: cProfile.Profile | None = None) -> Outcome:
    """The exporter's source over a real socket into a real Ingest, through its own connect and read()."""
    source = new_source(server.base_url)
    try:
        conn = await source.connect_with_retry()
        before = sum(source.ingest.messages.values())  # the acknowledgement, counted as "control"
        if profiler is not None:
            profiler.enable()
        start = time.perf_counter()
        code = await source.read(conn)
        elapsed = time.perf_counter() - start
        if profiler is not None:
            profiler.disable()
        await conn.ws.close()
    finally:
        await source.dialer.close()
    handled = sum(source.ingest.messages.values()) - before
    if handled != server.frames:
        raise RuntimeError(f"subject accounted for {handled} frames, expected {server.frames} (close {code})")
    if code != "1000":
        raise RuntimeError(f"subject's socket closed with {code}, expected 1000")
    return Outcome(handled / elapsed, source)


CLIENTS: dict[str, Callable[[BlastServer], Awaitable[Outcome]]] = {
    BASELINE: baseline_round,
    SUBJECT: source_round,
}


@dataclass
class IngestResult:
    frames: int
    mix: dict[str, int]
    deflate: bool
    rates: dict[str, list[float]] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    tracked_agents: int = 0
    cprofile: str = ""

    def ratios(self, name: str) -> list[float]:
        return [rate / base for rate, base in zip(self.rates[name], self.rates[BASELINE], strict=True)]

    def ratio(self, name: str = SUBJECT) -> float:
        return statistics.median(self.ratios(name))

    def as_dict(self) -> dict[str, Any]:
        clients = {
            name: {
                "msgs_per_s_median": statistics.median(rates),
                "us_per_msg_median": 1e6 / statistics.median(rates),
                "median_ratio_vs_baseline": self.ratio(name),
                "ratios": self.ratios(name),
            }
            for name, rates in self.rates.items()
        }
        return {
            "frames_per_round": self.frames,
            "frame_mix": self.mix,
            "server_permessage_deflate": self.deflate,
            "rounds": len(self.rates[BASELINE]),
            "median_ratio": self.ratio(),
            "clients": clients,
            "subject_outcomes_last_round": self.outcomes,
            "tracked_agents_last_round": self.tracked_agents,
        }


async def profiled_round(server: BlastServer, limit: int = 25) -> str:
    """cProfile (tottime order) of one subject round's read(): aiohttp's reader, the loop, parse, Ingest."""
    profiler = cProfile.Profile()
    await source_round(server, profiler)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(limit)
    return out.getvalue()


async def run_rounds(server: BlastServer, rounds: int, profile: bool = False) -> IngestResult:
    result = IngestResult(server.frames, server.mix, server.deflate, {name: [] for name in CLIENTS})
    names = list(CLIENTS)
    for name in names:  # warm-up, discarded: imports, first connections, allocator growth
        await CLIENTS[name](server)
    for i in range(rounds):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()  # every client starts from the same heap state, not with another's garbage
            outcome = await CLIENTS[name](server)
            result.rates[name].append(outcome.rate)
            if outcome.source is not None:
                ingest = outcome.source.ingest
                result.outcomes = dict(sorted(ingest.messages.items()))
                result.tracked_agents = len(ingest.tracker.agents)
    if profile:
        gc.collect()
        result.cprofile = await profiled_round(server)
    return result


def run(frames: int, rounds: int, agents: int = 2000, deflate: bool = False, profile: bool = False) -> IngestResult:
    # The generated stream carries a few null scores on purpose; their rate-limited warning is not news here.
    logging.getLogger("exporter").setLevel(logging.ERROR)
    with BlastServer(frames, agents=agents, deflate=deflate) as server:
        return asyncio.run(run_rounds(server, rounds, profile))
