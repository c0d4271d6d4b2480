"""The transcript path: analyzer throughput on one core, and the ingest ratio of transcript frames.

1. Analyzer: utterances scored per second by the default analyzer (VADER) on the simulator's scripted
   customer lines, one thread (the exporter shares its cores).
2. Ingest ratio: the notifications session's whole per-frame path for `v2.conversations.{id}.transcription`
   frames (parse, attribute, de-duplicate, score each final utterance, track) against a baseline that
   only decodes the same frames (`json.loads`), both in this process on the same frames: what the
   transcript path costs on top of receiving them. Frames are what the simulator sends at low latency:
   per call a keepalive, then batches of a customer line and the agent's reply, each preceded by its
   partial. Every frame must end in one counted outcome (checked).

    python -m bench.transcript_bench [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from genesys_cloud_simulator.notifications_conversations import ConversationBook
from genesys_cloud_simulator.scenarios import CallEvent
from genesys_cloud_simulator.transcripts import CUSTOMER_LINES, TranscriptBook, TranscriptSettings

from genesys_sentiment_exporter.analysis import build_analyzer
from genesys_sentiment_exporter.ingest import Ingest
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


def new_session() -> tuple[NotificationsSession, Ingest]:
    session = NotificationsSession(queue_ids=["q1"], agent_ids=[])
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.transcript_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    result = run(50, 10, 3, 5_000) if args.quick else run()
    print(f"analyzer (vader, one core): {result.analyzer_utterances_per_s:,.0f} utterances/s")
    print(
        f"transcript ingest: {result.subject_frames_per_s:,.0f} frames/s vs json.loads "
        f"{result.baseline_frames_per_s:,.0f} frames/s = {result.ratio:.3f}x "
        f"({result.frames} frames; outcomes {dict(result.outcomes)})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
