"""Live transcripts and the post-call score, as the real platform sends them (pure: times are given).

Per shared/genesys-transcription-notes.md: `v2.conversations.{id}.transcription` carries
`TranscriptionTopicTranscriptionMessage` bodies: a keepalive (no transcripts, SESSION_ONGOING) when the
session starts and every 5 minutes, utterances (`EXTERNAL` = customer, `INTERNAL` = agent) grouped into
batches (about 35 s by default, a few seconds with low-latency transcription), interim hypotheses
(`isFinal: false`) that share the final's `utteranceId`, and SESSION_ENDED at the end. Genesys' own
sentiment score (`v2.speechandtextanalytics.conversation.{id}.sentiment`) is computed after the call:
it is emitted `postcall_seconds` after the call ends, one overall score and trend per conversation.

What is said comes from scripts: each scenario reading picks a line whose *intended* polarity is nearest
the scenario's score (the sour call's customer says hostile things, the healthy one polite things). The
number a reader gets is the analyzer's, not the simulator's: the intended polarities here are only
used to choose lines, and a test checks they still agree with VADER. Unset fields are omitted, never null.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Message = tuple[str, dict[str, Any]]

ORG_ID = "5f2a0c1e-0000-4000-8000-00000000000a"
ENGINE = {"engineProvider": "GENESYS", "engineId": "r2d2"}
SESSION_ONGOING = "SESSION_ONGOING"
SESSION_ENDED = "SESSION_ENDED"

# (intended polarity, line): the customer's side. Polarity measured with VADER 3.3.2 when written;
# tests/simulator/test_sim_transcripts.py keeps them honest.
CUSTOMER_LINES: tuple[tuple[float, str], ...] = (
    (-0.906, "I hate this, it is the worst service I have ever had, a total disgrace."),
    (-0.891, "Stop wasting my time, this is the third time I have called about this stupid problem."),
    (-0.872, "This is absolutely ridiculous, I am furious and your service is terrible!"),
    (-0.84, "You people are useless, I am sick of being lied to!"),
    (-0.835, "I am so frustrated, nobody ever fixes anything, this is horrible."),
    (-0.813, "This is a disaster, I am angry and completely fed up with you."),
    (-0.788, "Honestly this is pathetic, I am really disappointed and upset."),
    (-0.735, "It is frustrating that the app keeps failing."),
    (-0.71, "It failed again and I am losing patience."),
    (-0.67, "Unfortunately the tracking page is wrong."),
    (-0.585, "Your company is awful, I want a refund and I am cancelling everything!"),
    (-0.51, "The delivery was late again, that is not great."),
    (-0.459, "This is unacceptable, I have been waiting two weeks and nothing works."),
    (-0.417, "That is not ideal."),
    (-0.402, "That is a bit of a problem for me."),
    (-0.318, "I am confused by this charge."),
    (-0.296, "I am worried the payment did not go through."),
    (-0.241, "I am not sure that is right."),
    (-0.214, "It is annoying but I can live with it."),
    (0.0, "I am calling about my invoice."),
    (0.0, "I moved house last month and need to change the address."),
    (0.0, "The parcel arrived on Tuesday."),
    (0.0, "The wait was quite long today."),
    (0.202, "Fine, go ahead."),
    (0.226, "Okay, I can wait a moment."),
    (0.226, "Okay, that makes sense."),
    (0.318, "Sure, I understand."),
    (0.361, "I like that idea."),
    (0.402, "Yes, that works for me."),
    (0.421, "Alright, that is fine."),
    (0.44, "Good, let us do that."),
    (0.572, "Sounds fine, thanks."),
    (0.625, "Ok thanks."),
    (0.66, "That sounds good, thank you."),
    (0.68, "Thank you, that is really helpful."),
    (0.757, "That is excellent news, thank you, you made my day!"),
    (0.778, "Great, I appreciate you checking that."),
    (0.848, "Perfect, thank you so much for your help!"),
    (0.891, "Wonderful, you have been fantastic, I really appreciate it!"),
    (0.914, "Brilliant, I am so happy this is finally sorted, thanks a lot!"),
)

# The agent's side: courteous and neutral (VADER 0.0 .. 0.7).
AGENT_LINES: tuple[str, ...] = (
    "Let me check that for you.",
    "I understand, let me look into it right away.",
    "Thank you for your patience.",
    "I have updated the address on your account.",
    "One moment while I pull up the order.",
    "I can certainly help you with that.",
    "I will send you a confirmation email.",
    "Can I have your account number please.",
)

# Calls in French (the `zero` scenario's queue): a language the default analyzer cannot score.
FRENCH_LINES: tuple[str, ...] = (
    "J'attends mon remboursement depuis deux semaines.",
    "Je ne comprends pas cette facture.",
    "Pouvez-vous vérifier ma commande, s'il vous plaît ?",
    "C'est vraiment inadmissible.",
    "Merci, c'est très gentil.",
)
FRENCH_AGENT_LINES: tuple[str, ...] = ("Je vérifie tout de suite.", "Un instant, je regarde votre dossier.")

DIALECTS: dict[str, str] = {"q-fr": "fr-FR"}
DEFAULT_DIALECT = "en-US"


def transcription_topic(conversation_id: str) -> str:
    return f"v2.conversations.{conversation_id}.transcription"


def sentiment_topic(conversation_id: str) -> str:
    return f"v2.speechandtextanalytics.conversation.{conversation_id}.sentiment"


def _iso_ms(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _uuid(*parts: str) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _pick(options: tuple[str, ...], *key: str) -> str:
    return options[hashlib.sha256("/".join(key).encode()).digest()[0] % len(options)]


def customer_line(score: float, *key: str) -> str:
    """A line whose intended polarity is nearest `score` (ties and near-ties varied by `key`)."""
    best = min(abs(polarity - score) for polarity, _ in CUSTOMER_LINES)
    near = tuple(line for polarity, line in CUSTOMER_LINES if abs(polarity - score) <= best + 0.05)
    return _pick(near, *key)


def speaking_seconds(text: str) -> float:
    """How long a line takes to say (about four words a second), in scenario seconds."""
    return min(2.4, max(0.6, 0.25 * len(text.split())))


@dataclass(frozen=True, slots=True)
class TranscriptSettings:
    """In wall seconds (the endpoint divides scenario seconds by the simulator's speed)."""

    batch_seconds: float = 2.0  # low-latency transcription; 35 is the platform's documented default
    partials: bool = True  # interim hypotheses (isFinal false) before each final
    keepalive_seconds: float = 300.0
    postcall_seconds: float = 60.0  # call end -> Genesys' overall sentiment on the sentiment topic
    speech_scale: float = 1.0  # scenario seconds of speech -> wall seconds (1 / speed)
    untranscribed_queues: frozenset[str] = frozenset({"q-legacy"})  # transcription off there


@dataclass(slots=True)
class Utterance:
    utterance_id: str
    channel: str  # EXTERNAL (customer) or INTERNAL (agent)
    text: str | None  # None: an utterance without alternatives (a malformed one)
    start: float  # wall seconds
    duration: float
    dialect: str
    confidence: float = 0.84


@dataclass(slots=True)
class _Session:
    conversation_id: str
    communication_id: str
    dialect: str
    start: float
    next_flush: float
    next_keepalive: float
    pending: list[Utterance] = field(default_factory=list)
    partials: list[tuple[float, Utterance]] = field(default_factory=list)
    ended_at: float | None = None
    spoken: int = 0
    scores: list[float] = field(default_factory=list)  # the script's customer scores, for the post-call score


class TranscriptBook:
    """Transcription sessions of live calls. `now` is wall-clock epoch seconds everywhere."""

    def __init__(self, settings: TranscriptSettings | None = None, scale: float = 1.0) -> None:
        self.settings = settings or TranscriptSettings()
        self.scale = scale  # 100.0: the post-call score is sent on the -100..100 scale
        self.sessions: dict[str, _Session] = {}
        self.ended: OrderedDict[str, _Session] = OrderedDict()  # for stragglers after SESSION_ENDED
        self.postcall: list[tuple[float, Message]] = []
        self.utterances_spoken = 0

    # -- what happens on the call --------------------------------------------------------------------
    def connected(self, conversation_id: str, queue_id: str, now: float) -> list[Message]:
        """The agent answered: a transcription session starts with a keepalive."""
        if conversation_id in self.sessions or queue_id in self.settings.untranscribed_queues:
            return []
        session = _Session(
            conversation_id,
            _uuid(conversation_id, "communication"),
            DIALECTS.get(queue_id, DEFAULT_DIALECT),
            now,
            now + self.settings.batch_seconds,
            now + self.settings.keepalive_seconds,
        )
        self.sessions[conversation_id] = session
        return [self._message(session, now, [], SESSION_ONGOING)]

    def customer_said(self, conversation_id: str, score: float | None, now: float, text: bool = True) -> list[Message]:
        """The customer said a line meaning `score`, and the agent answered.

        `score` None with `text` True: an utterance with an empty transcript; `text` False: one without
        alternatives (the missing-field scenario). After SESSION_ENDED: a straggler final delivered now.
        """
        session = self.sessions.get(conversation_id)
        straggler = session is None
        if session is None:
            session = self.ended.get(conversation_id)
            if session is None:
                return []
        key = (conversation_id, str(session.spoken))
        if session.dialect.startswith("fr"):
            line: str | None = _pick(FRENCH_LINES, *key)
            reply = _pick(FRENCH_AGENT_LINES, *key)
        else:
            line = customer_line(score, *key) if score is not None else ""
            reply = _pick(AGENT_LINES, *key)
        if not text:
            line = None
        if score is not None:
            session.scores.append(score)
        scale = self.settings.speech_scale
        said = speaking_seconds(line or "")
        start = now if not straggler else (session.ended_at or now) - said * scale - 0.2
        customer = self._utterance(session, "EXTERNAL", line, start, said * scale)
        if straggler:
            return [self._message(session, now, [customer], SESSION_ENDED)]
        agent = self._utterance(
            session, "INTERNAL", reply, start + (said + 0.3) * scale, speaking_seconds(reply) * scale
        )
        out: list[Message] = []
        for utterance in (customer, agent):
            session.pending.append(utterance)
            if self.settings.partials and utterance.text:
                session.partials.append((utterance.start + utterance.duration / 2, utterance))
        return out

    def say(self, conversation_id: str, channel: str, text: str, now: float, *, final: bool = True) -> Message | None:
        """One utterance delivered now, unbatched (tests drive the exporter with it)."""
        session = self.sessions.get(conversation_id) or self.ended.get(conversation_id)
        if session is None:
            return None
        utterance = self._utterance(session, channel, text, now, speaking_seconds(text) * self.settings.speech_scale)
        status = SESSION_ENDED if session.ended_at is not None else SESSION_ONGOING
        return self._message(session, now, [utterance], status, final=final)

    def call_ended(self, conversation_id: str, now: float) -> list[Message]:
        """The call is over: the session ends at its next batch; the post-call score comes later."""
        session = self.sessions.get(conversation_id)
        if session is None or session.ended_at is not None:
            return []
        session.ended_at = now
        if session.scores:
            half = len(session.scores) // 2 or 1
            overall = sum(session.scores) / len(session.scores)
            first, last = session.scores[:half], session.scores[-half:]
            trend = max(-1.0, min(1.0, sum(last) / len(last) - sum(first) / len(first)))
            body = {
                "conversationId": conversation_id,
                "sentimentOverallScore": round(overall * self.scale, 4),
                "sentimentTrendScore": round(trend * self.scale, 4),
                "queueIds": [],
                "divisionIds": ["d-home"],
                "flowIds": [],
            }
            self.postcall.append((now + self.settings.postcall_seconds, (sentiment_topic(conversation_id), body)))
        return []

    # -- what the platform sends when ----------------------------------------------------------------
    def due(self, now: float) -> list[Message]:
        """Partials, batches, keepalives, session ends and post-call scores due by `now`, in order."""
        out: list[Message] = []
        for session in list(self.sessions.values()):
            ready = [(at, u) for at, u in session.partials if at <= now]
            if ready:
                session.partials = [(at, u) for at, u in session.partials if at > now]
                for _, utterance in ready:
                    out.append(self._message(session, now, [utterance], SESSION_ONGOING, final=False))
            if now >= session.next_flush:
                session.next_flush += self.settings.batch_seconds
                if session.next_flush <= now:
                    session.next_flush = now + self.settings.batch_seconds
                spoken = [u for u in session.pending if u.start + u.duration <= now]
                ending = session.ended_at is not None and now >= session.ended_at
                if ending:
                    spoken = list(session.pending)
                if spoken:
                    session.pending = [u for u in session.pending if u not in spoken]
                    out.append(self._message(session, now, spoken, SESSION_ONGOING))
                if ending:
                    out.append(self._message(session, now, [], SESSION_ENDED))
                    del self.sessions[session.conversation_id]
                    session.partials.clear()
                    self.ended[session.conversation_id] = session
                    while len(self.ended) > 1000:
                        self.ended.popitem(last=False)
                    continue
            if now >= session.next_keepalive:
                session.next_keepalive += self.settings.keepalive_seconds
                if session.next_keepalive <= now:
                    session.next_keepalive = now + self.settings.keepalive_seconds
                out.append(self._message(session, now, [], SESSION_ONGOING))
        due = [message for at, message in self.postcall if at <= now]
        if due:
            self.postcall = [(at, message) for at, message in self.postcall if at > now]
            out.extend(due)
        return out

    # -- bodies --------------------------------------------------------------------------------------
    def _utterance(self, session: _Session, channel: str, text: str | None, start: float, duration: float) -> Utterance:
        session.spoken += 1
        self.utterances_spoken += 1
        uid = _uuid(session.conversation_id, "utterance", str(session.spoken))
        return Utterance(uid, channel, text, start, duration, session.dialect)

    def _message(
        self, session: _Session, now: float, utterances: list[Utterance], status: str, *, final: bool = True
    ) -> Message:
        start_ms = round(session.start * 1000)
        body: dict[str, Any] = {
            "eventTime": _iso_ms(now),
            "organizationId": ORG_ID,
            "conversationId": session.conversation_id,
            "communicationId": session.communication_id,
            "sessionStartTimeMs": start_ms,
            "transcriptionStartTimeMs": start_ms - 47,
        }
        if utterances:
            body["transcripts"] = [self._result(session, u, final) for u in utterances]
        body["status"] = {"offsetMs": max(0, round((now - session.start) * 1000)), "status": status}
        return transcription_topic(session.conversation_id), body

    @staticmethod
    def _result(session: _Session, utterance: Utterance, final: bool) -> dict[str, Any]:
        result: dict[str, Any] = {"utteranceId": utterance.utterance_id, "isFinal": final, "channel": utterance.channel}
        if utterance.text is not None:
            text = utterance.text
            duration = utterance.duration
            if not final:  # an interim hypothesis: the first half of the words so far
                words = text.split()
                text = " ".join(words[: max(1, len(words) // 2)])
                duration /= 2
            result["alternatives"] = [
                {
                    "confidence": utterance.confidence if final else 0.55,
                    "offsetMs": max(0, round((utterance.start - session.start) * 1000)),
                    "durationMs": round(duration * 1000),
                    "transcript": text.lower().strip(".!?,"),
                    "decoratedTranscript": text,
                }
            ]
        result.update(ENGINE)
        result["dialect"] = utterance.dialect
        result["voiceTranscriptionEnabled"] = True
        result["agentAssistEnabled"] = False
        return result
