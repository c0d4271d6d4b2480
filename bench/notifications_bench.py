"""The Notifications path (the default source): its ingest ratio against a bare client (issue 13, goal 5).

A loopback server in another process (`blast_server.Blaster`) sends a Notifications channel's stream
as fast as the socket takes it: for each of N calls, the conversation events the simulator publishes
on the user and the queue topics (`v2.users.{id}.conversations`, `v2.routing.queues.{id}.conversations`:
each transition arrives twice and is de-duplicated), then its low-latency transcript
(`v2.conversations.{id}.transcription`: a keepalive, then batches of a customer line and the
agent's answer, each after its partial), then its end; calls interleaved. Clients, one after
another in an order that alternates per round:
- `bare`: an aiohttp WebSocket client that receives and `json.loads` each frame (the yardstick);
- `path_constant_scorer` (budgeted): the same aiohttp socket feeding the session core the shell drives
  (`NotificationsSession.receive`, then `apply` into a real `Ingest`/`AgentTracker`: receive, decode,
  route, attribute, de-duplicate, count, track), every final customer utterance "scored" by a constant
  scorer; built through the session's public API only, so the shell's refactoring does not move what
  is measured. This is the ingest path that a bare client receiving and decoding is compared with;
- `path` (reported next to it, not hidden): the same with the default analyzer (VADER).
The analyzer is not ingest and is the bound with it in: VADER costs tens of microseconds per customer
line, about 9 us per frame of this stream averaged, against about 6 us for the bare client's whole
frame, so even a path that cost nothing would reach bare / (bare + analyzer) only. The run measures
the analyzer on the stream's own scored lines and reports that ceiling and its utterances/s.
Every frame must end in exactly one counted outcome, or the run fails. Each ratio is the median over
rounds of the rate / the bare client's rate in the same round.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing
import multiprocessing.connection
import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from genesys_cloud_simulator.notifications_conversations import ConversationBook
from genesys_cloud_simulator.scenarios import CallEvent
from genesys_cloud_simulator.transcripts import CUSTOMER_LINES, TranscriptBook, TranscriptSettings

from bench import table
from bench.blast_server import Blaster, ChannelServer
from bench.transcript_bench import commit
from genesys_sentiment_exporter.analysis import UtteranceAnalyzer, build_analyzer
from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.sources.notifications_session import NotificationsSession, apply
from genesys_sentiment_exporter.tracker import AgentTracker, TrackerLimits

T0 = 1_777_629_602.0
SUBSCRIBE = '{"message":"ping"}'  # the blaster starts after the client's first text frame
BARE, PATH, CONSTANT = "bare_aiohttp", "path", "path_constant_scorer"
BUDGETED = CONSTANT  # ingest without the analyzer: what the >= 0.8x budget is measured on


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


def scored_lines(frames: list[str]) -> list[str]:
    """The texts the path scores: each final customer utterance once (what VADER is handed)."""
    texts: dict[str, str] = {}
    for frame in frames:
        body = json.loads(frame)["eventBody"]
        for entry in body.get("transcripts", ()):
            if entry["isFinal"] and entry["channel"] == "EXTERNAL":
                texts.setdefault(entry["utteranceId"], entry["alternatives"][0]["decoratedTranscript"])
    return list(texts.values())


def analyzer_cost(analyzer: UtteranceAnalyzer, texts: list[str], passes: int = 3) -> float:
    """Seconds per utterance (median of passes over the stream's own scored lines, one thread)."""
    costs = []
    for _ in range(passes):
        started = time.perf_counter()
        for text in texts:
            analyzer.analyze(text, "en-US")
        costs.append((time.perf_counter() - started) / len(texts))
    return statistics.median(costs)


@dataclass
class NotificationsResult:
    frames: int
    rates: dict[str, list[float]] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    scored: int = 0  # utterances the analyzer scores per round
    analyzer_s: list[float] = field(default_factory=list)  # VADER's seconds per utterance, per round

    def ratios(self, name: str) -> list[float]:
        return [r / b for r, b in zip(self.rates[name], self.rates[BARE], strict=True)]

    def ratio(self, name: str = BUDGETED) -> float:
        return statistics.median(self.ratios(name))

    def ceiling(self) -> dict[str, float]:
        """What the analyzer alone leaves: bare us/frame / (bare us/frame + analyzer us/frame)."""
        bare_us = 1e6 / statistics.median(self.rates[BARE])
        per_utterance_us = statistics.median(self.analyzer_s) * 1e6
        analyzer_us = per_utterance_us * self.scored / self.frames
        return {
            "utterances_per_s": 1e6 / per_utterance_us,
            "us_per_utterance": per_utterance_us,
            "utterances_per_round": self.scored,
            "us_per_frame": analyzer_us,
            "bare_us_per_frame": bare_us,
            "ceiling_ratio_with_analyzer": bare_us / (bare_us + analyzer_us),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames_per_round": self.frames,
            "rounds": len(self.rates[BARE]),
            "budgeted": "ingest without the analyzer (constant scorer): receive, decode, route, attribute, "
            "de-duplicate, count, track",
            "median_ratio": self.ratio(BUDGETED),
            "median_ratio_vader": self.ratio(PATH),
            "analyzer_vader": self.ceiling(),
            "frames_per_s_median": {name: statistics.median(rates) for name, rates in self.rates.items()},
            "ratios": {name: self.ratios(name) for name in (BUDGETED, PATH)},
            "outcomes_last_round": self.outcomes,
        }


def run(calls: int = 300, lines_per_call: int = 12, rounds: int = 3) -> NotificationsResult:
    texts = scored_lines(build(calls, lines_per_call))

    async def main() -> NotificationsResult:
        vader, constant = build_analyzer("vader"), UtteranceAnalyzer(ConstantScorer())
        with notifications_server(calls, lines_per_call) as server:
            clients = {
                BARE: lambda: bare_round(server),
                PATH: lambda: path_round(server, vader),
                CONSTANT: lambda: path_round(server, constant),
            }
            result = NotificationsResult(server.frames, {name: [] for name in clients}, scored=len(texts))
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
                        if outcomes.get("reading") != len(texts):
                            raise RuntimeError(f"{outcomes.get('reading')} readings, {len(texts)} lines scored")
                result.analyzer_s.append(analyzer_cost(vader, texts, 1))  # same minutes as the round
            return result

    import logging

    logging.getLogger("exporter").setLevel(logging.ERROR)
    return asyncio.run(main())


def summary(result: NotificationsResult) -> str:
    """The figures as the bench prints them: the budgeted ratio first, VADER's next to it with its ceiling."""
    data, rates = result.as_dict(), result.as_dict()["frames_per_s_median"]
    vader = data["analyzer_vader"]
    return (
        f"Notifications path over a WebSocket ({result.frames} frames, {data['rounds']} rounds, medians of "
        f"per-round ratios):\n"
        f"  bare aiohttp + json.loads             {rates[BARE]:>9,.0f} frames/s  1.000x\n"
        f"  ingest, analyzer excluded (BUDGETED)  {rates[BUDGETED]:>9,.0f} frames/s  {data['median_ratio']:.3f}x\n"
        f"  ingest with VADER scoring             {rates[PATH]:>9,.0f} frames/s  {data['median_ratio_vader']:.3f}x\n"
        f"  VADER alone: {vader['utterances_per_s']:,.0f} utterances/s ({vader['us_per_utterance']:.1f} us each, "
        f"{vader['utterances_per_round']} per round = {vader['us_per_frame']:.1f} us/frame against the bare "
        f"client's {vader['bare_us_per_frame']:.1f}): ceiling with VADER in process "
        f"{vader['ceiling_ratio_with_analyzer']:.3f}x"
    )


def record(path: Path, figures: dict[str, Any]) -> None:
    """Write `figures` under the `notifications` key of `path`, every other key as it was (a run of this
    bench alone does not restamp the other benches' figures)."""
    document = json.loads(path.read_text()) if path.exists() else {}
    document["notifications"] = figures
    document["missed"] = table.missed(document)
    path.write_text(json.dumps(document, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.notifications_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=None, help="record under the 'notifications' key of this JSON")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    when = datetime.now(UTC).isoformat(timespec="seconds")
    outcome = run(rounds=args.rounds)
    figures = {
        **outcome.as_dict(),
        "when": when,
        "commit": commit(),
        "loadavg_1m": {"before": load, "after": os.getloadavg()[0]},
    }
    print(summary(outcome))
    print(f"load average (1 min) before {load:.2f}, after {os.getloadavg()[0]:.2f}")
    if args.output is not None:
        record(args.output, figures)
        print(f"recorded under 'notifications' in {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
