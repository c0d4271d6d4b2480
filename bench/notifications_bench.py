"""The Notifications path (the default source): its ingest ratio against a bare client (issue 13, goal 5).

A loopback server in another process (`blast_server.Blaster`) sends a Notifications channel's stream
as fast as the socket takes it: for each of N calls, the conversation events the simulator publishes
on the user and the queue topics (`v2.users.{id}.conversations`, `v2.routing.queues.{id}.conversations`:
each transition arrives twice and is de-duplicated), then its low-latency transcript
(`v2.conversations.{id}.transcription`: a keepalive, then batches of a customer line and the
agent's answer, each after its partial), then its end; calls interleaved. Clients, one after
another in an order that alternates per round:
- `bare`: an aiohttp WebSocket client that receives and `json.loads` each frame (the yardstick);
- `path` (budgeted): the same aiohttp socket feeding the session core the shell drives
  (`NotificationsSession.receive`, then `apply` into a real `Ingest`/`AgentTracker`), every final
  customer utterance scored by the default analyzer (VADER); built through the session's public API
  only, so the shell's refactoring does not move what is measured;
- `path_constant_scorer` (informational): the same with a constant scorer, so the gap to `path` is
  what scoring costs.
Every frame must end in exactly one counted outcome, or the run fails. The figure is the median over
rounds of the rate / the bare client's rate in the same round.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import multiprocessing
import multiprocessing.connection
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from genesys_cloud_simulator.notifications_conversations import ConversationBook
from genesys_cloud_simulator.scenarios import CallEvent
from genesys_cloud_simulator.transcripts import CUSTOMER_LINES, TranscriptBook, TranscriptSettings

from bench.blast_server import Blaster, ChannelServer
from genesys_sentiment_exporter.analysis import UtteranceAnalyzer, build_analyzer
from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.sources.notifications_session import NotificationsSession, apply
from genesys_sentiment_exporter.tracker import AgentTracker, TrackerLimits

T0 = 1_777_629_602.0
SUBSCRIBE = '{"message":"ping"}'  # the blaster starts after the client's first text frame
BARE, PATH, CONSTANT = "bare_aiohttp", "path", "path_constant_scorer"


def _frame(topic: str, body: dict[str, Any]) -> str:
    return json.dumps({"topicName": topic, "version": "2", "eventBody": body, "metadata": {"CorrelationId": "x"}})


def build(calls: int = 300, lines_per_call: int = 12) -> list[str]:
    """The stream: every call's events on both topics, its transcript, its end; calls interleaved."""
    book = ConversationBook()
    transcripts = TranscriptBook(TranscriptSettings(batch_seconds=1.0, partials=True))
    frames: list[str] = []
    people = [(f"c{n}", f"agent-{n}", f"q{n % 7}") for n in range(calls)]
    for state in ("alerting", "connected"):
        for cid, agent, queue in people:
            event = CallEvent(T0, cid, agent, queue, state, None, False, None, True)
            frames += [_frame(t, b) for t, b in book.apply(event)]
    for cid, _agent, queue in people:
        frames += [_frame(t, b) for t, b in transcripts.connected(cid, queue, T0)]
    now = T0
    for i in range(lines_per_call):
        for n, (cid, _agent, _queue) in enumerate(people):
            transcripts.customer_said(cid, CUSTOMER_LINES[(n + i) % len(CUSTOMER_LINES)][0], now)
        now += 3.0
        frames += [_frame(t, b) for t, b in transcripts.due(now)]
    for state in ("disconnected",):
        for cid, agent, queue in people:
            event = CallEvent(now, cid, agent, queue, state, None, False, None, True)
            frames += [_frame(t, b) for t, b in book.apply(event)]
    return frames


class ConstantScorer:
    """Every utterance 0.1 at no cost: the path without the analyzer's work."""

    name = "constant"
    languages = frozenset({"en"})

    def score(self, text: str) -> float:
        return 0.1


def _serve(pipe: multiprocessing.connection.Connection, calls: int, lines_per_call: int) -> None:
    async def serve() -> None:
        frames = build(calls, lines_per_call)
        server = await asyncio.start_server(Blaster(frames, deflate=False).handle, "127.0.0.1", 0)
        pipe.send({"port": server.sockets[0].getsockname()[1], "frames": len(frames)})
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        server.close()

    with contextlib.suppress(EOFError, KeyboardInterrupt):
        asyncio.run(serve())


def notifications_server(calls: int, lines_per_call: int) -> ChannelServer:
    """The blasting server in its own process (2 cores: server on one, the client measured on the other)."""
    return ChannelServer("notifications server", _serve, calls, lines_per_call)


async def _stream(url: str, each: Any) -> tuple[int, float]:
    async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=2**20) as ws:
        await ws.send_str(SUBSCRIBE)
        await ws.receive()  # the blaster's acknowledgement, before the measured stream
        receive, received = ws.receive, 0
        started = time.perf_counter()
        while True:
            message = await receive()
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            each(message.data)
            received += 1
        return received, time.perf_counter() - started


async def bare_round(server: ChannelServer) -> tuple[float, Counter[str]]:
    received, elapsed = await _stream(server.url, json.loads)
    if received != server.frames:
        raise RuntimeError(f"bare client received {received} frames, expected {server.frames}")
    return received / elapsed, Counter({"decoded": received})


async def path_round(server: ChannelServer, analyzer: UtteranceAnalyzer) -> tuple[float, Counter[str]]:
    session = NotificationsSession(queue_ids=[f"q{n}" for n in range(7)], agent_ids=[], analyzer=analyzer)
    session.start()
    ingest = Ingest(AgentTracker(TrackerLimits(grace_seconds=600, max_agents=100_000)))
    receive, clock, wall = session.receive, time.monotonic, time.time

    def each(frame: str) -> None:  # what the shell does with a channel's frame, minus its REST actions
        apply(ingest, receive(frame, 1, clock(), wall()))

    received, elapsed = await _stream(server.url, each)
    handled = sum(ingest.messages.values())
    if received != server.frames or handled != received:
        raise RuntimeError(f"notifications path: {handled} outcomes for {received} of {server.frames} frames")
    return handled / elapsed, Counter({str(getattr(k, "value", k)): n for k, n in ingest.messages.items()})


@dataclass
class NotificationsResult:
    frames: int
    rates: dict[str, list[float]] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)

    def ratio(self, name: str = PATH) -> float:
        return statistics.median(r / b for r, b in zip(self.rates[name], self.rates[BARE], strict=True))

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames_per_round": self.frames,
            "rounds": len(self.rates[BARE]),
            "median_ratio": self.ratio(),
            "median_ratio_constant_scorer": self.ratio(CONSTANT),
            "frames_per_s_median": {name: statistics.median(rates) for name, rates in self.rates.items()},
            "outcomes_last_round": self.outcomes,
        }


def run(calls: int = 300, lines_per_call: int = 12, rounds: int = 3) -> NotificationsResult:
    async def main() -> NotificationsResult:
        vader, constant = build_analyzer("vader"), UtteranceAnalyzer(ConstantScorer())
        with notifications_server(calls, lines_per_call) as server:
            clients = {
                BARE: lambda: bare_round(server),
                PATH: lambda: path_round(server, vader),
                CONSTANT: lambda: path_round(server, constant),
            }
            result = NotificationsResult(server.frames, {name: [] for name in clients})
            names = list(clients)
            for name in names:  # warm-up, discarded
                await clients[name]()
            for i in range(rounds):
                for name in names[i % 3 :] + names[: i % 3]:
                    gc.collect()
                    rate, outcomes = await clients[name]()
                    result.rates[name].append(rate)
                    if name == PATH:
                        result.outcomes = dict(sorted(outcomes.items()))
            return result

    import logging

    logging.getLogger("exporter").setLevel(logging.ERROR)
    return asyncio.run(main())


if __name__ == "__main__":
    print(json.dumps(run().as_dict(), indent=2))
