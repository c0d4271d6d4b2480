"""Normalised events that every source hands to the tracker.

A source (the design document's analytics WebSocket, the Notifications API, a
test) turns whatever its wire format is into these plain values, so that the
tracker, the metrics and the rules never depend on where a reading came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Phase(Enum):
    """Where a conversation is, as far as sentiment tracking cares."""

    ACTIVE = "active"  # alerting, connected, held: readings belong to the live window
    ENDING = "ending"  # wrapup, disconnected, ended: grace period, late readings still accepted


# The design document's (and the pinned protocol's) `state` values, mapped to phases.
# Anything else is still accepted as a state (platforms add enum values) but treated as active.
ENDING_STATES = frozenset({"wrapup", "disconnected", "ended", "terminated"})


def phase_of(state: str) -> Phase:
    return Phase.ENDING if state in ENDING_STATES else Phase.ACTIVE


# Not frozen: a frozen dataclass' __init__ goes through object.__setattr__ per field, which costs
# about 1 us per event on the hot path (bench/). Treat instances as immutable all the same.
@dataclass(slots=True)
class Reading:
    """One sentiment score for one agent's conversation, already normalised to [-1, 1]."""

    agent_id: str
    queue_id: str
    conversation_id: str
    score: float
    timestamp: float  # wall-clock epoch seconds of the event (eventTime, or receive time)
    trend: float | None = None  # the design document stream's trend, where a source provides one
    party: str = "customer"  # whose words: customer (EXTERNAL) or agent (INTERNAL) on a transcript


@dataclass(slots=True)
class StateChange:
    """A conversation of an agent moved to `state` (the raw platform state string)."""

    agent_id: str
    queue_id: str
    conversation_id: str
    state: str
    timestamp: float

    @property
    def phase(self) -> Phase:
        return phase_of(self.state)


UNKNOWN_QUEUE = "unknown"
