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
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import msgspec

from genesys_sentiment_exporter.analysis import CannotScore, UtteranceAnalyzer
from genesys_sentiment_exporter.catalogue import Outcome
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

    # `Outcome` members, so the session hands them on without converting a string per frame.
    TRANSCRIPT = Outcome.TRANSCRIPT  # carried utterances: each is counted in the utterances family
    KEEPALIVE = Outcome.TRANSCRIPT_KEEPALIVE  # no utterances, session ongoing (at start and every 5 minutes)
    ENDED = Outcome.TRANSCRIPT_ENDED  # no utterances, SESSION_ENDED
    MALFORMED = Outcome.MALFORMED


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


# Not frozen, like `model.Reading`: a frozen dataclass' __init__ sets each field through
# object.__setattr__, a cost paid per utterance on the hot path (bench/README.md). Treat as immutable.
@dataclass(slots=True)
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


_LARGEST = int(sys.float_info.max)  # an int beyond this has no float: math.isfinite would raise


def _number(value: object) -> float | None:
    """A finite float, or None: bool is no number, and neither is an int too large for a float.

    Exact types, not isinstance: bodies come from json.loads, which makes no subclasses.
    """
    if type(value) is float:
        return value if math.isfinite(value) else None
    if type(value) is int and -_LARGEST <= value <= _LARGEST:
        return float(value)
    return None


def read_message(body: dict[str, Any], topic_id: str) -> TranscriptMessage | None:
    """The parts of a `TranscriptionTopicTranscriptionMessage` we use; None without a conversation.

    Written for the hot path (one call per frame, bench/README.md): exact `type(...) is` checks,
    lookups bound once, no helper call per field; every field still checked before it is used.
    """
    conversation_id = body.get("conversationId")
    if type(conversation_id) is not str or not conversation_id:
        conversation_id = topic_id
    if not conversation_id:
        return None
    status_obj = body.get("status")
    status = status_obj.get("status") if type(status_obj) is dict else None
    message = TranscriptMessage(conversation_id, status if type(status) is str else "")
    transcripts = body.get("transcripts")
    if type(transcripts) is not list or not transcripts:
        return message
    # The offset's origin is not documented (sessionStartTimeMs or transcriptionStartTimeMs, tens of ms
    # apart): the session start, as the issue and the third-party latency study read it.
    origin = _number(body.get("sessionStartTimeMs"))
    if origin is None:
        origin = _number(body.get("transcriptionStartTimeMs"))
    append, parties, number = message.utterances.append, CHANNEL_PARTY, _number
    for entry in transcripts:
        if type(entry) is not dict:
            message.malformed += 1
            continue
        get = entry.get
        uid, channel, dialect, alternatives = get("utteranceId"), get("channel"), get("dialect"), get("alternatives")
        text: str | None = None
        spoken_at: float | None = None
        if type(alternatives) is list and alternatives and type(best := alternatives[0]) is dict:
            # Genesys sends one alternative today
            decorated = best.get("decoratedTranscript")
            if type(decorated) is str and decorated:
                text = decorated
            else:
                raw = best.get("transcript")
                text = raw if type(raw) is str else ""
            offset = number(best.get("offsetMs"))
            if origin is not None and offset is not None:
                spoken_at = (origin + offset) / 1000.0
        append(
            Utterance(
                uid if type(uid) is str else "",
                parties.get(channel, "") if type(channel) is str else "",
                get("isFinal") is True,
                text,
                dialect if type(dialect) is str and dialect else None,
                spoken_at,
            )
        )
    return message


# -- the typed form of a body: what `notifications_protocol.parse_fast` decodes transcription frames into --
#
# The fields `read_message` reads, typed as they come when the body is well formed. A body that does not fit
# (a wrong type anywhere, an entry or alternative that is not an object, an int beyond 64 bits, NaN, a lone
# surrogate) fails to decode and goes to `json.loads` and `read_message` instead: these types only decide
# which frames take the fast way, never what a frame means. Null and absent both decode to None, as both
# read as absent in `read_message`. Unknown fields are skipped; a repeated key keeps its last value, as
# `json.loads` does. gc=False: these hold no references back to themselves and live for one frame.


class WireAlternative(msgspec.Struct, gc=False):
    transcript: str | None = None
    decoratedTranscript: str | None = None
    offsetMs: int | float | None = None


class WireTranscript(msgspec.Struct, gc=False):
    utteranceId: str | None = None
    isFinal: bool | None = None
    channel: str | None = None
    dialect: str | None = None
    alternatives: list[WireAlternative] | None = None


class WireStatus(msgspec.Struct, gc=False):
    status: str | None = None


class WireBody(msgspec.Struct, gc=False):
    conversationId: str | None = None
    sessionStartTimeMs: int | float | None = None
    transcriptionStartTimeMs: int | float | None = None
    status: WireStatus | None = None
    transcripts: list[WireTranscript] | None = None


def read_wire(body: WireBody, topic_id: str) -> TranscriptMessage | None:
    """`read_message` of the same body, read from its typed form (equal answers: a property test
    checks both on generated well-formed and corrupted frames). The types were checked by the decoder,
    so what is left is `read_message`'s meaning of each value: empty strings as absent, the first
    alternative, offsets through `_number`."""
    conversation_id = body.conversationId or topic_id
    if not conversation_id:
        return None
    status = body.status
    message = TranscriptMessage(conversation_id, (status.status or "") if status is not None else "")
    transcripts = body.transcripts
    if not transcripts:
        return message
    origin = _number(body.sessionStartTimeMs)
    if origin is None:
        origin = _number(body.transcriptionStartTimeMs)
    append, parties, number = message.utterances.append, CHANNEL_PARTY, _number
    for entry in transcripts:
        alternatives = entry.alternatives
        text: str | None = None
        spoken_at: float | None = None
        if alternatives:
            best = alternatives[0]
            text = best.decoratedTranscript or best.transcript or ""
            if origin is not None:
                offset = number(best.offsetMs)
                if offset is not None:
                    spoken_at = (origin + offset) / 1000.0
        channel = entry.channel
        append(
            Utterance(
                entry.utteranceId or "",
                parties.get(channel, "") if channel is not None else "",
                entry.isFinal is True,
                text,
                entry.dialect or None,
                spoken_at,
            )
        )
    return message


# `decide_wire`'s outcomes bound once (module globals: no class attribute read per utterance).
UNKNOWN_CHANNEL, PARTIAL, MALFORMED = (
    UtteranceOutcome.UNKNOWN_CHANNEL,
    UtteranceOutcome.PARTIAL,
    UtteranceOutcome.MALFORMED,
)
REPEAT, PARTY_NOT_SCORED = UtteranceOutcome.REPEAT, UtteranceOutcome.PARTY_NOT_SCORED
BEFORE_AGENT, UNATTRIBUTED = UtteranceOutcome.BEFORE_AGENT, UtteranceOutcome.UNATTRIBUTED
TRANSCRIPT_MESSAGE = MessageOutcome.TRANSCRIPT


@dataclass(slots=True)
class Decision:
    """A message's outcome, the readings to hand the tracker, and the other utterances' outcomes."""

    outcome: str  # a MessageOutcome, or the attribution's outcome (both `Outcome` members)
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
        """`who` is (agent, queue) from the conversation topics, or the outcome saying why there is none.

        The checks run in a fixed order, first match wins, so each utterance gets exactly one outcome:
        unknown channel, partial, malformed, repeat, party not scored, before the agent, then the
        analyzer's answer (a reading or its refusal). Inlined: this loop runs once per utterance.
        """
        ended = message.status == "SESSION_ENDED"
        utterances = message.utterances
        if not utterances and not message.malformed:
            return Decision(MessageOutcome.ENDED if ended else MessageOutcome.KEEPALIVE, ended=ended)
        counted: list[tuple[str, str]] = [("", UtteranceOutcome.MALFORMED)] * message.malformed
        decision = Decision(MessageOutcome.TRANSCRIPT, [], counted, ended)
        if isinstance(who, str):
            decision.outcome = who  # unattributed / stale: the message's outcome says it
            counted.extend([(u.party, UtteranceOutcome.UNATTRIBUTED) for u in utterances])
            return decision
        agent, queue = who
        conversation_id = message.conversation_id
        seen = self.scored.get(conversation_id)
        if seen is None:
            seen = self.scored[conversation_id] = set()
            while len(self.scored) > self.remember:
                self.scored.popitem(last=False)
        parties, analyze, readings = self.parties, self.analyzer.analyze, decision.readings
        # INTERNAL speech that began this long before the agent connected was an IVR or queue prompt.
        before = None if connected_at is None else connected_at - BEFORE_AGENT_TOLERANCE
        for utterance in utterances:
            party = utterance.party
            if not party:
                counted.append((party, UtteranceOutcome.UNKNOWN_CHANNEL))
            elif not utterance.final:
                counted.append((party, UtteranceOutcome.PARTIAL))
            elif utterance.text is None:
                counted.append((party, UtteranceOutcome.MALFORMED))
            elif utterance.utterance_id in seen:  # never holds "": an utterance without id is never a repeat
                counted.append((party, UtteranceOutcome.REPEAT))
            elif party not in parties:
                counted.append((party, UtteranceOutcome.PARTY_NOT_SCORED))
            elif (
                party == AGENT
                and before is not None
                and utterance.spoken_at is not None
                and utterance.spoken_at < before
            ):
                counted.append((party, UtteranceOutcome.BEFORE_AGENT))
            else:
                result = analyze(utterance.text, utterance.dialect)
                if utterance.utterance_id:
                    seen.add(utterance.utterance_id)
                if type(result) is float:
                    spoken = utterance.spoken_at
                    readings.append(
                        Reading(agent, queue, conversation_id, result, wall if spoken is None else spoken, None, party)
                    )
                    continue
                assert isinstance(result, CannotScore)
                reason = result.reason.value
                counted.append((party, reason))
                if reason in ("unsupported_language", "unknown_language"):
                    self._unscorable(utterance.dialect, queue)
        return decision

    def decide_wire(
        self,
        body: WireBody,
        conversation_id: str,
        who: tuple[str, str] | str,
        wall: float,
        connected_at: float | None = None,
    ) -> tuple[str, list[Reading], list[tuple[str, str]]]:
        """`decide(read_wire(body, ...), ...)` in one pass: (outcome, readings, unscored utterances), the
        same answer and the same `scored`/`unscorable` bookkeeping (`conversation_id` is `read_wire`'s:
        the body's, else the topic's).

        Why a second copy of the rules: a transcription frame is most of a stream, and building its
        `TranscriptMessage`, an `Utterance` per entry and a `Decision` was about a fifth of what the
        session spent on one. The reference pair stays: `parse` frames go through it, and
        tests/test_notifications_fast_parse.py checks both answer alike on generated bodies. Each
        field is read only once a check needs it, in `decide`'s order.
        """
        transcripts = body.transcripts
        if not transcripts:
            status = body.status
            ended = status is not None and status.status == "SESSION_ENDED"
            return (MessageOutcome.ENDED if ended else MessageOutcome.KEEPALIVE), [], []
        channel_party = CHANNEL_PARTY
        if isinstance(who, str):  # unattributed / stale: the message's outcome says it
            return who, [], [(channel_party.get(e.channel or "", ""), UNATTRIBUTED) for e in transcripts]
        agent, queue = who
        seen = self.scored.get(conversation_id)
        if seen is None:
            seen = self.scored[conversation_id] = set()
            while len(self.scored) > self.remember:
                self.scored.popitem(last=False)
        parties = self.parties
        readings: list[Reading] = []
        counted: list[tuple[str, str]] = []
        append = counted.append
        origin: float | None = None
        origin_read = False  # read once, when an utterance's spoken time is first needed (most never)
        before = None if connected_at is None else connected_at - BEFORE_AGENT_TOLERANCE
        for entry in transcripts:
            party = channel_party.get(entry.channel or "", "")
            if not party:
                append((party, UNKNOWN_CHANNEL))
                continue
            if entry.isFinal is not True:
                append((party, PARTIAL))
                continue
            alternatives = entry.alternatives
            if not alternatives:  # `read_wire`'s text None
                append((party, MALFORMED))
                continue
            uid = entry.utteranceId or ""
            if uid in seen:  # never holds "": an utterance without id is never a repeat
                append((party, REPEAT))
                continue
            if party not in parties:
                append((party, PARTY_NOT_SCORED))
                continue
            best = alternatives[0]
            spoken: float | None = None
            if not origin_read:
                origin_read = True
                origin = _number(body.sessionStartTimeMs)
                if origin is None:
                    origin = _number(body.transcriptionStartTimeMs)
            if origin is not None:
                offset = _number(best.offsetMs)
                if offset is not None:
                    spoken = (origin + offset) / 1000.0
            if party == AGENT and before is not None and spoken is not None and spoken < before:
                append((party, BEFORE_AGENT))
                continue
            dialect = entry.dialect or None
            result = self.analyzer.analyze(best.decoratedTranscript or best.transcript or "", dialect)
            if uid:
                seen.add(uid)
            if type(result) is float:
                readings.append(
                    Reading(agent, queue, conversation_id, result, wall if spoken is None else spoken, None, party)
                )
                continue
            assert isinstance(result, CannotScore)
            reason = result.reason.value
            append((party, reason))
            if reason in ("unsupported_language", "unknown_language"):
                self._unscorable(dialect, queue)
        return TRANSCRIPT_MESSAGE, readings, counted

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
