"""Deterministic call timelines for the simulated Genesys Cloud.

The engine is pure (no I/O, no clock, no asyncio) so that the same seed always
yields the same timeline: tests can assert on exact shapes, and a demo or a
benchmark is reproducible. It is also wire-agnostic on purpose: the analytics
WebSocket simulator and a Notifications API simulator encode the same
`CallEvent`s in their own formats.

Each scenario is made of independent "lanes" (one per simulated agent), each an
infinite generator with its own RNG derived from the seed and the lane's name.
Deriving per-lane RNGs keeps a lane's timeline stable when other scenarios are
added to the mix, which is what lets `demo` reuse the individual shapes.
"""

from __future__ import annotations

import functools
import heapq
import math
import random
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

SCENARIOS: dict[str, str] = {
    "steady": "N healthy agents (default 20) on q-billing/q-support, 60-240 s calls, scores around +0.2",
    "sour": "agent-sour on q-billing: healthy ~10 s, then scores near -0.8 for over a minute per call",
    "flapping": "agent-flap on q-support: rolling average dips below -0.5 for ~18 s, recovers for ~15 s",
    "late-final": "agent-late on q-support: a final -0.9 score arrives ~2 s after the call's 'ended' event",
    "zero": "agents agent-fr-1..3 on q-fr: calls in French (fr-FR), a language the default analyzer cannot "
    "score (the analytics stream: every score exactly 0.0)",
    "masking": "agent-masked on q-payments: 4-minute calls whose readings stop after ~40 s (PCI masking)",
    "missing-field": "agent-nofield on q-support: sentiment with a null score, or no sentiment at all",
    "no-sentiment": "agents agent-legacy-1..2 on q-legacy: state events only, never a score (legacy policy)",
    "demo": "all of the above, with 8 steady agents",
}

DEFAULT_STEADY_AGENTS = 20
DEMO_STEADY_AGENTS = 8
LATE_FINAL_SCORE = -0.9

# The order `demo` expands to; also the order in which lanes are numbered, which only breaks ties.
_DEMO_PARTS = ("steady", "sour", "flapping", "late-final", "zero", "masking", "missing-field", "no-sentiment")


@dataclass(slots=True, frozen=True)
class CallEvent:
    """One happening on one conversation, independent of any wire format.

    `state` is the conversation's state as of this event (always set by the built-in
    scenarios); `transition` says whether this event is the one that moved the call
    into that state. `sentiment=False` means the event carries no sentiment object at
    all, as opposed to a sentiment object whose `score` (and `label`) are None.
    """

    at: float
    conversation_id: str
    agent_id: str
    queue_id: str
    state: str | None
    score: float | None
    sentiment: bool
    label: str | None
    transition: bool = False


def label_for(score: float) -> str:
    """The label a sentiment engine would attach; the thresholds are the simulator's own choice."""
    if score >= 0.25:
        return "positive"
    if score <= -0.25:
        return "negative"
    return "neutral"


class _Call:
    """Builds the events of one conversation so lane generators read like a script."""

    __slots__ = ("agent", "conversation_id", "queue", "state")

    def __init__(self, rng: random.Random, agent: str, queue: str) -> None:
        self.conversation_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self.agent = agent
        self.queue = queue
        self.state = "alerting"

    def move(self, at: float, state: str) -> CallEvent:
        self.state = state
        return CallEvent(at, self.conversation_id, self.agent, self.queue, state, None, False, None, True)

    def reading(self, at: float, score: float) -> CallEvent:
        score = round(score, 3)
        return CallEvent(at, self.conversation_id, self.agent, self.queue, self.state, score, True, label_for(score))

    def null_score(self, at: float) -> CallEvent:
        return CallEvent(at, self.conversation_id, self.agent, self.queue, self.state, None, True, None)

    def bare(self, at: float) -> CallEvent:
        return CallEvent(at, self.conversation_id, self.agent, self.queue, self.state, None, False, None)


Lane = Iterator[CallEvent]


def _steady_lane(rng: random.Random, agent: str, queue: str, interval: float) -> Lane:
    t = rng.uniform(0.0, 8.0)
    score = rng.uniform(0.0, 0.4)
    while True:
        call = _Call(rng, agent, queue)
        yield call.move(t, "alerting")
        t += rng.uniform(2.0, 5.0)
        yield call.move(t, "connected")
        end = t + rng.uniform(60.0, 240.0)
        t += interval * rng.uniform(0.8, 1.2)
        while t < end:
            # Mean-reverting walk around +0.2; the floor keeps any 5-reading average above -0.5.
            score = min(0.95, max(-0.45, score + 0.35 * (0.2 - score) + rng.gauss(0.0, 0.18)))
            yield call.reading(t, score)
            t += interval * rng.uniform(0.8, 1.2)
        yield call.move(end, "wrapup")
        t = end + rng.uniform(3.0, 10.0)
        yield call.move(t, "ended")
        t += rng.uniform(5.0, 20.0)


def _sour_lane(rng: random.Random, agent: str, queue: str, interval: float, sour_seconds: float = 75.0) -> Lane:
    t = 2.0
    while True:
        call = _Call(rng, agent, queue)
        yield call.move(t, "alerting")
        t += 2.0
        yield call.move(t, "connected")
        healthy_until = t + 10.0
        sour_until = healthy_until + sour_seconds
        t += interval
        while t < healthy_until:
            yield call.reading(t, rng.uniform(0.2, 0.5))
            t += interval
        while t < sour_until:
            yield call.reading(t, rng.uniform(-0.95, -0.7))
            t += interval
        yield call.move(t, "wrapup")
        t += 3.0
        yield call.move(t, "ended")
        t += rng.uniform(30.0, 45.0)


def _flapping_lane(rng: random.Random, agent: str, queue: str, interval: float) -> Lane:
    # With 5-reading windows, L lows keep the average below -0.5 for (L-2) readings and
    # H highs keep it above for (H+2) readings, whatever the noise below (see the tests).
    lows = round(18.0 / interval) + 2
    highs = max(3, math.ceil(15.0 / interval) - 2)
    t = 4.0
    while True:
        call = _Call(rng, agent, queue)
        yield call.move(t, "alerting")
        t += 2.0
        yield call.move(t, "connected")
        for _ in range(3):
            t += interval
            yield call.reading(t, rng.uniform(0.45, 0.6))
        for _ in range(15):
            for _ in range(lows):
                t += interval
                yield call.reading(t, rng.uniform(-0.95, -0.85))
            for _ in range(highs):
                t += interval
                yield call.reading(t, rng.uniform(0.45, 0.6))
        t += interval
        yield call.move(t, "wrapup")
        t += 3.0
        yield call.move(t, "ended")
        t += rng.uniform(15.0, 30.0)


def _late_final_lane(rng: random.Random, agent: str, queue: str, interval: float) -> Lane:
    t = 3.0
    while True:
        call = _Call(rng, agent, queue)
        yield call.move(t, "alerting")
        t += 2.0
        yield call.move(t, "connected")
        end = t + 30.0
        t += interval
        while t < end:
            yield call.reading(t, rng.uniform(0.1, 0.5))
            t += interval
        yield call.move(t, "wrapup")
        t += 1.0
        yield call.move(t, "ended")
        t += 2.0
        yield call.reading(t, LATE_FINAL_SCORE)
        t += rng.uniform(20.0, 30.0)


def _zero_lane(rng: random.Random, agent: str, queue: str, interval: float) -> Lane:
    t = rng.uniform(0.0, 8.0)
    while True:
        call = _Call(rng, agent, queue)
        yield call.move(t, "alerting")
        t += rng.uniform(2.0, 5.0)
        yield call.move(t, "connected")
        end = t + rng.uniform(60.0, 180.0)
        t += interval
        while t < end:
            yield call.reading(t, 0.0)
            t += interval
        yield call.move(end, "wrapup")
        t = end + rng.uniform(3.0, 8.0)
        yield call.move(t, "ended")
        t += rng.uniform(5.0, 20.0)


def _masking_lane(rng: random.Random, agent: str, queue: str, interval: float) -> Lane:
    t = 5.0
    while True:
        call = _Call(rng, agent, queue)
        yield call.move(t, "alerting")
        t += 2.0
        yield call.move(t, "connected")
        connected_at = t
        masked_from = connected_at + 40.0
        score = 0.3
        t += interval
        while t < masked_from:
            score = min(0.9, max(-0.3, score + rng.gauss(0.0, 0.1)))
            yield call.reading(t, score)
            t += interval
        # Silence from here on while the call stays connected: the masking symptom.
        t = connected_at + 240.0
        yield call.move(t, "wrapup")
        t += 4.0
        yield call.move(t, "ended")
        t += rng.uniform(20.0, 40.0)


def _missing_field_lane(rng: random.Random, agent: str, queue: str, interval: float) -> Lane:
    t = 6.0
    while True:
        call = _Call(rng, agent, queue)
        yield call.move(t, "alerting")
        t += 2.0
        yield call.move(t, "connected")
        end = t + 120.0
        t += interval
        with_object = True
        while t < end:
            yield call.null_score(t) if with_object else call.bare(t)
            with_object = not with_object
            t += interval
        yield call.move(t, "wrapup")
        t += 3.0
        yield call.move(t, "ended")
        t += rng.uniform(10.0, 20.0)


def _no_sentiment_lane(rng: random.Random, agent: str, queue: str, interval: float) -> Lane:
    del interval  # no readings at all: that is the point of this scenario
    t = rng.uniform(0.0, 8.0)
    while True:
        call = _Call(rng, agent, queue)
        yield call.move(t, "alerting")
        t += rng.uniform(2.0, 5.0)
        yield call.move(t, "connected")
        t += rng.uniform(60.0, 180.0)
        yield call.move(t, "ended")
        t += rng.uniform(10.0, 30.0)


LaneFactory = Callable[[random.Random, str, str, float], Lane]

# Fixed agents of each single-purpose scenario: (lane factory, [(agent, queue), ...]).
_FIXED: Mapping[str, tuple[LaneFactory, tuple[tuple[str, str], ...]]] = MappingProxyType(
    {
        "sour": (_sour_lane, (("agent-sour", "q-billing"),)),
        "flapping": (_flapping_lane, (("agent-flap", "q-support"),)),
        "late-final": (_late_final_lane, (("agent-late", "q-support"),)),
        "zero": (_zero_lane, tuple((f"agent-fr-{i}", "q-fr") for i in range(1, 4))),
        "masking": (_masking_lane, (("agent-masked", "q-payments"),)),
        "missing-field": (_missing_field_lane, (("agent-nofield", "q-support"),)),
        "no-sentiment": (_no_sentiment_lane, tuple((f"agent-legacy-{i}", "q-legacy") for i in range(1, 3))),
    }
)


def steady_agent_id(index: int) -> str:
    """Steady agents are numbered from 1: agent-0001, agent-0002, ..."""
    return f"agent-{index:04d}"


class ScenarioEngine:
    """Merges the lanes of the chosen scenarios into one time-ordered stream.

    Time is whatever the caller says it is (`due(elapsed)`), which keeps the engine
    usable both in real time by the server and instantly by tests.
    """

    def __init__(
        self,
        names: Iterable[str],
        *,
        seed: int = 0,
        agents: int | None = None,
        reading_interval: float = 3.0,
        sour_seconds: float = 75.0,
    ) -> None:
        requested = list(names)
        unknown = [n for n in requested if n not in SCENARIOS]
        if unknown:
            raise ValueError(f"unknown scenario(s) {unknown}; known: {sorted(SCENARIOS)}")
        if agents is not None and agents < 1:
            raise ValueError("agents must be at least 1")
        if not (reading_interval > 0 and math.isfinite(reading_interval)):
            raise ValueError("reading_interval must be a positive number of seconds")
        if not (sour_seconds > 0 and math.isfinite(sour_seconds)):
            raise ValueError("sour_seconds must be a positive number of seconds")

        expanded: list[str] = []
        for name in requested:
            for part in _DEMO_PARTS if name == "demo" else (name,):
                if part not in expanded:
                    expanded.append(part)
        if agents is None:
            agents = DEFAULT_STEADY_AGENTS if "steady" in requested else DEMO_STEADY_AGENTS

        self.names: tuple[str, ...] = tuple(expanded)
        self.reading_interval = reading_interval
        self._lanes: list[Lane] = []
        for name in expanded:
            if name == "steady":
                for i in range(1, agents + 1):
                    agent = steady_agent_id(i)
                    queue = "q-billing" if i % 2 else "q-support"
                    self._add(_steady_lane, seed, name, agent, queue)
            else:
                factory, members = _FIXED[name]
                if name == "sour":
                    factory = functools.partial(_sour_lane, sour_seconds=sour_seconds)
                for agent, queue in members:
                    self._add(factory, seed, name, agent, queue)

        self._heap: list[tuple[float, int, CallEvent]] = []
        for index, lane in enumerate(self._lanes):
            self._push(index, lane)

    def _add(self, factory: LaneFactory, seed: int, scenario: str, agent: str, queue: str) -> None:
        rng = random.Random(f"{seed}/{scenario}/{agent}")
        self._lanes.append(factory(rng, agent, queue, self.reading_interval))

    def _push(self, index: int, lane: Lane) -> None:
        event = next(lane, None)
        if event is not None:
            heapq.heappush(self._heap, (event.at, index, event))

    def due(self, elapsed: float) -> list[CallEvent]:
        """Every event at or before `elapsed` seconds that has not been returned yet, in time order."""
        out: list[CallEvent] = []
        while self._heap and self._heap[0][0] <= elapsed:
            _, index, event = heapq.heappop(self._heap)
            out.append(event)
            self._push(index, self._lanes[index])
        return out

    def next_at(self) -> float | None:
        """When the next event is due, so a driver can sleep until then if it wants to."""
        return self._heap[0][0] if self._heap else None
