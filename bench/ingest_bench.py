"""Ingest throughput: the exporter's real per-message path against a bare `websockets` client.

Every client connects to the same blasting server (another process), sends the
subscribe message, waits for the acknowledgement and then times how long it
takes to consume every frame until the server's close. Within a round the
clients run one after another in an order that rotates from round to round, so
drift (thermal, other load) hits all of them; each client's figure is the
median over rounds of its rate / the baseline's rate in the same round.

- baseline: `websockets.asyncio.client.connect()` with the exporter's options,
  then `json.loads` on each frame and nothing else.
- subject (budgeted): `AnalyticsWebSocketSource.connect_with_retry()` (real
  `connect()`, subscribe, wait for the ack), then its real `read()` loop feeding
  a real `Ingest` and `AgentTracker`. It must account for every frame.
- what-ifs (informational, `--whatif`): the fast-path prototype of
  `bench/fastpath.py` on the same websockets connection; the exporter's own
  per-frame code (`_handle(parse(...))`) read through aiohttp's client
  (its frame reader is compiled); the same with Reading/StateChange unfrozen;
  and aiohttp with the fast path. Each must leave the tracker and the outcome
  counts exactly as the subject does.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
from websockets.asyncio.client import connect

from bench.blast_server import BlastServer
from bench.fastpath import FastPathSource, equivalent, unfrozen_models
from exporter.ingest import Ingest
from exporter.oauth import Token, TokenManager
from exporter.sources import analytics_protocol as proto
from exporter.sources.analytics_websocket import AnalyticsWebSocketSource
from exporter.stream_state import StreamState
from exporter.tracker import AgentTracker

SUBSCRIBE = proto.subscribe_message([], [], 30)
# The connect() options the exporter's source passes (see AnalyticsWebSocketSource.open).
CONNECT_OPTIONS: dict[str, Any] = {"max_size": 2**20, "open_timeout": 10.0}

BASELINE = "baseline"
SUBJECT = "subject"
WHATIF_FASTPATH = "whatif_fastpath_websockets"
WHATIF_AIOHTTP = "whatif_aiohttp_exporter_path"
WHATIF_UNFROZEN = "whatif_aiohttp_unfrozen_models"
WHATIF_BOTH = "whatif_aiohttp_fastpath"


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


def new_source(base_url: str, cls: type[AnalyticsWebSocketSource] = AnalyticsWebSocketSource,
               ) -> AnalyticsWebSocketSource:
    return cls(
        api_base_url=base_url,
        tokens=cast(TokenManager, StubTokens()),
        ingest=Ingest(AgentTracker()),
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


def _accounted(source: AnalyticsWebSocketSource, before: int, expected: int, code: str, who: str) -> int:
    handled = sum(source.ingest.messages.values()) - before
    if handled != expected:
        raise RuntimeError(f"{who} accounted for {handled} frames, expected {expected} (close {code})")
    if code != "1000":
        raise RuntimeError(f"{who}'s socket closed with {code}, expected 1000")
    return handled


async def source_round(server: BlastServer, cls: type[AnalyticsWebSocketSource] = AnalyticsWebSocketSource,
                       ) -> Outcome:
    """A source over a real socket into a real Ingest, through its own connect and read()."""
    source = new_source(server.base_url, cls)
    conn = await source.connect_with_retry()
    before = sum(source.ingest.messages.values())  # the acknowledgement, counted as "control"
    start = time.perf_counter()
    code = await source.read(conn)
    elapsed = time.perf_counter() - start
    await conn.ws.close()
    handled = _accounted(source, before, server.frames, code, cls.__name__)
    return Outcome(handled / elapsed, source)


async def aiohttp_round(server: BlastServer, fast: bool) -> Outcome:
    """What-if: the same per-frame code as `read()`, with frames read by aiohttp's WebSocket client."""
    source = new_source(server.base_url, FastPathSource if fast else AnalyticsWebSocketSource)
    wall, stream, monotonic, number = source.wall, source.stream, time.monotonic, 1
    async with aiohttp.ClientSession() as session, session.ws_connect(
        server.ws_url, headers={"Authorization": "Bearer bench-token"}, max_msg_size=2**20, compress=15,
    ) as ws:
        await ws.send_str(source.subscribe)
        ack = await ws.receive()
        if proto.parse(ack.data, wall()).kind != proto.Kind.SUBSCRIBED:
            raise RuntimeError(f"no subscription acknowledgement: {ack!r}")
        source.ingest.count("control")  # as AnalyticsWebSocketSource.open() counts the acknowledgement
        before = sum(source.ingest.messages.values())
        start = time.perf_counter()
        if fast:
            handle_frame = cast(FastPathSource, source).handle_frame
            async for msg in ws:
                now = wall()
                stream.last_message = now
                monotonic()
                handle_frame(msg.data, now, number)
        else:
            handle, parse = source._handle, proto.parse
            async for msg in ws:
                frame = msg.data
                now = wall()
                stream.last_message = now
                monotonic()
                handle(frame, parse(frame, now), number)
        elapsed = time.perf_counter() - start
    handled = _accounted(source, before, server.frames, str(ws.close_code), "aiohttp what-if")
    return Outcome(handled / elapsed, source)


async def _unfrozen(client: Awaitable[Outcome]) -> Outcome:
    with unfrozen_models():
        return await client


Client = Callable[[BlastServer], Awaitable[Outcome]]

CLIENTS: dict[str, Client] = {
    BASELINE: baseline_round,
    SUBJECT: source_round,
}
WHATIFS: dict[str, Client] = {
    WHATIF_FASTPATH: lambda server: source_round(server, FastPathSource),
    WHATIF_AIOHTTP: lambda server: aiohttp_round(server, fast=False),
    WHATIF_UNFROZEN: lambda server: _unfrozen(aiohttp_round(server, fast=False)),
    WHATIF_BOTH: lambda server: aiohttp_round(server, fast=True),
}


@dataclass
class IngestResult:
    frames: int
    mix: dict[str, int]
    deflate: bool
    rates: dict[str, list[float]] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    tracked_agents: int = 0
    whatif_problems: dict[str, list[str]] = field(default_factory=dict)

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
            "whatif_equivalence_problems": self.whatif_problems,
        }


async def run_rounds(server: BlastServer, rounds: int, whatif: bool) -> IngestResult:
    clients = dict(CLIENTS, **(WHATIFS if whatif else {}))
    result = IngestResult(server.frames, server.mix, server.deflate, {name: [] for name in clients})
    names = list(clients)
    for name in names:  # warm-up, discarded: imports, first connections, allocator growth
        await clients[name](server)
    for i in range(rounds):
        shift = i % len(names)
        sources: dict[str, AnalyticsWebSocketSource] = {}
        for name in names[shift:] + names[:shift]:
            gc.collect()  # every client starts from the same heap state, not with another's garbage
            outcome = await clients[name](server)
            result.rates[name].append(outcome.rate)
            if outcome.source is not None:
                sources[name] = outcome.source
        subject = sources[SUBJECT]
        result.outcomes = dict(sorted(subject.ingest.messages.items()))
        result.tracked_agents = len(subject.ingest.tracker.agents)
        for name, source in sources.items():
            if name != SUBJECT:
                problems = equivalent(subject, source)
                if problems:
                    result.whatif_problems[name] = problems
    return result


def run(frames: int, rounds: int, agents: int = 2000, deflate: bool = False, whatif: bool = True) -> IngestResult:
    # The generated stream carries a few null scores on purpose; their rate-limited warning is not news here.
    logging.getLogger("exporter").setLevel(logging.ERROR)
    with BlastServer(frames, agents=agents, deflate=deflate) as server:
        return asyncio.run(run_rounds(server, rounds, whatif))
