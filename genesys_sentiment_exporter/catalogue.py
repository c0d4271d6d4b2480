"""Every metric family the exporter serves, declared once, and the closed label sets as enums.

Why one module: the collector, the README's metrics tables, the bundle's fake exporter and the
drift test (every `genesys_*` name the rules, promtool tests, templates and dashboards use) all
read this list, so a family added or renamed here is added or renamed everywhere, and a name used
anywhere else but declared nowhere fails a unit test instead of a 150 s live test.

Adding a family is one `Family(...)` constant below (`FAMILIES` picks it up); a label whose values
are known in advance gets a `StrEnum`, and every value of it is served at 0 from the start, so
no counter series is ever born at 1 (which `increase()` would never count).

This module imports nothing but the standard library: the protocol cores import its enums.

    python -m genesys_sentiment_exporter.catalogue            # print the README's metrics tables
    python -m genesys_sentiment_exporter.catalogue --write    # rewrite them in README.md
    python -m genesys_sentiment_exporter.catalogue --check    # exit 1 if README.md is stale
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal


class Outcome(StrEnum):
    """What became of one stream message: every message ends in exactly one of these."""

    READING = "reading"
    STATE_CHANGE = "state_change"
    HEARTBEAT = "heartbeat"
    CONTROL = "control"  # subscription acknowledgements, pongs, socket_closing, other metadata
    DUPLICATE = "duplicate"  # the same update twice: overlapping sockets, or a user and a queue topic
    MALFORMED = "malformed"
    MISSING_SENTIMENT = "missing_sentiment"
    INVALID_SCORE = "invalid_score"
    UNKNOWN_TYPE = "unknown_type"
    MISSING_AGENT = "missing_agent"
    STALE = "stale"  # a reading for a conversation the agent has already left
    AGENT_REFUSED = "agent_refused"  # the tracked-agent cap is full
    INVALID_ID = "invalid_id"  # an agent, queue or conversation id that cannot be a label
    UNATTRIBUTED = "unattributed"  # notifications: sentiment for a conversation with no known agent
    NOT_VOICE = "not_voice"  # notifications: chat, email, ...: no speech sentiment
    TRANSCRIPT = "transcript"  # a transcript batch none of whose utterances became a reading (each counted)
    TRANSCRIPT_KEEPALIVE = "transcript_keepalive"  # no utterances, session ongoing (start, every 5 min)
    TRANSCRIPT_ENDED = "transcript_ended"  # no utterances, SESSION_ENDED
    POSTCALL_SCORE = "postcall_score"  # Genesys' post-call score, to the post-call families
    POSTCALL_REPEAT = "postcall_repeat"  # the same call's post-call score again


class Party(StrEnum):
    """Whose words a reading scores: the customer (EXTERNAL channel) or the agent (INTERNAL)."""

    CUSTOMER = "customer"
    AGENT = "agent"


class UtteranceParty(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    UNKNOWN = "unknown"  # channel BOTH / UNKNOWN / absent


class UtteranceOutcome(StrEnum):
    """What became of one transcript utterance (transcription_protocol.py)."""

    READING = "reading"
    PARTIAL = "partial"  # isFinal false: an interim hypothesis its final replaces
    REPEAT = "repeat"  # a final utteranceId already scored
    PARTY_NOT_SCORED = "party_not_scored"  # agent speech without --score-parties ...,agent
    UNKNOWN_CHANNEL = "unknown_channel"
    BEFORE_AGENT = "before_agent"  # INTERNAL speech before the agent connected (IVR, queue prompts)
    UNATTRIBUTED = "unattributed"  # the call has no known agent
    MALFORMED = "malformed"
    UNSUPPORTED_LANGUAGE = "unsupported_language"  # never a 0.0 reading
    UNKNOWN_LANGUAGE = "unknown_language"
    EMPTY_TEXT = "empty_text"
    ANALYZER_ERROR = "analyzer_error"
    STALE = "stale"
    AGENT_REFUSED = "agent_refused"
    INVALID_ID = "invalid_id"


class HadSentiment(StrEnum):
    TRUE = "true"
    FALSE = "false"


class DropReason(StrEnum):
    GRACE_ELAPSED = "grace_elapsed"
    IDLE = "idle"


class RolloverReason(StrEnum):
    TOKEN_REFRESH = "token_refresh"
    SOCKET_CLOSING = "socket_closing"
    CHANNEL_GONE = "channel_gone"
    CHANNEL_EXPIRY = "channel_expiry"


class OverlapEnd(StrEnum):
    """What ended a rollover's overlap, letting the old socket go (sources/stream.py)."""

    CAUGHT_UP = "caught_up"  # a frame came through both the old socket and its replacement
    CLOSED_BY_SERVER = "closed_by_server"  # the old socket ended on its own (the platform closed it, or it dropped)
    MAX_WAIT = "max_wait"  # neither within the backstop: closed anyway


class DisconnectCode(StrEnum):
    """Close codes as served: the RFC 6455 codes a peer sends or a client synthesises, our
    watchdog's reason, and `other` for anything else (the log line keeps the exact code)."""

    NORMAL = "1000"
    GOING_AWAY = "1001"
    PROTOCOL_ERROR = "1002"
    UNSUPPORTED_DATA = "1003"
    NO_STATUS = "1005"
    ABNORMAL = "1006"
    INVALID_PAYLOAD = "1007"
    POLICY_VIOLATION = "1008"
    TOO_BIG = "1009"
    MANDATORY_EXTENSION = "1010"
    INTERNAL_ERROR = "1011"
    SERVICE_RESTART = "1012"
    TRY_AGAIN_LATER = "1013"
    BAD_GATEWAY = "1014"
    TLS_HANDSHAKE = "1015"
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"
    OTHER = "other"

    @classmethod
    def of(cls, code: str) -> DisconnectCode:
        try:
            return cls(code)
        except ValueError:
            return cls.OTHER


class ClampDirection(StrEnum):
    """Where a reading's eventTime was, too far from the receive time to be believed."""

    FUTURE = "future"
    PAST = "past"


class TokenResult(StrEnum):
    SUCCESS = "success"
    INVALID_CLIENT = "invalid_client"
    UNAUTHORIZED_CLIENT = "unauthorized_client"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    NETWORK_ERROR = "network_error"
    INVALID_RESPONSE = "invalid_response"


class LookupKind(StrEnum):
    AGENT = "agent"
    QUEUE = "queue"


class LookupResult(StrEnum):
    OK = "ok"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    ERROR = "error"


class ApiResult(StrEnum):
    """REST answers of the notifications source by status class (429 apart), or no answer at all."""

    INFORMATIONAL = "1xx"
    SUCCESS = "2xx"
    REDIRECT = "3xx"
    CLIENT_ERROR = "4xx"
    RATE_LIMITED = "429"
    SERVER_ERROR = "5xx"
    NETWORK_ERROR = "network_error"

    @classmethod
    def of_status(cls, status: int) -> ApiResult:
        return cls.RATE_LIMITED if status == 429 else cls(f"{min(max(status // 100, 1), 5)}xx")


class CoverageVerdict(StrEnum):
    """The configuration audit's verdict on a queue (audit.VERDICTS)."""

    OK = "ok"
    DEGRADED = "degraded"
    LOST = "lost"
    UNKNOWN = "unknown"


class AuditLevel(StrEnum):
    OK = "ok"
    WARN = "WARN"
    FAIL = "FAIL"


class AuditResult(StrEnum):
    SUCCESS = "success"
    ERROR = "error"


class RejectReason(StrEnum):
    """Topic rejections known in advance; the platform's own `rejectionReason` (slugged) may add more."""

    MISSING_PERMISSIONS = "missing_permissions"
    REJECTED = "rejected"
    OTHER = "other"  # beyond the first 20 distinct reasons (notifications_session.REJECT_REASONS_LIMIT)


Kind = Literal["gauge", "counter", "info", "histogram"]
Group = Literal["agent", "queue", "exporter", "notifications", "audiohook"]


@dataclass(frozen=True, slots=True)
class Label:
    """A label; `values` is the closed set served at 0 from the start, None for an open one (ids)."""

    name: str
    values: type[StrEnum] | None = None
    open_extra: bool = False  # closed set pre-created, but other values may still appear

    @property
    def known(self) -> tuple[str, ...]:
        return tuple(v.value for v in self.values) if self.values is not None else ()


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family. `name` is as prometheus_client takes it: no `_total`/`_info` suffix."""

    name: str
    kind: Kind
    help: str
    labels: tuple[Label, ...] = ()
    unit: str = ""  # base unit, when the name ends with it
    group: Group = "exporter"
    note: str = ""  # README only: what to read into it
    info_labels: tuple[str, ...] = ()  # an info family's value labels (not identifying)

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    @property
    def sample_name(self) -> str:
        """The name a sample carries in the text exposition and in PromQL."""
        if self.kind == "counter":
            return self.name + "_total"
        if self.kind == "info":
            return self.name + "_info"
        return self.name

    @property
    def sample_names(self) -> tuple[str, ...]:
        """Every name its samples carry: a histogram's `_bucket`, `_sum` and `_count` too."""
        if self.kind == "histogram":
            return tuple(self.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        return (self.sample_name,)

    @property
    def exposed_type(self) -> str:
        """The `# TYPE` of the text format 0.0.4 (an info family is a gauge there)."""
        return "gauge" if self.kind == "info" else self.kind

    @property
    def all_labels(self) -> tuple[str, ...]:
        return (*self.label_names, *self.info_labels)


def _closed(name: str, values: type[StrEnum], open_extra: bool = False) -> Label:
    return Label(name, values, open_extra)


AGENT = Label("agent_id")
QUEUE = Label("queue_id")
PARTY = Label("party", Party)  # whose words: every live per-agent gauge has it

# ---- per agent (served unless --agent-identity none) ----------------------------------------------
AGENT_ROLLING_AVERAGE = Family(
    "genesys_agent_sentiment_rolling_average",
    "gauge",
    "Mean of the agent's rolling window of sentiment scores (-1..1) in the current conversation.",
    (AGENT, QUEUE, PARTY),
    group="agent",
)
AGENT_SCORE = Family(
    "genesys_agent_sentiment_score", "gauge", "The agent's most recent sentiment score (-1..1).", (AGENT, QUEUE, PARTY),
    group="agent",
)  # fmt: skip
AGENT_WINDOW_READINGS = Family(
    "genesys_agent_sentiment_window_readings",
    "gauge",
    "Readings in the agent's rolling window (0 up to the window size).",
    (AGENT, QUEUE, PARTY),
    group="agent",
    note="a full window equals `genesys_exporter_window_size`",
)
AGENT_LAST_READING = Family(
    "genesys_agent_last_reading_timestamp_seconds",
    "gauge",
    "Event time of the agent's most recent sentiment reading.",
    (AGENT, QUEUE, PARTY),
    unit="seconds",
    group="agent",
)
AGENT_CONVERSATION_ACTIVE = Family(
    "genesys_agent_conversation_active",
    "gauge",
    "1 while the agent's conversation is live, 0 in the grace period after it ended.",
    (AGENT, QUEUE, PARTY),
    group="agent",
)
AGENT_TREND = Family(
    "genesys_agent_sentiment_trend",
    "gauge",
    "The conversation's sentiment trend score (-1..1), where the source provides one.",
    (AGENT, QUEUE, PARTY),
    group="agent",
    note="notifications: `sentimentTrendScore`",
)
AGENT_NAME = Family(
    "genesys_agent",
    "info",
    "Agent names (GET /api/v2/users/{id}), to join on agent_id.",
    (AGENT,),
    group="agent",
    info_labels=("agent_name",),
    note="plain identities only: the rules join them on `agent_id`",
)
QUEUE_NAME = Family(
    "genesys_queue",
    "info",
    "Queue names (GET /api/v2/routing/queues/{id}), to join on queue_id.",
    (QUEUE,),
    group="agent",
    info_labels=("queue_name",),
    note="names of the tracked queues: the rules join them on `queue_id`",
)

# ---- per queue (served instead of the per-agent families with --agent-identity none) -------------
QUEUE_CONVERSATIONS_ACTIVE = Family(
    "genesys_queue_conversations_active", "gauge", "Live conversations tracked in the queue.", (QUEUE,), group="queue"
)
QUEUE_CONVERSATIONS_SCORED = Family(
    "genesys_queue_conversations_scored",
    "gauge",
    "Live conversations in the queue with at least one sentiment reading.",
    (QUEUE,),
    group="queue",
)
QUEUE_FULL_WINDOWS = Family(
    "genesys_queue_sentiment_full_windows",
    "gauge",
    "Live conversations in the queue whose rolling window is full (the ones the alerts judge).",
    (QUEUE,),
    group="queue",
)
QUEUE_ZERO_WINDOWS = Family(
    "genesys_queue_sentiment_zero_windows",
    "gauge",
    "Live full-window conversations in the queue whose window and last reading are exactly 0.0.",
    (QUEUE,),
    group="queue",
)
QUEUE_ROLLING_AVERAGE_MIN = Family(
    "genesys_queue_sentiment_rolling_average_min",
    "gauge",
    "Lowest rolling average among the queue's live full-window conversations.",
    (QUEUE,),
    group="queue",
    note='"some call in this queue is sour", never which one',
)

# ---- exporter-wide ----------------------------------------------------------------------------------
BUILD = Family(
    "genesys_exporter_build", "info", "Build and source of this exporter.", info_labels=("version", "source")
)
WINDOW_SIZE = Family(
    "genesys_exporter_window_size", "gauge", "Readings per agent rolling window (a full window is this many)."
)
AGENT_IDENTITY = Family(
    "genesys_exporter_agent_identity",
    "info",
    "How agents are named: plain, pseudonymous or none (aggregates only).",
    info_labels=("mode",),
)
UI = Family(
    "genesys_exporter_ui",
    "info",
    "The region's Genesys Cloud web app, for links in alerts (agent links only with plain identities).",
    info_labels=("url",),
)
WEB = Family(
    "genesys_exporter_web",
    "info",
    "Where supervisors reach this exporter: alerts link {external_url}/-/conversation/{agent_id}.",
    info_labels=("external_url",),
    note="with `--web.external-url` only",
)
READY = Family("genesys_exporter_ready", "gauge", "1 while the stream is connected and the token valid.")
TRACKED_AGENTS = Family("genesys_tracked_agents", "gauge", "Agents currently tracked.")
AGENTS_REFUSED = Family(
    "genesys_agents_refused", "counter", "New agents refused because the tracked-agent cap was reached."
)
AGENTS_DROPPED = Family(
    "genesys_agents_dropped",
    "counter",
    "Agents whose state and series were dropped.",
    (_closed("reason", DropReason),),
)
CONVERSATIONS_ENDED = Family(
    "genesys_conversations_ended",
    "counter",
    "Conversations finished, by whether any sentiment reading arrived for them.",
    (QUEUE, _closed("had_sentiment", HadSentiment)),
    note='`had_sentiment="false"`: the call ended without a single reading (recording-policy trap); '
    "both series of a queue exist at 0 from the queue's first tracked call; at most 2 000 queues (beyond: "
    '`queue_id="other"`); a queue\'s series go after an hour with no ended call and no tracked agent',
)
STREAM_CONNECTED = Family("genesys_stream_connected", "gauge", "1 while a subscribed stream socket is open.")
STREAM_CONNECTS = Family("genesys_stream_connects", "counter", "Successful stream connections (subscribed).")
STREAM_DISCONNECTS = Family(
    "genesys_stream_disconnects",
    "counter",
    "Unplanned stream socket losses by close code.",
    (_closed("code", DisconnectCode),),
)
STREAM_ROLLOVERS = Family(
    "genesys_stream_rollovers",
    "counter",
    "Planned make-before-break socket swaps by reason.",
    (_closed("reason", RolloverReason),),
)
STREAM_OVERLAP_ENDS = Family(
    "genesys_stream_rollover_overlaps_ended",
    "counter",
    "Rollover overlaps ended, by what let the old socket go.",
    (_closed("reason", OverlapEnd),),
    note="`max_wait`: the old socket neither caught up with its replacement nor was closed within "
    "the backstop (`--rollover-max-overlap-seconds`, 30 s) and was closed anyway: events only it still "
    "carried may be lost; expected only when no events flow",
)
STREAM_LAST_MESSAGE = Family(
    "genesys_stream_last_message_timestamp_seconds",
    "gauge",
    "When the stream last delivered any message.",
    unit="seconds",
    note="absent until the first message",
)
STREAM_LAST_HEARTBEAT = Family(
    "genesys_stream_last_heartbeat_timestamp_seconds",
    "gauge",
    "When the stream last delivered a heartbeat.",
    unit="seconds",
    note="absent until the first heartbeat",
)
STREAM_MESSAGES = Family(
    "genesys_stream_messages",
    "counter",
    "Stream messages by what became of them.",
    (_closed("outcome", Outcome),),
    note="every message's one outcome; `invalid_id`: an agent, queue or conversation id longer than 128 "
    "characters or not encodable as UTF-8 (it could not be a label)",
)
EVENT_TIME_CLAMPED = Family(
    "genesys_stream_event_time_clamped",
    "counter",
    "Readings whose eventTime was too far from the receive time and was replaced by it.",
    (_closed("direction", ClampDirection),),
    note="`future`: more than 60 s ahead, `past`: more than 300 s behind; exported with the receive time "
    "instead, so a wrong clock neither hides nor fires the readings-stopped alert",
)
TOKEN_EXPIRY = Family(
    "genesys_oauth_token_expiry_timestamp_seconds", "gauge", "When the current OAuth token expires.", unit="seconds"
)
TOKEN_LIFETIME = Family(
    "genesys_oauth_token_lifetime_seconds",
    "gauge",
    "Lifetime the login host granted the current token (expires_in).",
    unit="seconds",
)
TOKEN_REQUESTS = Family(
    "genesys_oauth_token_requests", "counter", "OAuth token requests by result.", (_closed("result", TokenResult),)
)
NAME_LOOKUPS = Family(
    "genesys_name_lookups",
    "counter",
    "Agent and queue name look-ups by kind and result.",
    (_closed("kind", LookupKind), _closed("result", LookupResult)),
)

# ---- the configuration audit (run: on a timer) --------------------------------------------------------
QUEUE_COVERAGE = Family(
    "genesys_queue_sentiment_coverage",
    "info",
    "Whether the queue's calls will get sentiment, from the configuration audit: verdict ok, degraded, "
    "lost or unknown, and the reason.",
    (QUEUE, Label("queue_name"), _closed("verdict", CoverageVerdict), Label("reason")),
    note="`lost`: its calls will not get sentiment; `reason` the worst finding (`queue_transcription_off`, "
    "`no_program`, `sentiment_disabled`, `dialect_not_transcribed`, ...); absent until the first audit completes",
)
AUDIT_FINDINGS = Family(
    "genesys_audit_findings",
    "gauge",
    "Findings of the last configuration audit by level.",
    (_closed("level", AuditLevel),),
)
AUDIT_LAST_SUCCESS = Family(
    "genesys_audit_last_success_timestamp_seconds",
    "gauge",
    "When the configuration audit last completed.",
    unit="seconds",
)
AUDIT_RUNS = Family(
    "genesys_audit_runs", "counter", "Configuration audits by result.", (_closed("result", AuditResult),)
)

# ---- the notifications source ------------------------------------------------------------------------
SENTIMENT_SCALE = Family(
    "genesys_exporter_sentiment_scale",
    "info",
    "Scale of the platform's sentiment scores in use (normalised to -1..1).",
    group="notifications",
    info_labels=("scale", "setting"),
)
NOTIFICATIONS_CHANNELS_OPEN = Family(
    "genesys_notifications_channels_open", "gauge", "Notifications channels with an open socket.", group="notifications"
)
NOTIFICATIONS_CHANNELS_HELD = Family(
    "genesys_notifications_channels_held",
    "gauge",
    "Rollovers' old channels kept open and delivering because the replacement's base-topic subscription was refused.",
    group="notifications",
    note="1 while a slot's replacement is asked again: events still flow through the held channel (ready); "
    "it goes once the replacement is answered or the platform closes it (then not ready)",
)
NOTIFICATIONS_TOPICS_SUBSCRIBED = Family(
    "genesys_notifications_topics_subscribed",
    "gauge",
    "Topics currently subscribed over all channels.",
    group="notifications",
)
NOTIFICATIONS_REJECTED = Family(
    "genesys_notifications_subscriptions_rejected",
    "counter",
    "Topic subscriptions the platform rejected, by reason.",
    (_closed("reason", RejectReason, open_extra=True),),
    group="notifications",
    note="the platform's `rejectionReason` (slugged) adds values; alert: GenesysNotificationsTopicsNotSubscribed",
)
NOTIFICATIONS_REFUSED = Family(
    "genesys_notifications_subscriptions_refused",
    "counter",
    "Sentiment topics not subscribed because every channel was full.",
    group="notifications",
    note="alert: GenesysNotificationsTopicsNotSubscribed",
)
NOTIFICATIONS_CHANNEL_EXPIRY = Family(
    "genesys_notifications_channel_expiry_timestamp_seconds",
    "gauge",
    "When each channel expires (the platform's `expires`).",
    (Label("channel"),),
    unit="seconds",
    group="notifications",
    note="channel slot 0..19",
)
NOTIFICATIONS_API_REQUESTS = Family(
    "genesys_notifications_api_requests",
    "counter",
    "REST requests of the notifications source, by result.",
    (_closed("result", ApiResult),),
    group="notifications",
)

# ---- AudioHook (--source ...,audiohook) ---------------------------------------------------------------
# Their label values are pre-created by the AudioHook server from its own protocol constants.
AUDIOHOOK_SESSIONS_ACTIVE = Family(
    "genesys_audiohook_sessions_active", "gauge", "AudioHook sessions this replica holds.", group="audiohook"
)
AUDIOHOOK_SESSIONS = Family(
    "genesys_audiohook_sessions",
    "counter",
    "AudioHook sessions finished, by how.",
    (Label("outcome"),),
    group="audiohook",
    note="`outcome`: completed, probe, disconnected, connection_lost, timeout",
)
AUDIOHOOK_CONNECTIONS_REFUSED = Family(
    "genesys_audiohook_connections_refused",
    "counter",
    "AudioHook upgrades refused, by reason.",
    (Label("reason"),),
    group="audiohook",
    note="alert: AudioHookConnectionsRefused (key, signature and clock reasons)",
)
AUDIOHOOK_MESSAGES = Family(
    "genesys_audiohook_messages",
    "counter",
    "AudioHook frames received, by what became of them.",
    (Label("outcome"),),
    group="audiohook",
)
AUDIOHOOK_CLIENT_ERRORS = Family(
    "genesys_audiohook_client_errors",
    "counter",
    "AudioHook `error` messages from Genesys, by code.",
    (Label("code"),),
    group="audiohook",
)
AUDIOHOOK_AUDIO_RECEIVED = Family(
    "genesys_audiohook_audio_received_seconds",
    "counter",
    "Seconds of audio received per channel (external: the customer; internal: the agent).",
    (Label("channel"),),
    unit="seconds",
    group="audiohook",
)
AUDIOHOOK_AUDIO_DROPPED = Family(
    "genesys_audiohook_audio_dropped_seconds",
    "counter",
    "Seconds of channel audio not recognised: paused or discarded by Genesys, or dropped while workers lagged.",
    (Label("reason"),),
    unit="seconds",
    group="audiohook",
    note="alert: AudioHookAudioDropped (`overload`, `worker_failed`)",
)
AUDIOHOOK_UTTERANCES = Family(
    "genesys_audiohook_utterances",
    "counter",
    "Utterances segmented from AudioHook audio, by outcome.",
    (Label("outcome"),),
    group="audiohook",
)
AUDIOHOOK_RECOGNISED_AUDIO = Family(
    "genesys_audiohook_recognised_audio_seconds",
    "counter",
    "Seconds of speech the recognition engine transcribed.",
    unit="seconds",
    group="audiohook",
)
AUDIOHOOK_RECOGNITION_CPU = Family(
    "genesys_audiohook_recognition_cpu_seconds",
    "counter",
    "CPU seconds spent recognising and scoring utterances (divided by recognised audio: the real-time factor).",
    unit="seconds",
    group="audiohook",
)
AUDIOHOOK_RECOGNITION_LAG = Family(
    "genesys_audiohook_recognition_lag_seconds",
    "gauge",
    "Age of the oldest audio frame a recognition worker has not processed yet.",
    unit="seconds",
    group="audiohook",
)
AUDIOHOOK_WORKERS = Family(
    "genesys_audiohook_workers", "gauge", "Recognition worker processes running.", group="audiohook"
)
AUDIOHOOK_WORKER_RESTARTS = Family(
    "genesys_audiohook_worker_restarts", "counter", "Recognition workers restarted after dying.", group="audiohook"
)
AUDIOHOOK_UTTERANCE_LATENCY = Family(
    "genesys_audiohook_utterance_latency_seconds",
    "histogram",
    "From the end of a spoken utterance (its last frame received) to its reading in the tracker.",
    unit="seconds",
    group="audiohook",
)

# ---- transcripts (the live path) and Genesys' post-call score -----------------------------------------
TRANSCRIPT_UTTERANCES = Family(
    "genesys_transcript_utterances",
    "counter",
    "Transcript utterances by party and what became of them.",
    (_closed("party", UtteranceParty), _closed("outcome", UtteranceOutcome)),
    group="notifications",
    note="`unsupported_language`: the analyzer cannot score the dialect (never a 0.0 reading; `check` names "
    "the queues); `party_not_scored`: agent speech without `--score-parties customer,agent`",
)
POSTCALL_SCORE = Family(
    "genesys_agent_postcall_sentiment_score",
    "gauge",
    "Genesys' overall sentiment (-1..1) of the agent's last finished call, computed after the call.",
    (AGENT, QUEUE),
    group="agent",
    note="a coaching signal, never part of the live window",
)
POSTCALL_TREND = Family(
    "genesys_agent_postcall_sentiment_trend",
    "gauge",
    "Genesys' sentiment trend (-1..1) of the agent's last finished call.",
    (AGENT, QUEUE),
    group="agent",
)
POSTCALL_MEAN = Family(
    "genesys_agent_postcall_sentiment_mean",
    "gauge",
    "Mean of Genesys' overall sentiment over the agent's recent calls (up to 5).",
    (AGENT, QUEUE),
    group="agent",
)
POSTCALL_TIMESTAMP = Family(
    "genesys_agent_postcall_timestamp_seconds",
    "gauge",
    "When the agent's last post-call score arrived.",
    (AGENT, QUEUE),
    unit="seconds",
    group="agent",
)
POSTCALL_CALLS = Family(
    "genesys_agent_postcall_calls", "counter", "Calls of the agent with a post-call score.", (AGENT, QUEUE),
    group="agent",
)  # fmt: skip

FAMILIES: tuple[Family, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Family))
BY_SAMPLE_NAME: dict[str, Family] = {name: f for f in FAMILIES for name in f.sample_names}
BY_NAME: dict[str, Family] = {f.name: f for f in FAMILIES}


# ---- the README's tables ----------------------------------------------------------------------------
README_BEGIN = "<!-- metrics catalogue: begin (python -m genesys_sentiment_exporter.catalogue --write) -->"
README_END = "<!-- metrics catalogue: end -->"
_GROUP_TITLES: dict[Group, str] = {
    "agent": "Per agent, labelled `agent_id` and `queue_id` (never a conversation id); the live families also "
    "`party` (`customer`; `agent` with `--score-parties customer,agent`):",
    "queue": "With `--agent-identity none`, instead of the per-agent families, per `queue_id`:",
    "exporter": "Exporter-wide:",
    "notifications": "The notifications source (the default) adds:",
    "audiohook": "With `--source ...,audiohook`, the AudioHook server adds:",
}


def _row(family: Family) -> str:
    labels = ",".join(family.all_labels)
    shown = family.name if family.kind == "histogram" else family.sample_name
    name = f"`{shown}{{{labels}}}`" if labels else f"`{shown}`"
    meaning = family.help.rstrip(".")
    closed = [
        f"`{label.name}`: " + ", ".join(f"`{v}`" for v in label.known) + (", ..." if label.open_extra else "")
        for label in family.labels
        if label.values is not None
    ]
    extra = "; ".join([*closed, *([family.note] if family.note else [])])
    return f"| {name} | {family.exposed_type} | {meaning}{'; ' + extra if extra else ''} |"


def readme_tables() -> str:
    parts: list[str] = []
    for group, title in _GROUP_TITLES.items():
        parts += [title, "", "| metric | type | meaning |", "|---|---|---|"]
        parts += [_row(f) for f in FAMILIES if f.group == group]
        parts.append("")
    return "\n".join(parts).rstrip("\n") + "\n"


def replace_readme_section(readme: str) -> str:
    start, end = readme.index(README_BEGIN) + len(README_BEGIN), readme.index(README_END)
    return readme[:start] + "\n" + readme_tables() + readme[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The metric catalogue's README tables.")
    parser.add_argument("--readme", type=Path, default=Path(__file__).resolve().parent.parent / "README.md")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the tables in the README")
    mode.add_argument("--check", action="store_true", help="exit 1 if the README's tables are stale")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        sys.stdout.write(readme_tables())
        return 0
    text = args.readme.read_text(encoding="utf-8")
    wanted = replace_readme_section(text)
    if args.check:
        if wanted != text:
            print(
                f"{args.readme}: metrics tables are stale: run python -m genesys_sentiment_exporter.catalogue --write"
            )
            return 1
        return 0
    args.readme.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
