"""Cutting one channel's audio into utterances with a voice activity detector (pure).

An utterance starts when most of the last few frames are speech (with a little audio before it,
so the first syllable is not clipped) and ends after a stretch of silence, or at a length cap so
a monologue still produces readings while it goes on. The silence stretch is the floor of the
time from the end of a sentence to its reading; 500 ms keeps it short without splitting a
sentence at every comma. The detector is injected (`is_speech(frame) -> bool`), so tests drive
the segmenter with scripted frames and the worker uses WebRTC's VAD.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

RATE = 8000
FRAME_MS = 30
FRAME_BYTES = RATE * FRAME_MS // 1000 * 2  # 480 bytes of int16


@dataclass(frozen=True, slots=True)
class Segment:
    audio: bytes  # int16 little-endian at 8 kHz
    start: float  # seconds on the session's audio timeline
    end: float  # where speech ended (the audio keeps a little silence after it)

    @property
    def seconds(self) -> float:
        return len(self.audio) / 2 / RATE


@dataclass(frozen=True, slots=True)
class SegmenterConfig:
    start_window: int = 10  # frames looked at to decide speech has started (300 ms)
    start_voiced: int = 6  # of which this many must be speech
    end_silence_ms: int = 500  # this much continuous non-speech ends an utterance
    preroll_ms: int = 300  # audio kept before the start decision
    max_seconds: float = 15.0  # longer speech is cut into several utterances
    min_voiced_ms: int = 240  # shorter bursts (a click, a cough) are not utterances


class Segmenter:
    def __init__(self, is_speech: Callable[[bytes], bool], config: SegmenterConfig | None = None) -> None:
        self.is_speech = is_speech
        self.config = config or SegmenterConfig()
        self.pending = b""  # less than a frame, waiting for more
        self.time = 0.0  # timeline position of `pending`'s first sample
        self.recent: deque[tuple[bytes, bool]] = deque(
            maxlen=max(self.config.start_window, self._frames_of(self.config.preroll_ms))
        )
        self.speech: list[bytes] = []
        self.speech_start = 0.0
        self.voiced = 0
        self.silent_run = 0

    @staticmethod
    def _frames_of(ms: int) -> int:
        return max(1, ms // FRAME_MS)

    @property
    def in_speech(self) -> bool:
        return bool(self.speech)

    def feed(self, pcm: bytes, start: float | None = None) -> list[Segment]:
        """Audio that follows what came before (or starts at `start` after a gap)."""
        out: list[Segment] = []
        if start is not None and abs(start - (self.time + len(self.pending) / 2 / RATE)) > 0.001:
            out.extend(self.gap())
            self.time = start
        data = self.pending + pcm
        usable = len(data) - len(data) % FRAME_BYTES
        for offset in range(0, usable, FRAME_BYTES):
            segment = self._frame(data[offset : offset + FRAME_BYTES])
            if segment is not None:
                out.append(segment)
        self.pending = data[usable:]
        return out

    def _frame(self, frame: bytes) -> Segment | None:
        voiced = self.is_speech(frame)
        at = self.time
        self.time += FRAME_MS / 1000
        config = self.config
        if not self.speech:
            self.recent.append((frame, voiced))
            window = list(self.recent)[-config.start_window :]
            if sum(1 for _, v in window if v) >= config.start_voiced:
                preroll = list(self.recent)[-self._frames_of(config.preroll_ms) :]
                self.speech = [f for f, _ in preroll]
                self.speech_start = at + FRAME_MS / 1000 - len(preroll) * FRAME_MS / 1000
                self.voiced = sum(1 for _, v in preroll if v)
                self.silent_run = 0
                self.recent.clear()
            return None
        self.speech.append(frame)
        if voiced:
            self.voiced += 1
            self.silent_run = 0
        else:
            self.silent_run += 1
        if self.silent_run * FRAME_MS >= config.end_silence_ms:
            return self._finish(trim=self.silent_run)
        if len(self.speech) * FRAME_MS / 1000 >= config.max_seconds:
            return self._finish(trim=0)
        return None

    def _finish(self, trim: int) -> Segment | None:
        keep = len(self.speech) - max(0, trim - self._frames_of(150))  # a little trailing silence helps decoders
        frames, voiced = self.speech[:keep], self.voiced
        start = self.speech_start
        speech_end = start + (len(self.speech) - trim) * FRAME_MS / 1000
        self.speech = []
        self.voiced = 0
        self.silent_run = 0
        if voiced * FRAME_MS < self.config.min_voiced_ms:
            return None
        return Segment(b"".join(frames), start, speech_end)

    def gap(self) -> list[Segment]:
        """Audio is missing from here (pause, discard, overload): what was said so far is one utterance."""
        self.pending = b""
        self.recent.clear()
        if not self.speech:
            return []
        segment = self._finish(trim=self.silent_run)
        return [segment] if segment is not None else []

    def flush(self) -> list[Segment]:
        return self.gap()
