"""`check`: a one-shot diagnosis of a new deployment against the design document's traps.

It runs the real token manager and source for a while (no web server), then
says, trap by trap, what it saw. Each finding is a line; the exit status is 1
when any of them is a failure, so it can gate a deployment pipeline.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from genesys_sentiment_exporter.app import Exporter
from genesys_sentiment_exporter.audit import Answer, Read
from genesys_sentiment_exporter.catalogue import Outcome
from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.lifecycle import TaskCrashed
from genesys_sentiment_exporter.model import Phase, Reading, StateChange
from genesys_sentiment_exporter.oauth import refresh_delay
from genesys_sentiment_exporter.sources import notifications_protocol as proto


@dataclass
class Finding:
    ok: bool
    topic: str
    text: str

    def line(self) -> str:
        return f"[{'ok' if self.ok else 'FAIL'}] {self.topic}: {self.text}"


# States a call is in before anyone talks: the first event of a call in one of these means check
# saw the call begin. A call first seen connected was (most likely) already running when check
# started, and its readings may all have come before: it is not judged as "ended with no reading".
START_STATES = frozenset({"alerting", "offering", "contacting", "dialing", "scheduled", "queued"})


@dataclass
class CallSeen:
    queue_id: str
    from_start: bool
    scored: bool = False
    ended: bool = False


@dataclass
class ReadingStats:
    per_queue: Counter[str] = field(default_factory=Counter)
    zero_per_queue: Counter[str] = field(default_factory=Counter)
    calls: dict[str, CallSeen] = field(default_factory=dict)  # conversation id -> what check saw of it

    def __call__(self, reading: Reading) -> None:
        self.per_queue[reading.queue_id] += 1
        if reading.score == 0.0:
            self.zero_per_queue[reading.queue_id] += 1
        call = self.calls.get(reading.conversation_id)
        if call is None:
            self.calls[reading.conversation_id] = CallSeen(reading.queue_id, from_start=False, scored=True)
        else:
            call.scored = True

    def state(self, change: StateChange) -> None:
        call = self.calls.get(change.conversation_id)
        if call is None:
            call = self.calls[change.conversation_id] = CallSeen(change.queue_id, change.state in START_STATES)
        if change.phase is Phase.ENDING:
            call.ended = True

    def watch(self, ingest: Ingest) -> None:
        ingest.on_reading = self
        ingest.on_state = self.state

    def unscored_per_queue(self) -> Counter[str]:
        """Calls seen from their start to their end without a single reading, per queue."""
        return Counter(c.queue_id for c in self.calls.values() if c.from_start and c.ended and not c.scored)

    def already_running(self) -> int:
        return sum(1 for c in self.calls.values() if not c.from_start)


AVAILABLE_TOPICS_PATH = "/api/v2/notifications/availabletopics?expand=requiresPermissions"
USERS_FAMILY = proto.topic_kind(proto.user_topic("x"))
QUEUES_FAMILY = proto.topic_kind(proto.queue_topic("x"))
TRANSCRIPTION_FAMILY = proto.topic_kind(proto.transcription_topic("x"))
POSTCALL_FAMILY = proto.topic_kind(proto.sentiment_topic("x"))
_PLACEHOLDER = re.compile(r"\{[^}]*\}")
_PERMISSION = re.compile(r"[A-Za-z]+:[A-Za-z]+:[A-Za-z]+")


def topic_families(agent_ids: Iterable[str], queue_ids: Iterable[str]) -> list[str]:
    """The topic families the notifications source subscribes with these settings."""
    families = [USERS_FAMILY] if list(agent_ids) else []
    families += [QUEUES_FAMILY] if list(queue_ids) else []
    return [*families, TRANSCRIPTION_FAMILY, POSTCALL_FAMILY]


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _refusal_permissions(result: proto.TopicResult) -> list[str]:
    """Named by the listing, else by the error answer's text (a 4xx without ignoreErrors)."""
    return list(result.missing_permissions) or list(dict.fromkeys(_PERMISSION.findall(result.detail)))


def _requirement(topic: Mapping[str, Any] | None, permitted: bool | None) -> tuple[bool, str]:
    """What `availabletopics` says one family needs, judged for a token without a user (`permitted`:
    whether check saw a topic of the family permitted; None when it saw one refused)."""
    if topic is None:
        return False, "not offered by this org (absent from availabletopics): licence or region?"
    permissions = _strings(topic.get("requiresPermissions"))
    if topic.get("enforced") is False:
        return True, "usable (its permissions are not enforced)"
    if topic.get("requiresCurrentUser") is True and not (topic.get("requiresAnyValidator") is True and permissions):
        return False, "requires the current user: a client-credentials token has no user, so it is always refused"
    if not permissions:
        return True, "usable"
    own = " (a user's own topic needs none; this token has no user)"
    own = own if topic.get("requiresCurrentUserOrPermission") is True else ""
    seen = (
        "" if permitted is None else "; permitted while check ran" if permitted else "; not requested while check ran"
    )
    return True, f"needs permissions {', '.join(permissions)}{own}{seen}"


def topic_access(available: Answer | None, families: list[str], seen: Mapping[str, proto.TopicResult]) -> list[Finding]:
    """One line per topic family the exporter subscribes: usable, needs permissions (named), or requires
    the current user, from `availabletopics`; a refusal seen while check ran overrides with its
    missing permissions. A client-credentials token has no user: a topic that requires the current
    user can never be subscribed by the exporter, whatever its role grants."""
    if available is None:
        return []
    if available.status != 200 or not isinstance(available.body, dict):
        why = available.error or f"HTTP {available.status}"
        return [Finding(False, "topic access", f"could not read availabletopics ({why}): topic access not verified")]
    listed: dict[str, dict[str, Any]] = {}
    entities = available.body.get("entities")
    for entity in entities if isinstance(entities, list) else []:
        if isinstance(entity, dict) and isinstance(entity.get("id"), str):
            listed[_PLACEHOLDER.sub("{id}", entity["id"])] = entity
    refused: dict[str, proto.TopicResult] = {}
    permitted: set[str] = set()
    for seen_result in seen.values():
        kind = proto.topic_kind(seen_result.topic)
        if seen_result.permitted:
            permitted.add(kind)
        else:
            refused.setdefault(kind, seen_result)
    findings = []
    for family in families:
        result = refused.get(family)
        ok, verdict = _requirement(listed.get(family), None if result is not None else family in permitted)
        if result is not None:
            missing = _refusal_permissions(result)
            named = f"; missing permissions: {', '.join(missing)}" if missing else ""
            ok, verdict = False, f"{verdict}; refused while check ran ({result.detail or result.reason}){named}"
        findings.append(Finding(ok, "topic access", f"{family}: {verdict}"))
    return findings


def diagnose(
    exporter: Exporter, readings: ReadingStats, duration: float, available: Answer | None = None
) -> list[Finding]:
    findings: list[Finding] = []
    tokens, stream, messages = exporter.tokens, exporter.stream, exporter.ingest.messages
    token = tokens.token
    if token is None:
        findings.append(Finding(False, "token", tokens.last_error or "no token obtained"))
        return findings
    refresh = refresh_delay(token.lifetime, tokens.margin)
    findings.append(
        Finding(True, "token", f"obtained; lifetime {token.lifetime:.0f} s (expires_in), renewed after {refresh:.0f} s")
    )
    if exporter.settings.stream_source == "notifications":
        session = getattr(exporter.source, "session", None)
        seen: Mapping[str, proto.TopicResult] = getattr(session, "topic_results", {})
        families = topic_families(exporter.settings.agent_id, exporter.settings.queue_id)
        findings.extend(topic_access(available, families, seen))
    if stream.connects == 0:
        findings.append(Finding(False, "stream", f"never subscribed: {stream.last_error}"))
        return findings
    drops = sum(stream.disconnects.values())
    findings.append(Finding(True, "stream", f"subscribed ({stream.connects} connects, {drops} unplanned closes)"))
    # notifications: which topics were permitted or rejected, permissions missing (analytics: none)
    findings.extend(Finding(ok, topic, text) for ok, topic, text in exporter.source.subscription_report())
    heartbeat = exporter.settings.heartbeat_seconds
    if messages[Outcome.HEARTBEAT]:
        findings.append(Finding(True, "heartbeat", f"{messages[Outcome.HEARTBEAT]} heartbeats received"))
    elif duration >= heartbeat * 1.5:
        findings.append(Finding(False, "heartbeat", f"none in {duration:.0f} s although {heartbeat} s was requested"))
    else:
        findings.append(
            Finding(True, "heartbeat", f"none yet (read {duration:.0f} s; run longer than {heartbeat} s to see one)")
        )
    events = messages[Outcome.READING] + messages[Outcome.STATE_CHANGE] + messages[Outcome.MISSING_SENTIMENT]
    if events == 0:
        findings.append(
            Finding(
                False,
                "events",
                "no conversation events: no calls in the filtered queues/agents, or the filters name the wrong ids",
            )
        )
    elif messages[Outcome.READING] == 0:
        findings.append(
            Finding(
                False,
                "events",
                f"{events} conversation events, none with a score: sentiment analysis produced nothing for "
                "these calls (licence, recording policy, speech model) or the run was too short to see a score",
            )
        )
    else:
        findings.append(
            Finding(True, "events", f"{events} conversation events, {messages[Outcome.READING]} with a score")
        )
    missing = messages[Outcome.MISSING_SENTIMENT]
    if missing:
        findings.append(
            Finding(
                False,
                "sentiment field",
                f"{missing} events carried no sentiment score: the field was not delivered (field selection, "
                "licence, or a server-side filter); these are NOT zeros",
            )
        )
    elif events:
        findings.append(Finding(True, "sentiment field", "every scored event carried sentiment.score"))
    stuck = sorted(q for q, n in readings.per_queue.items() if n >= 3 and readings.zero_per_queue[q] == n)
    if stuck:
        findings.append(
            Finding(
                False,
                "scores stuck at 0.0",
                f"queues {', '.join(stuck)}: every score was exactly 0.0; check that the speech model's "
                "language matches the calls (en-US vs en-GB, code-switching)",
            )
        )
    elif readings.per_queue:
        findings.append(Finding(True, "scores stuck at 0.0", "no queue with only 0.0 scores"))
    unscored = readings.unscored_per_queue()
    if unscored:
        findings.append(
            Finding(
                False,
                "calls without sentiment",
                f"calls ended with no reading in queues {', '.join(sorted(unscored))}: check that their recording "
                "policy enables real-time sentiment analysis",
            )
        )
    elif readings.calls:
        findings.append(
            Finding(
                True,
                "calls without sentiment",
                f"every call seen from start to end had a reading ({readings.already_running()} calls already "
                "running when check started were not judged)",
            )
        )
    invalid = messages[Outcome.INVALID_SCORE] + messages[Outcome.MALFORMED] + messages[Outcome.UNKNOWN_TYPE]
    if invalid:
        findings.append(Finding(False, "message validity", f"{invalid} messages rejected as invalid"))
    return findings


async def read_available_topics(exporter: Exporter) -> Answer | None:
    """`availabletopics` with what each topic requires (notifications source, once a token exists)."""
    from genesys_sentiment_exporter.audit_shell import fetch, rest_for

    if exporter.settings.stream_source != "notifications" or exporter.tokens.token is None:
        return None
    rest = rest_for(exporter.settings, exporter.http, exporter.tokens, exporter.source)
    return await fetch(rest, Read("availabletopics", AVAILABLE_TOPICS_PATH, ""))


async def run_check(exporter: Exporter, duration: float) -> int:
    from genesys_sentiment_exporter.audit_shell import audit_at_start

    audit_failed = await audit_at_start(exporter)  # the org's configuration first (audit.py)
    available = await read_available_topics(exporter)
    readings = ReadingStats()
    readings.watch(exporter.ingest)
    started = time.monotonic()
    crashed: TaskCrashed | None = None
    try:
        await exporter.run(serve=False, duration=duration)  # the app's own life cycle, without the web server
    except TaskCrashed as exc:
        crashed = exc
    exporter.expire()
    findings = diagnose(exporter, readings, time.monotonic() - started, available)
    if crashed is not None:
        findings.append(Finding(False, "exporter", str(crashed)))
    for finding in findings:
        # Findings quote server answers (stream.last_error), which may echo the request's token.
        print(exporter.redactor.scrub(finding.line()), flush=True)
    failed = [f for f in findings if not f.ok]
    print(f"check: {len(findings) - len(failed)} ok, {len(failed)} failed", flush=True)
    return 1 if failed or audit_failed else 0
