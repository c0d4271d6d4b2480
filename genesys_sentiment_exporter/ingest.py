"""Where every message ends in exactly one counted outcome.

Sources hand normalised events here; this module applies them to the tracker
and counts what became of each message, so "every event is either used or
counted as rejected with a reason" holds for every source alike.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from genesys_sentiment_exporter.catalogue import ClampDirection, Outcome
from genesys_sentiment_exporter.model import Reading, StateChange
from genesys_sentiment_exporter.postcall import PostCallBook
from genesys_sentiment_exporter.tracker import AgentTracker

log = logging.getLogger("exporter.ingest")

# eventTime is the sender's clock. Beyond these bounds from the receive time it is replaced by the
# receive time (and counted): a far-future time kept "last reading" fresh for years, hiding the
# readings-stopped alert; a far-past one fired it at once.
EVENT_TIME_FUTURE_SECONDS = 60.0
EVENT_TIME_PAST_SECONDS = 300.0

MISSING_SENTIMENT = Outcome.MISSING_SENTIMENT
INVALID_SCORE = Outcome.INVALID_SCORE
_READING = Outcome.READING  # bound once: a member read through its enum class costs ~50 ns (per utterance)


class RateLimitedWarning:
    """Logs a warning at most once per interval, saying how many were suppressed."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.next_at = 0.0
        self.suppressed = 0

    def __call__(self, logger: logging.Logger, message: str, *args: object) -> None:
        now = self.clock()
        if now < self.next_at:
            self.suppressed += 1
            return
        if self.suppressed:
            message += " (%d similar warnings suppressed)"
            args = (*args, self.suppressed)
        self.suppressed = 0
        self.next_at = now + self.interval
        logger.warning(message, *args)


class Ingest:
    """Applies events to the tracker and owns the per-outcome message counter."""

    def __init__(
        self,
        tracker: AgentTracker,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.tracker = tracker
        self.clock = clock
        self.wall = wall
        self.messages: Counter[Outcome] = Counter()
        self.event_time_clamped: Counter[ClampDirection] = Counter()  # direction "future"/"past" -> readings
        self._warn_missing = RateLimitedWarning(60.0, clock)
        self.on_reading: Callable[[Reading], None] | None = None  # `check` watches readings go by
        # ... and the states events carry (a repeat of an agent's current state may skip it).
        self.on_state: Callable[[StateChange], None] | None = None
        # Transcript utterances: one tracker per scored party (customer always first: `tracker`), each
        # utterance's outcome by (party, outcome), and Genesys' post-call scores (never a live reading).
        self.parties: dict[str, AgentTracker] = {tracker.party: tracker}
        self.utterances: Counter[tuple[str, str]] = Counter()
        self.postcall = PostCallBook(max_agents=tracker.limits.max_agents)

    def add_party(self, tracker: AgentTracker) -> None:
        """Score another party (the agent's own words) in its own tracker; it follows the same calls."""
        self.parties[tracker.party] = tracker

    def utterance(self, reading: Reading) -> str:
        """One scored utterance to its party's window; its outcome is counted per utterance."""
        tracker = self.parties.get(reading.party)
        outcome = "party_not_scored" if tracker is None else tracker.reading(reading, self.clock())
        self.utterances[(reading.party, outcome)] += 1
        if outcome == _READING and self.on_reading is not None:
            self.on_reading(reading)
        return outcome

    def count_utterance(self, party: str, outcome: str) -> None:
        self.utterances[(party, outcome)] += 1

    def follow(self, change: StateChange, now: float) -> None:
        """A state change for the other parties' trackers (the primary one gets it through `conversation`)."""
        for tracker in self.parties.values():
            if tracker is not self.tracker and not tracker.is_current_state(
                change.agent_id, change.conversation_id, change.state
            ):
                tracker.state(change, now)

    def count(self, outcome: Outcome) -> None:
        self.messages[outcome] += 1

    def bounded_time(self, timestamp: float) -> float:
        """The event time, or the receive time when the two are too far apart (counted)."""
        now = self.wall()
        if timestamp > now + EVENT_TIME_FUTURE_SECONDS:
            self.event_time_clamped[ClampDirection.FUTURE] += 1
            return now
        if timestamp < now - EVENT_TIME_PAST_SECONDS:
            self.event_time_clamped[ClampDirection.PAST] += 1
            return now
        return timestamp

    def conversation_fields(
        self,
        agent_id: str,
        queue_id: str,
        conversation_id: str,
        state: str | None,
        score: float | None,
        timestamp: float,
        sentiment: str,
    ) -> Outcome:
        """Apply a validated event given as plain fields; the hot path of a stream.

        Most of a live stream is the next score of a call the agent is already on,
        in the state we already know: that case updates the agent in place. Every
        other event goes through `conversation`, which makes the same decisions
        for it with the normalised model objects.
        """
        agent = self.tracker.agents.get(agent_id)
        if (
            score is not None
            and agent is not None
            and agent.conversation_id == conversation_id
            and agent.queue_id == queue_id  # a new queue id goes through the tracker's checks
            and (state is None or state == agent.state)
            and self.on_reading is None
        ):
            self.tracker.record(agent, queue_id, score, self.bounded_time(timestamp), None, self.clock())
            self.messages[Outcome.READING] += 1
            return Outcome.READING
        reading = None if score is None else Reading(agent_id, queue_id, conversation_id, score, timestamp)
        change = None if state is None else StateChange(agent_id, queue_id, conversation_id, state, timestamp)
        return self.conversation(reading, change, sentiment)

    def conversation(self, reading: Reading | None, state: StateChange | None, sentiment: str = "ok") -> Outcome:
        """Apply one conversation message; `sentiment` says why a message has no reading."""
        now = self.clock()
        tracker = self.tracker
        outcome: Outcome | None = None
        if state is not None and self.on_state is not None:
            self.on_state(state)
        if state is not None and not tracker.is_current_state(state.agent_id, state.conversation_id, state.state):
            outcome = tracker.state(state, now)
        if state is not None and len(self.parties) > 1:
            self.follow(state, now)
        if reading is not None:
            if outcome not in (Outcome.AGENT_REFUSED, Outcome.STALE, Outcome.INVALID_ID):
                reading.timestamp = self.bounded_time(reading.timestamp)
                outcome = tracker.reading(reading, now)
                if self.on_reading is not None:
                    self.on_reading(reading)
        elif sentiment in (MISSING_SENTIMENT, INVALID_SCORE) or not outcome:
            # A message that only repeats the state and carries no score: the field-selection trap.
            outcome = INVALID_SCORE if sentiment == INVALID_SCORE else MISSING_SENTIMENT
            if outcome == MISSING_SENTIMENT:
                self._warn_missing(
                    log,
                    "conversation event without a sentiment score (agent %s): the sentiment.score field "
                    "was not requested or a server-side filter removed it; it is NOT counted as 0.0",
                    state.agent_id if state is not None else "?",
                )
        assert outcome is not None  # every branch above set one
        self.messages[outcome] += 1
        return outcome
