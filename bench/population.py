"""A populated tracker for the render and memory benchmarks, plus an independent record of what it should hold.

Agents are fed through the real `Ingest` (which drives the real `AgentTracker`)
with the normalised events a source would hand over. Alongside, a plain model
records what each agent's series must be, computed independently of the
exporter, so the render benchmark can check both outputs against the same truth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from bench.frames import uuid_from
from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.model import Reading, StateChange
from genesys_sentiment_exporter.tracker import AgentTracker, TrackerLimits

BASE_TIME = 1_795_806_000.0  # 2026-11-26T19:00:00Z


@dataclass(slots=True)
class Expected:
    queue_id: str
    window: list[float] = field(default_factory=list)  # the last `window_size` scores, oldest first
    last_timestamp: float | None = None
    active: bool = True


class FixedClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def populate(
    agents: int, seed: int = 11, queues: int = 50, window_size: int = 5, max_agents: int | None = None
) -> tuple[Ingest, dict[str, Expected]]:
    """`agents` agents: ~85 % live with a full window, ~10 % in wrapup (grace), ~5 % with no reading yet."""
    rng = random.Random(seed)
    limits = TrackerLimits(window_size=window_size, max_agents=max_agents or max(agents, 20_000))
    # Each event is received at its own event time (ingest replaces an eventTime far from the receive
    # time, which would make the page and the expected model differ).
    received = [BASE_TIME]
    ingest = Ingest(AgentTracker(limits), clock=FixedClock(), wall=lambda: received[0])
    queue_ids = [uuid_from(rng) for _ in range(queues)]
    expected: dict[str, Expected] = {}
    at = BASE_TIME
    for _ in range(agents):
        agent_id, queue_id, conversation_id = uuid_from(rng), rng.choice(queue_ids), uuid_from(rng)
        model = Expected(queue_id)
        expected[agent_id] = model
        roll = rng.random()
        at += 0.001
        received[0] = at
        first_state = "alerting" if roll < 0.05 else "connected"
        ingest.conversation(None, StateChange(agent_id, queue_id, conversation_id, first_state, at), "absent")
        if roll < 0.05:
            continue
        for _ in range(rng.randint(window_size, window_size + 4)):
            at += 0.001
            received[0] = at
            score = round(rng.uniform(-1.0, 1.0), 2)
            ingest.conversation(
                Reading(agent_id, queue_id, conversation_id, score, at),
                StateChange(agent_id, queue_id, conversation_id, "connected", at),
            )
            model.window = [*model.window, score][-window_size:]
            model.last_timestamp = at
        if roll < 0.15:
            at += 0.001
            received[0] = at
            ingest.conversation(None, StateChange(agent_id, queue_id, conversation_id, "wrapup", at), "absent")
            model.active = False
    return ingest, expected
