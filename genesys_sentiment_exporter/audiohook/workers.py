"""Recognition in worker processes, never on the event loop.

Each worker process owns one engine (a model loaded once), one VAD and one analyzer, and the
per-channel segmenters of the sessions assigned to it (a session stays on one worker: its
utterance state lives there). The event loop only puts raw frames on the worker's queue (a
multiprocessing queue: a feeder thread writes the pipe, so a slow worker never blocks the loop)
and receives small result tuples through a reader thread.

Back-pressure: the worker acknowledges what it has processed; when the oldest unacknowledged
frame of a worker is older than `max_lag` seconds, new audio for its sessions is dropped (and
counted) until it catches up, and the sessions' segmenters are told about the gap. The socket and
the scrape stay responsive because nothing here waits on a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genesys_sentiment_exporter.audiohook.audio import split_channels
from genesys_sentiment_exporter.audiohook.segment import RATE, Segmenter, SegmenterConfig

log = logging.getLogger("exporter.audiohook.workers")

READY_TIMEOUT = 120.0
NO_WORDS = "no_words"


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What every worker builds at start; plain values, so it crosses the process boundary."""

    engine: str = "pocketsphinx"
    model_dir: Path | None = None
    analyzer: str = "vader"
    analyzer_model_dir: Path | None = None
    analyzer_languages: tuple[str, ...] = ()
    vad_mode: int = 2  # WebRTC VAD aggressiveness 0..3; 2 suits telephony noise
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)


@dataclass(frozen=True, slots=True)
class Utterance:
    """One recognised and scored utterance, back on the event loop."""

    key: int
    channel: str
    start: float  # session timeline seconds
    end: float  # end of speech on the session timeline
    seconds: float  # audio recognised
    cpu: float  # CPU seconds the worker spent recognising and scoring it
    words: int
    score: float | None
    outcome: str  # "scored", NO_WORDS or a CannotScore reason


# -- the worker process -------------------------------------------------------------------------------


class _Session:
    def __init__(self, fmt: str, channels: int, analysed: tuple[tuple[int, str], ...], language: str) -> None:
        self.fmt = fmt
        self.channels = channels
        self.analysed = analysed
        self.language = language
        self.segmenters: dict[int, Segmenter] = {}


def _analyzer(spec: WorkerSpec) -> Any:
    from genesys_sentiment_exporter.analysis import AnalyzerOptions, build_analyzer

    options = AnalyzerOptions(model_dir=spec.analyzer_model_dir, languages=spec.analyzer_languages)
    return build_analyzer(spec.analyzer, options)


def worker_main(index: int, spec: WorkerSpec, inbox: Any, outbox: Any) -> None:
    """A worker process's life: build once, then handle messages until `stop` (or the parent dies)."""
    import webrtcvad

    from genesys_sentiment_exporter.analysis import CannotScore
    from genesys_sentiment_exporter.audiohook.engines import build_engine

    with contextlib.suppress(OSError):
        os.nice(5)  # recognition yields to the event loop's process when cores are scarce
    try:
        engine = build_engine(spec.engine, spec.model_dir)
        analyzer = _analyzer(spec)
    except Exception as exc:  # reported to the parent, which fails start-up with this line
        outbox.put(("failed", index, f"{type(exc).__name__}: {exc}"))
        return

    def detector() -> Callable[[bytes], bool]:
        # One VAD per channel: WebRTC's detector keeps state across frames (it smooths its decisions),
        # so two streams through one instance would blur each other's pauses.
        vad = webrtcvad.Vad(spec.vad_mode)
        return lambda frame: bool(vad.is_speech(frame, RATE))

    sessions: dict[int, _Session] = {}
    outbox.put(("ready", index, sorted(engine.languages)))
    last_ack = time.monotonic()

    def recognise(key: int, session: _Session, channel: str, segments: list[Any]) -> None:
        for segment in segments:
            began = time.process_time()
            text = engine.transcribe(segment.audio)
            words = len(text.split())
            score: float | None = None
            if not words:
                outcome = NO_WORDS
            else:
                result = analyzer.analyze(text, session.language or "en-US")
                if isinstance(result, CannotScore):
                    outcome = str(result.reason)
                else:
                    outcome, score = "scored", float(result)
            cpu = time.process_time() - began
            outbox.put(
                (
                    "utterance",
                    Utterance(key, channel, segment.start, segment.end, segment.seconds, cpu, words, score, outcome),
                )
            )

    while True:
        message = inbox.get()
        kind = message[0]
        if kind == "stop":
            break
        seq, key = message[1], message[2]
        session = sessions.get(key)
        if kind == "open":
            _, _, _, fmt, channels, analysed, language = message
            session = sessions[key] = _Session(fmt, channels, analysed, language)
            for position, _name in analysed:
                session.segmenters[position] = Segmenter(detector(), spec.segmenter)
        elif session is None:
            pass  # a late message of a session already closed
        elif kind == "audio":
            data, start = message[3], message[4]
            per_channel = split_channels(data, session.fmt, session.channels)
            for position, name in session.analysed:
                recognise(key, session, name, session.segmenters[position].feed(per_channel[position], start))
        elif kind == "gap":
            for position, name in session.analysed:
                recognise(key, session, name, session.segmenters[position].gap())
        elif kind == "language":
            session.language = message[3]
        elif kind == "close":
            for position, name in session.analysed:
                recognise(key, session, name, session.segmenters[position].flush())
            del sessions[key]
        now = time.monotonic()
        if now - last_ack >= 0.05 or inbox.empty():
            outbox.put(("ack", index, seq))
            last_ack = now
    outbox.put(("stopped", index, 0))


# -- the event loop's side --------------------------------------------------------------------------------


class _Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: Any = None
        self.inbox: Any = None
        self.seq = 0
        self.unacked: deque[tuple[int, float]] = deque()  # (seq, sent at) of frames not yet processed
        self.sessions: set[int] = set()
        self.ready = False
        self.behind = False


@dataclass
class _Assigned:
    worker: _Worker
    open_message: tuple[Any, ...]
    dropping: bool = False


class WorkerPool:
    """Starts `size` worker processes and routes each session's frames to one of them."""

    def __init__(
        self,
        spec: WorkerSpec,
        size: int,
        on_utterance: Callable[[Utterance], None],
        max_lag: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.size = max(1, size)
        self.on_utterance = on_utterance
        self.max_lag = max_lag
        self.clock = clock
        self.context = multiprocessing.get_context("spawn")  # no fork of a threaded event loop
        self.outbox: Any = None
        self.workers = [_Worker(i) for i in range(self.size)]
        self.assigned: dict[int, _Assigned] = {}
        self.restarts = 0
        self.languages: tuple[str, ...] = ()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: threading.Thread | None = None
        self._ready: dict[int, asyncio.Future[str | None]] = {}

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.outbox = self.context.Queue()
        self._reader = threading.Thread(target=self._read, name="audiohook-results", daemon=True)
        self._reader.start()
        await asyncio.gather(*(self._spawn(worker) for worker in self.workers))

    async def _spawn(self, worker: _Worker) -> None:
        assert self._loop is not None
        worker.inbox = self.context.Queue()
        worker.unacked.clear()
        worker.behind = False
        worker.ready = False
        future: asyncio.Future[str | None] = self._loop.create_future()
        self._ready[worker.index] = future
        worker.process = self.context.Process(
            target=worker_main,
            args=(worker.index, self.spec, worker.inbox, self.outbox),
            name=f"audiohook-worker-{worker.index}",
            daemon=True,
        )
        worker.process.start()
        failure = await asyncio.wait_for(future, READY_TIMEOUT)
        if failure is not None:
            raise ValueError(f"audiohook_engine: the recognition worker could not start: {failure}")
        worker.ready = True

    def _read(self) -> None:
        """The reader thread: results to the event loop until every worker has stopped."""
        loop = self._loop
        assert loop is not None
        while True:
            try:
                message = self.outbox.get()
            except (EOFError, OSError):
                return
            if message is None:
                return
            with contextlib.suppress(RuntimeError):  # the loop closed under us at shutdown
                loop.call_soon_threadsafe(self._dispatch, message)

    def _dispatch(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "utterance":
            self.on_utterance(message[1])
        elif kind == "ack":
            worker = self.workers[message[1]]
            while worker.unacked and worker.unacked[0][0] <= message[2]:
                worker.unacked.popleft()
        elif kind in ("ready", "failed"):
            if kind == "ready":
                self.languages = tuple(message[2])
            future = self._ready.get(message[1])
            if future is not None and not future.done():
                future.set_result(None if kind == "ready" else str(message[2]))

    def _send(self, worker: _Worker, kind: str, key: int, *rest: Any) -> None:
        worker.seq += 1
        worker.inbox.put((kind, worker.seq, key, *rest))
        worker.unacked.append((worker.seq, self.clock()))

    # -- per session -----------------------------------------------------------------------------
    def open(self, key: int, fmt: str, channels: int, analysed: tuple[tuple[int, str], ...], language: str) -> None:
        worker = min(self.workers, key=lambda w: (not w.ready, len(w.sessions)))
        message = (fmt, channels, analysed, language)
        self.assigned[key] = _Assigned(worker, message)
        worker.sessions.add(key)
        self._send(worker, "open", key, *message)

    def audio(self, key: int, data: bytes, start: float) -> str | None:
        """Queue a frame for recognition; the reason it was dropped instead, or None."""
        assigned = self.assigned.get(key)
        if assigned is None:
            return "no_session"
        worker = assigned.worker
        if not worker.ready or not worker.process.is_alive():
            assigned.dropping = True
            return "worker_failed"
        if self.lag_of(worker) > self.max_lag:
            worker.behind = True
        elif worker.behind and self.lag_of(worker) <= self.max_lag / 2:
            worker.behind = False
        if worker.behind:
            if not assigned.dropping:
                assigned.dropping = True
                self._send(worker, "gap", key)
            return "overload"
        if assigned.dropping:
            assigned.dropping = False
            self._send(worker, "gap", key)
        self._send(worker, "audio", key, data, start)
        return None

    def gap(self, key: int) -> None:
        assigned = self.assigned.get(key)
        if assigned is not None:
            self._send(assigned.worker, "gap", key)

    def language(self, key: int, language: str) -> None:
        assigned = self.assigned.get(key)
        if assigned is not None:
            self._send(assigned.worker, "language", key, language)
            assigned.open_message = (*assigned.open_message[:3], language)

    def close(self, key: int) -> None:
        assigned = self.assigned.pop(key, None)
        if assigned is not None:
            assigned.worker.sessions.discard(key)
            self._send(assigned.worker, "close", key)

    # -- health -----------------------------------------------------------------------------------
    def lag_of(self, worker: _Worker) -> float:
        return self.clock() - worker.unacked[0][1] if worker.unacked else 0.0

    def lag(self) -> float:
        """Age of the oldest frame a worker has not processed yet (0 when all caught up)."""
        return max((self.lag_of(w) for w in self.workers), default=0.0)

    def alive(self) -> int:
        return sum(1 for w in self.workers if w.ready and w.process is not None and w.process.is_alive())

    async def supervise(self) -> None:
        """Restart a worker that died; its sessions go on from the next frame (their partial utterance is lost)."""
        while True:
            await asyncio.sleep(1.0)
            for worker in self.workers:
                if worker.ready and not worker.process.is_alive():
                    log.error(
                        "recognition worker %d exited (code %s); restarting it", worker.index, worker.process.exitcode
                    )
                    self.restarts += 1
                    try:
                        await self._spawn(worker)
                    except (TimeoutError, ValueError) as exc:
                        log.error("recognition worker %d did not restart: %s", worker.index, exc)
                        continue
                    for key in list(worker.sessions):
                        assigned = self.assigned.get(key)
                        if assigned is not None:
                            self._send(worker, "open", key, *assigned.open_message)

    async def stop(self) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.is_alive():
                with contextlib.suppress(Exception):
                    worker.inbox.put(("stop",))
        deadline = time.monotonic() + 5.0
        for worker in self.workers:
            process = worker.process
            if process is None:
                continue
            while process.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if process.is_alive():
                process.kill()
            process.join(timeout=1.0)
        if self.outbox is not None:
            self.outbox.put(None)
        if self._reader is not None:
            await asyncio.to_thread(self._reader.join, 2.0)
        for queue in [w.inbox for w in self.workers] + [self.outbox]:
            if queue is not None:
                queue.close()
                queue.cancel_join_thread()


def seconds_of(data: bytes, bytes_per_frame: int) -> float:
    return len(data) / bytes_per_frame / RATE
