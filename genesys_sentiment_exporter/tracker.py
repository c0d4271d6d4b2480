"""Per-agent rolling sentiment: pure state, fed plain values, no I/O and no clock of its own.

The design document's example keeps one buffer for every agent; here each agent
owns a window that holds the last N readings of its *current* conversation, so
one agent's bad call never drags another's average and a new call starts clean.
Callers pass `now` (a monotonic clock reading) so that tests drive time directly.
"""

from __future__ import annotations

import heapq
import sys
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from genesys_sentiment_exporter.catalogue import DropReason, HadSentiment, Outcome
from genesys_sentiment_exporter.model import Phase, Reading, StateChange

__all__ = ["AgentState", "AgentTracker", "Outcome", "TrackerLimits"]

_READING = Outcome.READING  # bound once: a member read through its enum class costs ~50 ns (per reading)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


if TYPE_CHECKING:
    _FloatArray = array[float]
else:
    _FloatArray = array


class Window(_FloatArray):
    """The scores of the current conversation: a flat array of doubles (104 bytes for five, where a
    list of float objects takes 240), equal to the list of the same scores."""

    __slots__ = ()

    def __new__(cls, scores: Window | None = None) -> Window:
        return super().__new__(cls, "d", () if scores is None else scores)  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, list):
            return list(self) == other
        return super().__eq__(other)

    __hash__ = None

    def __repr__(self) -> str:
        return repr(list(self))


class AgentState:
    """One agent's live conversation. `__slots__`, interned queue ids and states, and the label text
    kept once as the bytes the exposition cache writes keep an agent (page rows included) under 1 KiB."""

    __slots__ = (
        "agent_id",
        "conversation_id",
        "grace_deadline",
        "label",
        "label_id",
        "last_seen",
        "last_timestamp",
        "phase",
        "previous_conversation_id",
        "queue_id",
        "readings",
        "scores",
        "slot",
        "state",
        "trend",
    )

    def __init__(
        self,
        agent_id: str,
        queue_id: str,
        conversation_id: str,
        now: float,
        label_id: str | None = None,
        party: str = "customer",
    ) -> None:
        self.agent_id = agent_id
        self.label_id = agent_id if label_id is None else label_id  # what `agent_id` says in /metrics
        self.queue_id = sys.intern(queue_id)  # a few hundred queues shared by thousands of agents
        self.conversation_id = conversation_id
        self.previous_conversation_id = ""
        self.phase = Phase.ACTIVE
        self.state = ""
        self.grace_deadline = 0.0
        self.last_seen = now
        self.scores = Window()  # ring buffer, at most window_size long
        self.readings = 0  # readings in the current conversation (may exceed the window)
        self.last_timestamp = 0.0
        self.trend: float | None = None
        self.slot = -1  # the agent's row in the exposition cache (metrics.AgentText), -1: none yet
        self.label = self._render_labels(party)

    def _render_labels(self, party: str) -> bytes:
        # Pre-escaped label text up to the value, shared by the agent's rows of every family.
        labels = f'agent_id="{_escape(self.label_id)}",queue_id="{_escape(self.queue_id)}",party="{party}"'
        return (labels + "} ").encode()

    @property
    def party(self) -> str:
        """Whose words the window scores: customer (default) or agent (kept in the label only)."""
        return self.label.rpartition(b',party="')[2][:-3].decode()

    @property
    def label_text(self) -> str:
        """The label pairs as exposed, without the braces."""
        return self.label[:-2].decode()

    @property
    def sum(self) -> float:
        """The window's sum, added up when asked (a scrape of a changed agent): a running sum would
        cost a float object per agent and a re-sum against drift."""
        return sum(self.scores)

    @property
    def window_readings(self) -> int:
        return len(self.scores)

    @property
    def rolling_average(self) -> float:
        return self.sum / len(self.scores) if self.scores else float("nan")

    @property
    def last_score(self) -> float:
        if not self.scores:
            return float("nan")
        # The newest reading sits just before the ring's write position.
        return self.scores[(self.readings - 1) % len(self.scores)]

    def set_queue(self, queue_id: str) -> None:
        if queue_id != self.queue_id:
            party = self.party
            self.queue_id = sys.intern(queue_id)
            self.label = self._render_labels(party)

    def start_conversation(self, conversation_id: str) -> None:
        self.previous_conversation_id = self.conversation_id
        self.conversation_id = conversation_id
        self.phase = Phase.ACTIVE
        self.state = ""
        self.scores = Window()
        self.readings = 0
        self.trend = None

    def add(self, score: float, window_size: int) -> None:
        if len(self.scores) < window_size:
            self.scores.append(score)
            if len(self.scores) == window_size:  # full: an exact-size copy (appends over-allocate)
                self.scores = Window(self.scores)
        else:
            self.scores[self.readings % window_size] = score
        self.readings += 1


# Genesys ids are 36-character GUIDs; pseudonyms are shorter. Anything longer is not an id: refused, so
# that one frame of megabyte "ids" cannot make a megabyte /metrics page (or a label Prometheus rejects).
MAX_ID_LENGTH = 128
OVERFLOW_QUEUE = "other"  # ended calls of queues beyond `max_queue_series` are counted here


def exportable_id(value: str) -> bool:
    """True for ids that can be label values: bounded, and UTF-8 can carry them (no lone surrogates)."""
    if len(value) > MAX_ID_LENGTH:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class TrackerLimits:
    window_size: int = 5
    grace_seconds: float = 5.0
    idle_seconds: float = 900.0
    max_agents: int = 20_000
    # genesys_conversations_ended_total{queue_id}: at most this many queues, each dropped after an hour
    # without an ended call or a tracked agent (30 000 forged queue ids once made 30 000 series for good).
    max_queue_series: int = 2_000
    queue_series_idle_seconds: float = 3_600.0


class AgentTracker:
    """Holds every tracked agent; answers what the collector needs at scrape time."""

    def __init__(
        self,
        limits: TrackerLimits | None = None,
        label_id: Callable[[str], str] | None = None,
        party: str = "customer",
    ) -> None:
        self.limits = limits or TrackerLimits()
        self.party = party  # the `party` label of every window this tracker holds
        # identity.AgentIdentity.label: applied once per agent, when it is first tracked.
        self.label_id = label_id
        self.agents: dict[str, AgentState] = {}
        # Agents added, changed or dropped since the exposition cache last looked (None: nobody
        # renders per-agent text, e.g. --agent-identity none). A scrape re-renders these only.
        self.changed: set[AgentState] | None = None
        self.exposition: Any = None  # metrics.AgentText, once a collector renders this tracker
        # Deadlines, so that expire() costs what expires, not what is tracked: `agents` is kept in
        # order of the agents' last event (each event re-inserts its agent, so the front is the
        # idlest: no second structure per agent), and a heap of grace-period ends (entries of agents
        # that left or started another call are skipped when they surface).
        self._grace: list[tuple[float, int, str]] = []
        self._grace_pushes = 0
        self.agents_refused = 0
        self.dropped: Counter[DropReason] = Counter()
        # (queue_id, had_sentiment) -> conversations finished
        self.conversations_ended: Counter[tuple[str, HadSentiment]] = Counter()
        # queue -> `now` of its first tracked call or its last ended call (expiry). Its ended-calls
        # series are served at 0 from the first tracked call on, so the first call that ends there
        # is an increase Prometheus sees (a series born at 1 is not).
        self.queue_last_ended: dict[str, float] = {}
        self._now = 0.0  # latest `now` a caller passed: ended calls are stamped with it

    def _agent(self, agent_id: str, queue_id: str, conversation_id: str, now: float) -> AgentState | None:
        agent = self.agents.get(agent_id)
        if agent is None:
            if len(self.agents) >= self.limits.max_agents:
                self.agents_refused += 1
                return None
            label = None if self.label_id is None else self.label_id(agent_id)
            agent = AgentState(agent_id, queue_id, conversation_id, now, label, self.party)
            self.agents[agent_id] = agent
            self._see_queue(queue_id, now)
        if self.changed is not None:
            self.changed.add(agent)
        return agent

    def _see_queue(self, queue: str, now: float) -> None:
        if queue not in self.queue_last_ended:
            if len(self.queue_last_ended) >= self.limits.max_queue_series:
                queue = OVERFLOW_QUEUE
            self.queue_last_ended.setdefault(queue, now)

    def _finish(self, agent: AgentState) -> None:
        had = HadSentiment.TRUE if agent.readings else HadSentiment.FALSE
        queue = agent.queue_id
        if queue not in self.queue_last_ended and len(self.queue_last_ended) >= self.limits.max_queue_series:
            queue = OVERFLOW_QUEUE
        self.queue_last_ended[queue] = self._now
        self.conversations_ended[(queue, had)] += 1

    @staticmethod
    def _exportable(agent_id: str, queue_id: str, conversation_id: str) -> bool:
        return exportable_id(agent_id) and exportable_id(queue_id) and len(conversation_id) <= MAX_ID_LENGTH

    def reading(self, event: Reading, now: float) -> Outcome:
        self._now = now
        agent = self.agents.get(event.agent_id)
        if agent is not None and agent.conversation_id == event.conversation_id and agent.queue_id == event.queue_id:
            # The next reading of the call the agent is on (most of them): its three ids equal ones that
            # passed `_exportable` when the agent, its call and its queue were taken in, so no check again.
            self.record(agent, event.queue_id, event.score, event.timestamp, event.trend, now)
            return _READING
        if not self._exportable(event.agent_id, event.queue_id, event.conversation_id):
            return Outcome.INVALID_ID
        agent = self._agent(event.agent_id, event.queue_id, event.conversation_id, now)
        if agent is None:
            return Outcome.AGENT_REFUSED
        if event.conversation_id != agent.conversation_id:
            if event.conversation_id == agent.previous_conversation_id:
                # A late score of a call the agent already left must not pollute the new call.
                return Outcome.STALE
            # The agent moved on to another call (its end event may have been lost): close the old one.
            self._finish(agent)
            agent.start_conversation(event.conversation_id)
        self.record(agent, event.queue_id, event.score, event.timestamp, event.trend, now)
        return Outcome.READING

    def record(
        self, agent: AgentState, queue_id: str, score: float, timestamp: float, trend: float | None, now: float
    ) -> None:
        """Add a reading to the agent's current conversation (the caller checked it is that one)."""
        if queue_id != agent.queue_id:
            agent.set_queue(queue_id)
            self._see_queue(queue_id, now)
        agent.add(score, self.limits.window_size)
        agent.last_timestamp = timestamp
        if trend is not None:
            agent.trend = trend
        agent.last_seen = now
        agents = self.agents  # to the back of the recency order
        del agents[agent.agent_id]
        agents[agent.agent_id] = agent
        if self.changed is not None:
            self.changed.add(agent)

    def state(self, event: StateChange, now: float) -> Outcome:
        self._now = now
        if not self._exportable(event.agent_id, event.queue_id, event.conversation_id):
            return Outcome.INVALID_ID
        agent = self._agent(event.agent_id, event.queue_id, event.conversation_id, now)
        if agent is None:
            return Outcome.AGENT_REFUSED
        phase = event.phase
        if event.conversation_id != agent.conversation_id:
            if event.conversation_id == agent.previous_conversation_id:
                return Outcome.STALE
            if phase is Phase.ENDING and agent.phase is Phase.ACTIVE:
                # The end of some other call while this one is live: nothing of ours changes.
                return Outcome.STALE
            self._finish(agent)
            agent.start_conversation(event.conversation_id)
        if event.queue_id != agent.queue_id:
            agent.set_queue(event.queue_id)
            self._see_queue(event.queue_id, now)
        agent.last_seen = now
        agents = self.agents  # to the back of the recency order
        del agents[agent.agent_id]
        agents[agent.agent_id] = agent
        agent.state = sys.intern(event.state)
        if phase is Phase.ENDING:
            if agent.phase is Phase.ACTIVE:
                agent.phase = Phase.ENDING
                agent.grace_deadline = now + self.limits.grace_seconds
                self._grace_pushes += 1
                heapq.heappush(self._grace, (agent.grace_deadline, self._grace_pushes, agent.agent_id))
        else:
            agent.phase = Phase.ACTIVE
        return Outcome.STATE_CHANGE

    def expire(self, now: float) -> None:
        """Drop agents whose grace period is over (alerts resolve) or who went silent."""
        idle_before = now - self.limits.idle_seconds
        gone: list[tuple[str, DropReason]] = []
        due: set[str] = set()
        grace, agents = self._grace, self.agents
        while grace and grace[0][0] <= now:
            deadline, _n, agent_id = heapq.heappop(grace)
            agent = agents.get(agent_id)
            # One agent can hold two entries with the same deadline (a call ends, another of its calls
            # ends in the same instant): it is dropped once.
            if (
                agent is not None
                and agent_id not in due
                and agent.phase is Phase.ENDING
                and agent.grace_deadline == deadline
            ):
                gone.append((agent_id, DropReason.GRACE_ELAPSED))
                due.add(agent_id)
        for agent_id, agent in agents.items():  # oldest event first: stops at the first agent still active
            if agent.last_seen >= idle_before:
                break
            if agent_id not in due:
                gone.append((agent_id, DropReason.IDLE))
        self._now = now
        for agent_id, reason in gone:
            agent = self.agents.pop(agent_id)
            if self.changed is not None:
                self.changed.add(agent)  # its rows leave the page
            if reason is DropReason.GRACE_ELAPSED:
                self._finish(agent)
            self.dropped[reason] += 1
        self._expire_queues(now)

    def _expire_queues(self, now: float) -> None:
        """Forget the ended-calls series of queues with no ended call and no tracked agent for a while."""
        before = now - self.limits.queue_series_idle_seconds
        idle = [q for q, at in self.queue_last_ended.items() if at < before]
        if not idle:
            return
        busy = {agent.queue_id for agent in self.agents.values()}
        for queue in idle:
            if queue in busy:
                self.queue_last_ended[queue] = now
                continue
            del self.queue_last_ended[queue]
            for had in HadSentiment:
                self.conversations_ended.pop((queue, had), None)

    def is_current_state(self, agent_id: str, conversation_id: str, state: str) -> bool:
        """True when an event's state adds nothing: the agent's current conversation, already in it."""
        agent = self.agents.get(agent_id)
        return agent is not None and agent.conversation_id == conversation_id and agent.state == state
