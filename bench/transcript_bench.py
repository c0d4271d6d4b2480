"""The transcript path: analyzer throughput on one core, and the ingest ratio of transcript frames.

1. Analyzer: utterances scored per second by the default analyzer (VADER) on the simulator's scripted
   customer lines, one thread (the exporter shares its cores).
2. Ingest ratio in process: the notifications session's whole per-frame path for
   `v2.conversations.{id}.transcription` frames (parse, attribute, de-duplicate, score each final
   utterance, track) against a baseline that only decodes the same frames (`json.loads`): what the
   transcript path costs on top of decoding them, without any socket.
3. Ingest ratio over a socket (issue 9's "Measure"): a loopback server in another process (bench/
   blast_server.Blaster) sends the same transcript frames over a real WebSocket, as fast as the socket
   takes them, to (a) a bare aiohttp client that receives and `json.loads` each frame (the baseline),
   (b) the exporter's transcript path: its own WebSocket reader (`supervisor.Dialer` + `Socket`, as the
   notifications source reads a channel) handing each frame to `NotificationsSession.receive` and
   `apply` into a real `Ingest`, the calls attributed beforehand, every final customer utterance scored
   by VADER, and (c) the same path with a constant scorer, so the gap between (b) and (c) is what the
   analyzer costs. Per round the three run one after another in an order that rotates; each figure is
   the median over rounds of its rate / the baseline's rate in the same round.

Frames are what the simulator sends at low latency: per call a keepalive, then batches of a customer
line and the agent's reply, each preceded by its partial. Every frame must end in one counted outcome
(checked), over the socket too.

    python -m bench.transcript_bench [--quick] [--socket-only] [--output bench/results.json]

`--output` records the figures under the `transcript` key of that JSON file, leaving every other key
as it is (other benches write theirs).
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
import platform
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from genesys_cloud_simulator.notifications_conversations import ConversationBook
from genesys_cloud_simulator.scenarios import CallEvent
from genesys_cloud_simulator.transcripts import CUSTOMER_LINES, TranscriptBook, TranscriptSettings

from bench.blast_server import Blaster, ChannelServer
from genesys_sentiment_exporter.analysis import UtteranceAnalyzer, build_analyzer
from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.sources import supervisor as sup
from genesys_sentiment_exporter.sources.notifications_session import NotificationsSession, apply
from genesys_sentiment_exporter.tracker import AgentTracker, TrackerLimits

T0 = 1_777_629_602.0


def _frame(topic: str, body: dict[str, Any]) -> str:
    return json.dumps({"topicName": topic, "version": "2", "eventBody": body, "metadata": {"CorrelationId": "x"}})


def analyzer_rate(utterances: int) -> float:
    """Utterances per second scored by VADER (median of 3 passes)."""
    analyzer = build_analyzer("vader")
    lines = [line for _, line in CUSTOMER_LINES]
    texts = [lines[i % len(lines)] for i in range(utterances)]
    rates = []
    for _ in range(3):
        started = time.perf_counter()
        for text in texts:
            analyzer.analyze(text, "en-US")
        rates.append(utterances / (time.perf_counter() - started))
    return statistics.median(rates)


@dataclass
class Frames:
    setup: list[str] = field(default_factory=list)  # conversation events: who is on which call
    transcripts: list[str] = field(default_factory=list)


def build(calls: int, lines_per_call: int) -> Frames:
    book = ConversationBook()
    transcripts = TranscriptBook(TranscriptSettings(batch_seconds=1.0, partials=True))
    frames = Frames()
    for n in range(calls):
        cid, agent = f"c{n}", f"a{n}"
        for state in ("alerting", "connected"):
            event = CallEvent(0.0, cid, agent, "q1", state, None, False, None, True)
            frames.setup += [_frame(t, b) for t, b in book.apply(event) if t.startswith("v2.users.")]
        frames.transcripts += [_frame(t, b) for t, b in transcripts.connected(cid, "q1", T0)]
    now = T0
    for i in range(lines_per_call):
        for n in range(calls):
            transcripts.customer_said(f"c{n}", CUSTOMER_LINES[(n + i) % len(CUSTOMER_LINES)][0], now)
        now += 3.0
        frames.transcripts += [_frame(t, b) for t, b in transcripts.due(now)]
    return frames


def new_session(analyzer: UtteranceAnalyzer | None = None) -> tuple[NotificationsSession, Ingest]:
    session = NotificationsSession(queue_ids=["q1"], agent_ids=[], analyzer=analyzer)
    session.start()
    tracker = AgentTracker(TrackerLimits(grace_seconds=600))
    return session, Ingest(tracker)


def subject_round(frames: Frames) -> tuple[float, Counter[str]]:
    session, ingest = new_session()
    for frame in frames.setup:
        apply(ingest, session.receive(frame, 1, 0.0, T0))
    ingest.messages.clear()
    started = time.perf_counter()
    for frame in frames.transcripts:
        apply(ingest, session.receive(frame, 1, 1.0, T0 + 1))
    elapsed = time.perf_counter() - started
    return len(frames.transcripts) / elapsed, Counter(ingest.messages)


def baseline_round(frames: Frames) -> float:
    started = time.perf_counter()
    for frame in frames.transcripts:
        json.loads(frame)
    return len(frames.transcripts) / (time.perf_counter() - started)


@dataclass
class TranscriptResult:
    analyzer_utterances_per_s: float
    subject_frames_per_s: float
    baseline_frames_per_s: float
    frames: int
    outcomes: dict[str, int]

    @property
    def ratio(self) -> float:
        return self.subject_frames_per_s / self.baseline_frames_per_s

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ratio": self.ratio}


def run(calls: int = 200, lines_per_call: int = 20, rounds: int = 3, utterances: int = 20_000) -> TranscriptResult:
    frames = build(calls, lines_per_call)
    rates, baselines, outcomes = [], [], Counter[str]()
    for _ in range(rounds):
        rate, outcomes = subject_round(frames)
        rates.append(rate)
        baselines.append(baseline_round(frames))
    if sum(outcomes.values()) != len(frames.transcripts):
        raise RuntimeError(f"{sum(outcomes.values())} outcomes for {len(frames.transcripts)} frames")
    return TranscriptResult(
        analyzer_rate(utterances),
        statistics.median(rates),
        statistics.median(baselines),
        len(frames.transcripts),
        dict(outcomes),
    )


# -- over a real socket ------------------------------------------------------------------------------

PING = '{"message":"ping"}'  # the client's first text frame: what the blaster waits for before sending


class ConstantScorer:
    """Scores every utterance 0.1 at no cost: the transcript path without the analyzer's work."""

    name = "constant"
    languages = frozenset({"en"})

    def score(self, text: str) -> float:
        return 0.1


def _serve(pipe: multiprocessing.connection.Connection, calls: int, lines_per_call: int) -> None:
    """Process entry point: blast the transcript frames to every client; report {port, frames}."""

    async def serve() -> None:
        frames = build(calls, lines_per_call).transcripts
        server = await asyncio.start_server(Blaster(frames, deflate=False).handle, "127.0.0.1", 0)
        pipe.send({"port": server.sockets[0].getsockname()[1], "frames": len(frames)})
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # until told to stop
        server.close()
        await server.wait_closed()

    with contextlib.suppress(EOFError, KeyboardInterrupt):
        asyncio.run(serve())


def transcript_server(calls: int, lines_per_call: int) -> ChannelServer:
    """The blasting server in its own process (2 cores: server on one, the client measured on the other)."""
    return ChannelServer("transcript server", _serve, calls, lines_per_call)


async def bare_round(server: ChannelServer, frames: Frames) -> tuple[float, Counter[str]]:
    """(a) aiohttp: receive every frame and decode it, nothing else."""
    async with aiohttp.ClientSession() as http, http.ws_connect(server.url, max_msg_size=2**20) as ws:
        await ws.send_str(PING)
        await ws.receive()  # the blaster's first frame, before the measured stream
        loads, receive, received = json.loads, ws.receive, 0
        started = time.perf_counter()
        while True:
            message = await receive()
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            loads(message.data)
            received += 1
        elapsed = time.perf_counter() - started
    if received != server.frames:
        raise RuntimeError(f"bare client received {received} frames, expected {server.frames}")
    return received / elapsed, Counter({"decoded": received})


async def path_round(server: ChannelServer, frames: Frames, analyzer: UtteranceAnalyzer) -> tuple[float, Counter[str]]:
    """(b)/(c) the exporter's reader and session over the socket, calls attributed beforehand."""
    session, ingest = new_session(analyzer)
    for frame in frames.setup:
        apply(ingest, session.receive(frame, 1, 0.0, T0))
    ingest.messages.clear()
    wall = time.time

    def deliver(frame: str | bytes, now: float) -> bool:  # NotificationsSource._frame, minus its REST actions
        got = session.receive(frame, 1, now, wall())
        apply(ingest, got)
        return got.traffic

    dialer = sup.Dialer()
    socket = sup.Socket(dialer, sup.WatchdogPolicy(3600.0), time.monotonic, deliver, None, "bench")
    try:
        ws = await socket.connect(server.url)
        await ws.send_str(PING)
        await ws.receive()  # the blaster's first frame, before the measured stream
        started = time.perf_counter()
        socket.start()
        assert socket.reader is not None
        code = await socket.reader
        elapsed = time.perf_counter() - started
        await socket.close("done")
    finally:
        await dialer.close()
    handled = sum(ingest.messages.values())
    if handled != server.frames:
        raise RuntimeError(f"transcript path accounted for {handled} frames, expected {server.frames} ({code})")
    return handled / elapsed, Counter(ingest.messages)


BARE, SCORED, UNSCORED = "bare_aiohttp", "transcript_path_vader", "transcript_path_constant_scorer"


@dataclass
class SocketResult:
    frames: int
    rates: dict[str, list[float]]
    outcomes: dict[str, dict[str, int]]

    def ratios(self, name: str) -> list[float]:
        return [rate / base for rate, base in zip(self.rates[name], self.rates[BARE], strict=True)]

    def ratio(self, name: str) -> float:
        return statistics.median(self.ratios(name))

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames_per_round": self.frames,
            "rounds": len(self.rates[BARE]),
            "median_ratio_vader": self.ratio(SCORED),
            "median_ratio_without_scoring": self.ratio(UNSCORED),
            "clients": {
                name: {
                    "frames_per_s_median": statistics.median(rates),
                    "median_ratio_vs_bare": self.ratio(name),
                    "ratios": self.ratios(name),
                }
                for name, rates in self.rates.items()
            },
            "outcomes_last_round": self.outcomes,
        }


async def socket_rounds(server: ChannelServer, frames: Frames, rounds: int) -> SocketResult:
    vader = build_analyzer("vader")
    constant = UtteranceAnalyzer(ConstantScorer())
    clients: dict[str, Callable[[], Awaitable[tuple[float, Counter[str]]]]] = {
        BARE: lambda: bare_round(server, frames),
        SCORED: lambda: path_round(server, frames, vader),
        UNSCORED: lambda: path_round(server, frames, constant),
    }
    result = SocketResult(server.frames, {name: [] for name in clients}, {})
    names = list(clients)
    for name in names:  # warm-up, discarded: imports, first connections, the analyzer's lexicon
        await clients[name]()
    for i in range(rounds):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()  # each client starts from the same heap state, not with another's garbage
            rate, outcomes = await clients[name]()
            result.rates[name].append(rate)
            result.outcomes[name] = {str(getattr(k, "value", k)): n for k, n in sorted(outcomes.items())}
    return result


def run_socket(calls: int = 200, lines_per_call: int = 20, rounds: int = 5) -> SocketResult:
    frames = build(calls, lines_per_call)
    with transcript_server(calls, lines_per_call) as server:
        if server.frames != len(frames.transcripts):
            raise RuntimeError("the server built other frames than the clients expect")
        return asyncio.run(socket_rounds(server, frames, rounds))


def summary(figures: dict[str, Any]) -> dict[str, Any]:
    """A run's headline figures, kept in `history` so a change's before and after sit side by side."""
    socket = figures.get("socket", {})
    clients = socket.get("clients", {})
    return {
        "when": figures.get("when"),
        "commit": figures.get("commit"),
        "median_ratio_vader": socket.get("median_ratio_vader"),
        "median_ratio_without_scoring": socket.get("median_ratio_without_scoring"),
        "frames_per_s_median": {name: c.get("frames_per_s_median") for name, c in clients.items()},
        "rounds": socket.get("rounds"),
        "loadavg_1m": figures.get("loadavg_1m"),
        "analyzer_utterances_per_s": figures.get("analyzer_utterances_per_s"),
    }


def record(path: Path, figures: dict[str, Any], keep: int = 6) -> None:
    """Write `figures` under the `transcript` key of `path`, every other key kept as it was; the run
    they replace joins `history` (the last `keep` runs' headline figures, oldest first)."""
    document: dict[str, Any] = {}
    if path.exists():
        document = json.loads(path.read_text())
    previous = document.get("transcript")
    history: list[dict[str, Any]] = []
    if isinstance(previous, dict):
        history = [*previous.get("history", []), summary(previous)][-keep:]
    document["transcript"] = {**figures, "history": history}
    path.write_text(json.dumps(document, indent=2) + "\n")


def commit() -> str | None:
    """The measured tree's commit, "-dirty" when code differs from it (the results file itself aside:
    `--output` rewrites it on every run); None outside a checkout."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/*.json"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if changed else head or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.transcript_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--socket-only", action="store_true", help="skip the analyzer and in-process figures")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--output", type=Path, default=None, help="record under the 'transcript' key of this JSON")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    figures: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "aiohttp": aiohttp.__version__,
        "quick": args.quick,
        "commit": commit(),
    }
    if not args.socket_only:
        result = run(50, 10, 3, 5_000) if args.quick else run()
        print(f"analyzer (vader, one core): {result.analyzer_utterances_per_s:,.0f} utterances/s")
        print(
            f"transcript ingest in process: {result.subject_frames_per_s:,.0f} frames/s vs json.loads "
            f"{result.baseline_frames_per_s:,.0f} frames/s = {result.ratio:.3f}x "
            f"({result.frames} frames; outcomes {dict(result.outcomes)})"
        )
        figures["analyzer_utterances_per_s"] = result.analyzer_utterances_per_s
        figures["in_process"] = {
            "ratio_vs_json_loads": result.ratio,
            "subject_frames_per_s": result.subject_frames_per_s,
            "baseline_frames_per_s": result.baseline_frames_per_s,
            "frames": result.frames,
        }
    rounds = args.rounds or (3 if args.quick else 5)
    sock = run_socket(50, 10, rounds) if args.quick else run_socket(rounds=rounds)
    rates = {name: statistics.median(r) for name, r in sock.rates.items()}
    print(
        f"transcript ingest over a WebSocket ({sock.frames} frames, {rounds} rounds, median of per-round ratios):\n"
        f"  bare aiohttp + json.loads               {rates[BARE]:>9,.0f} frames/s  1.000x\n"
        f"  transcript path, no scoring (BUDGETED)  {rates[UNSCORED]:>9,.0f} frames/s  {sock.ratio(UNSCORED):.3f}x\n"
        f"  transcript path, VADER scoring          {rates[SCORED]:>9,.0f} frames/s  {sock.ratio(SCORED):.3f}x\n"
        f"  outcomes (VADER, last round): {sock.outcomes[SCORED]}"
    )
    figures["socket"] = sock.as_dict()
    analyzer_rate = figures.get("analyzer_utterances_per_s")
    if analyzer_rate:
        # The analyzer, not ingest, bounds the VADER figure: bare us/frame / (bare + analyzer us/frame).
        bare_us = 1e6 / rates[BARE]
        analyzer_us = 1e6 / analyzer_rate * sock.outcomes[SCORED].get("reading", 0) / sock.frames
        ceiling = bare_us / (bare_us + analyzer_us)
        figures["socket"]["ceiling_ratio_with_vader"] = ceiling
        print(
            f"  VADER alone: {analyzer_rate:,.0f} utterances/s = {analyzer_us:.1f} us per frame of this stream "
            f"against the bare client's {bare_us:.1f}: ceiling with VADER in process {ceiling:.3f}x"
        )
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    figures["loadavg_1m"] = {"before": load_before[0], "after": load_after[0]}
    if args.output is not None:
        record(args.output, figures)
        print(f"recorded under 'transcript' in {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
