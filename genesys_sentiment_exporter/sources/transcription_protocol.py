"""Live transcripts (`v2.conversations.{id}.transcription`) into per-utterance readings, pure.

Why this topic: Genesys computes its own sentiment score after the call (help centre: "always
automatically performed after transcription is complete"), so the only live signal is what is said.
Each final utterance is scored by the utterance analyzer (`analysis/`) and becomes one reading for its
party: `EXTERNAL` is the customer, `INTERNAL` the agent (also IVR and ACD prompts, hence the check
against when the agent connected). Body fields: shared/genesys-transcription-notes.md §1-3.

Every utterance ends in one counted outcome (`UtteranceOutcome`), every message in one message outcome:
keepalives, session ends, batches (whose utterances are counted one by one), unattributed calls.
A reading's timestamp is when the words were spoken: session start + the utterance's offset.

No I/O, no clock: callers pass the arrival wall time.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from genesys_sentiment_exporter.analysis import CannotScore, UtteranceAnalyzer
from genesys_sentiment_exporter.model import Reading

TRANSCRIPTION = re.compile(r"^v2\.conversations\.([^.]+)\.transcription$")
TOPIC_KIND = "v2.conversations.{id}.transcription"

CUSTOMER = "customer"
AGENT = "agent"
PARTIES = (CUSTOMER, AGENT)
CHANNEL_PARTY = {"EXTERNAL": CUSTOMER, "INTERNAL": AGENT}
# IVR and ACD prompts are INTERNAL too: an INTERNAL utterance that began this long before the agent
# connected is not the agent's (offsets and our connect stamp differ by a few hundred ms).
BEFORE_AGENT_TOLERANCE = 2.0
MAX_UNSCORABLE = 100  # dialects in `check`'s unscorable table, and queues per dialect
MAX_DIALECT_CHARS = 64  # a BCP 47 tag is far shorter; what the wire sends beyond this is cut


def transcription_topic(conversation_id: str) -> str:
    return f"v2.conversations.{conversation_id}.transcription"


class MessageOutcome:
    """What became of a transcription message (the messages counter's `outcome`)."""

    TRANSCRIPT = "transcript"  # carried utterances: each is counted in the utterances family
    KEEPALIVE = "transcript_keepalive"  # no utterances, session ongoing (at start and every 5 minutes)
    ENDED = "transcript_ended"  # no utterances, SESSION_ENDED
    MALFORMED = "malformed"


class UtteranceOutcome:
    """What became of one utterance (`genesys_transcript_utterances_total{party,outcome}`).

    `reading`/`stale`/`agent_refused`/`invalid_id` are the tracker's answers for scored utterances; the
    analyzer's refusals (`unsupported_language`, `unknown_language`, `empty_text`, `analyzer_error`)
    keep their `CannotScoreReason` values, and never become a 0.0 reading.
    """

    PARTIAL = "partial"  # isFinal false: an interim hypothesis its final will replace
    REPEAT = "repeat"  # a final utteranceId already scored (redelivery, channel overlap)
    PARTY_NOT_SCORED = "party_not_scored"  # agent speech while --score-parties leaves the agent out
    UNKNOWN_CHANNEL = "unknown_channel"  # BOTH / UNKNOWN / absent: nobody to attribute it to
    BEFORE_AGENT = "before_agent"  # INTERNAL speech before the agent connected (IVR, queue prompts)
    UNATTRIBUTED = "unattributed"  # the call has no known agent
    MALFORMED = "malformed"  # no alternatives, or not an object


@dataclass(slots=True, frozen=True)
class Utterance:
    utterance_id: str
    party: str  # customer, agent, or "" for an unknown channel
    final: bool
    text: str | None  # None: no alternative at all
    dialect: str | None
    spoken_at: float | None  # epoch seconds when the utterance began; None when the body cannot say


@dataclass(slots=True)
class TranscriptMessage:
    conversation_id: str
    status: str  # SESSION_ONGOING, SESSION_ENDED, UNKNOWN or ""
    utterances: list[Utterance] = field(default_factory=list)
    malformed: int = 0  # transcript entries that were not objects


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def read_message(body: dict[str, Any], topic_id: str) -> TranscriptMessage | None:
    """The parts of a `TranscriptionTopicTranscriptionMessage` we use; None without a conversation."""
    conversation_id = body.get("conversationId")
    if not isinstance(conversation_id, str) or not conversation_id:
        conversation_id = topic_id
    if not conversation_id:
        return None
    status_obj = body.get("status")
    status = status_obj.get("status") if isinstance(status_obj, dict) else None
    message = TranscriptMessage(conversation_id, status if isinstance(status, str) else "")
    # The offset's origin is not documented (sessionStartTimeMs or transcriptionStartTimeMs, tens of ms
    # apart): the session start, as the issue and the third-party latency study read it.
    origin = _number(body.get("sessionStartTimeMs"))
    if origin is None:
        origin = _number(body.get("transcriptionStartTimeMs"))
    transcripts = body.get("transcripts")
    if not isinstance(transcripts, list):
        return message
    for entry in transcripts:
        if not isinstance(entry, dict):
            message.malformed += 1
            continue
        uid = entry.get("utteranceId")
        channel = entry.get("channel")
        dialect = entry.get("dialect")
        text: str | None = None
        spoken_at: float | None = None
        alternatives = entry.get("alternatives")
        if isinstance(alternatives, list) and alternatives and isinstance(alternatives[0], dict):
            best = alternatives[0]  # Genesys sends one alternative today
            decorated, raw = best.get("decoratedTranscript"), best.get("transcript")
            text = decorated if isinstance(decorated, str) and decorated else raw if isinstance(raw, str) else ""
            offset = _number(best.get("offsetMs"))
            if origin is not None and offset is not None:
                spoken_at = (origin + offset) / 1000.0
        message.utterances.append(
            Utterance(
                uid if isinstance(uid, str) else "",
                CHANNEL_PARTY.get(channel, "") if isinstance(channel, str) else "",
                entry.get("isFinal") is True,
                text,
                dialect if isinstance(dialect, str) and dialect else None,
                spoken_at,
            )
        )
    return message


@dataclass(slots=True)
class Decision:
    """A message's outcome, the readings to hand the tracker, and the other utterances' outcomes."""

    outcome: str
    readings: list[Reading] = field(default_factory=list)
    utterances: list[tuple[str, str]] = field(default_factory=list)  # (party, outcome) of the unscored
    ended: bool = False  # SESSION_ENDED: the topic can go once the call's grace is over


class Transcripts:
    """Scores the final utterances of attributed calls, once each."""

    def __init__(self, analyzer: UtteranceAnalyzer, parties: frozenset[str], remember: int = 20_000) -> None:
        self.analyzer = analyzer
        self.parties = parties
        self.remember = remember
        self.scored: OrderedDict[str, set[str]] = OrderedDict()  # conversation -> final utteranceIds
        # dialect -> (queue -> utterances the analyzer could not score for language): for `check`
        self.unscorable: dict[str, dict[str, int]] = {}

    def forget(self, conversation_id: str) -> None:
        self.scored.pop(conversation_id, None)

    def decide(
        self,
        message: TranscriptMessage,
        who: tuple[str, str] | str,
        wall: float,
        connected_at: float | None = None,
    ) -> Decision:
        """`who` is (agent, queue) from the conversation topics, or the outcome saying why there is none."""
        ended = message.status == "SESSION_ENDED"
        if not message.utterances and not message.malformed:
            return Decision(MessageOutcome.ENDED if ended else MessageOutcome.KEEPALIVE, ended=ended)
        decision = Decision(MessageOutcome.TRANSCRIPT, ended=ended)
        decision.utterances.extend(("", UtteranceOutcome.MALFORMED) for _ in range(message.malformed))
        if isinstance(who, str):
            decision.outcome = who  # unattributed / stale: the message's outcome says it
            decision.utterances.extend((u.party, UtteranceOutcome.UNATTRIBUTED) for u in message.utterances)
            return decision
        agent, queue = who
        seen = self.scored.get(message.conversation_id)
        if seen is None:
            seen = self.scored[message.conversation_id] = set()
            while len(self.scored) > self.remember:
                self.scored.popitem(last=False)
        for utterance in message.utterances:
            party = utterance.party
            outcome = self._unscored(utterance, seen, connected_at)
            if outcome:
                decision.utterances.append((party, outcome))
                continue
            result = self.analyzer.analyze(utterance.text or "", utterance.dialect)
            if utterance.utterance_id:
                seen.add(utterance.utterance_id)
            if isinstance(result, CannotScore):
                decision.utterances.append((party, result.reason.value))
                if result.reason.value in ("unsupported_language", "unknown_language"):
                    self._unscorable(utterance.dialect, queue)
                continue
            timestamp = utterance.spoken_at if utterance.spoken_at is not None else wall
            decision.readings.append(Reading(agent, queue, message.conversation_id, result, timestamp, None, party))
        return decision

    def _unscorable(self, dialect: str | None, queue: str) -> None:
        """`check`'s table: the dialect comes from the wire, so both its length and the number of
        dialects are bounded (100 dialects of 100 queues), like the queues within one."""
        key = (dialect or "(none)")[:MAX_DIALECT_CHARS]
        per_queue = self.unscorable.get(key)
        if per_queue is None:
            if len(self.unscorable) >= MAX_UNSCORABLE:
                return
            per_queue = self.unscorable[key] = {}
        if queue in per_queue or len(per_queue) < MAX_UNSCORABLE:
            per_queue[queue] = per_queue.get(queue, 0) + 1

    def _unscored(self, utterance: Utterance, seen: set[str], connected_at: float | None) -> str:
        if not utterance.party:
            return UtteranceOutcome.UNKNOWN_CHANNEL
        if not utterance.final:
            return UtteranceOutcome.PARTIAL
        if utterance.text is None:
            return UtteranceOutcome.MALFORMED
        if utterance.utterance_id and utterance.utterance_id in seen:
            return UtteranceOutcome.REPEAT
        if utterance.party not in self.parties:
            return UtteranceOutcome.PARTY_NOT_SCORED
        if (
            utterance.party == AGENT
            and connected_at is not None
            and utterance.spoken_at is not None
            and utterance.spoken_at < connected_at - BEFORE_AGENT_TOLERANCE
        ):
            return UtteranceOutcome.BEFORE_AGENT
        return ""
