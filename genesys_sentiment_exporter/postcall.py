"""Genesys' own sentiment score, which is computed after the call: kept apart from the live window.

`v2.speechandtextanalytics.conversation.{id}.sentiment` carries one overall score and trend per call,
"after transcription is complete" (shared/genesys-transcription-notes.md §8). It says how an agent's
recent calls went (a coaching signal), not how the call in progress goes, so it feeds its own families
(`genesys_agent_postcall_*`) and never a live reading. Pure: fed values, no clock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

POSTCALL_SCORE = "postcall_score"
POSTCALL_REPEAT = "postcall_repeat"


@dataclass(slots=True)
class PostCall:
    """One agent's post-call scores: the last finished call's overall score and trend, recent calls' mean."""

    queue_id: str
    last_score: float
    last_trend: float | None
    timestamp: float
    recent: list[float]
    calls: int = 1


class PostCallBook:
    """Genesys' overall score per call, attributed to the call's agent; never part of the live window.

    Bounded: at most `max_agents` agents (the oldest update goes first).
    """

    def __init__(self, recent: int = 5, max_agents: int = 20_000) -> None:
        self.recent = recent
        self.max_agents = max_agents
        self.agents: OrderedDict[str, PostCall] = OrderedDict()
        self.scored: OrderedDict[str, None] = OrderedDict()  # conversations already counted

    def record(
        self, agent: str, queue: str, conversation_id: str, score: float, trend: float | None, wall: float
    ) -> str:
        if conversation_id in self.scored:
            return POSTCALL_REPEAT
        self.scored[conversation_id] = None
        while len(self.scored) > 4 * self.max_agents:
            self.scored.popitem(last=False)
        entry = self.agents.pop(agent, None)
        if entry is None:
            entry = PostCall(queue, score, trend, wall, [score], 1)
        else:
            entry.queue_id, entry.last_score, entry.last_trend, entry.timestamp = queue, score, trend, wall
            entry.recent = [*entry.recent, score][-self.recent :]
            entry.calls += 1
        self.agents[agent] = entry
        while len(self.agents) > self.max_agents:
            self.agents.popitem(last=False)
        return POSTCALL_SCORE

    def mean(self, agent: str) -> float:
        recent = self.agents[agent].recent
        return sum(recent) / len(recent)
