"""Deterministic, realistic analytics-websocket frames (per /work/shared/analytics-websocket-protocol.md).

The same seed always yields the same list, so the blasting server (another
process) and the benchmark agree on what was sent without shipping the frames.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from genesys_cloud_simulator.scenarios import label_for

EPOCH = datetime(2026, 11, 26, 19, 0, 0, tzinfo=UTC)
HEARTBEAT_EVERY = 1000  # one heartbeat per this many frames (a busy region at a 30 s heartbeat)
NULL_SCORE_RATE = 0.002  # sentiment object with a null score (missing_sentiment outcome)


def uuid_from(rng: random.Random) -> str:
    """A uuid4-looking id (36 characters), reproducible from the RNG."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventClock:
    """ISO 8601 UTC timestamps, `step_ms` apart from EPOCH onwards; the second's text is formatted once."""

    def __init__(self, step_ms: int = 1) -> None:
        self.step_ms = step_ms
        self.millis = 0
        self._second = -1
        self._prefix = ""

    def tick(self) -> str:
        self.millis += self.step_ms
        second, millis = divmod(self.millis, 1000)
        if second != self._second:
            self._second = second
            self._prefix = (EPOCH + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{millis:03d}Z"


def dumps(message: dict[str, object]) -> str:
    return json.dumps(message, separators=(",", ":"))


@dataclass(slots=True)
class _Lane:
    """One agent's script: alerting, connected, readings (sometimes a hold), wrapup, late score, ended."""

    agent_id: str
    queue_id: str
    steps: list[tuple[str | None, bool]] = field(default_factory=list)  # (state, with_sentiment)
    conversation_id: str = ""
    mood: float = 0.0


def _new_call(lane: _Lane, rng: random.Random) -> None:
    lane.conversation_id = uuid_from(rng)
    lane.mood = rng.uniform(-0.6, 0.6)
    steps: list[tuple[str | None, bool]] = [("alerting", False), ("connected", False)]
    readings = rng.randint(8, 40)
    hold_at = rng.randint(2, readings) if rng.random() < 0.15 else -1
    for i in range(readings):
        if i == hold_at:
            steps += [("held", False), ("connected", False)]
        steps.append(("connected", True))
    steps.append(("wrapup", rng.random() < 0.5))
    if rng.random() < 0.2:
        steps.append(("wrapup", True))  # the late final score after the call left `connected`
    steps.append((rng.choice(("disconnected", "ended")), False))
    steps.reverse()  # consumed with pop()
    lane.steps = steps


def build_frames(count: int, agents: int = 2000, queues: int = 40, seed: int = 7) -> list[str]:
    """`count` frames: conversation events interleaved across `agents` agents, plus heartbeats."""
    rng = random.Random(seed)
    queue_ids = [uuid_from(rng) for _ in range(queues)]
    lanes = [_Lane(uuid_from(rng), rng.choice(queue_ids)) for _ in range(agents)]
    frames: list[str] = []
    clock = EventClock()
    while len(frames) < count:
        at = clock.tick()
        if len(frames) % HEARTBEAT_EVERY == HEARTBEAT_EVERY - 1:
            frames.append(dumps({"type": "heartbeat", "timestamp": at}))
            continue
        lane = lanes[rng.randrange(agents)]
        if not lane.steps:
            _new_call(lane, rng)
        state, with_sentiment = lane.steps.pop()
        event: dict[str, object] = {
            "type": "conversation",
            "eventTime": at,
            "conversationId": lane.conversation_id,
            "agentId": lane.agent_id,
            "queueId": lane.queue_id,
        }
        if state is not None:
            event["state"] = state
        if with_sentiment:
            if rng.random() < NULL_SCORE_RATE:
                event["sentiment"] = {"score": None, "label": None}
            else:
                score = round(max(-1.0, min(1.0, rng.gauss(lane.mood, 0.25))), 2)
                event["sentiment"] = {"score": score, "label": label_for(score)}
        frames.append(dumps(event))
    return frames


def describe(frames: list[str]) -> dict[str, int]:
    """How many frames of each shape: shown in the results so the mix is on record."""
    mix: Counter[str] = Counter()
    for frame in frames:
        msg = json.loads(frame)
        if msg["type"] == "heartbeat":
            mix["heartbeat"] += 1
        elif "sentiment" in msg:
            mix["sentiment" if msg["sentiment"]["score"] is not None else "null_score"] += 1
        else:
            mix["state_only"] += 1
    mix["total_bytes"] = sum(len(f) for f in frames)
    return dict(mix)
