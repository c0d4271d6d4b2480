"""The AudioHook v2 session, server side, as a pure state machine.

Fed text and binary frames with `now` (monotonic seconds), it returns what the shell must do
(`Send` a message, forward `Audio`, mark a `Gap` in the timeline, `Hangup` the socket) plus one
outcome per frame, which the shell counts. It imports no asyncio, no aiohttp and no clock, so every
rule of shared/audiohook-protocol.md (sequence numbers, positions, media negotiation, pause,
close, server-initiated disconnect, probes) is tested frame by frame.

Channel names are the protocol's: `external` is the monitored customer's own voice, `internal`
is what the customer hears (the agent on a 1:1 call).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

VERSION = "2"
RATE = 8000
FORMATS = {"PCMU": 1, "L16": 2}  # bytes per sample
CHANNELS = ("external", "internal")
PROBE_ID = "00000000-0000-0000-0000-000000000000"
MAX_TEXT = 65535

# Outcomes: every frame that arrives ends in exactly one of these (a label of the message counter).
OPEN = "open"
PROBE = "probe"
PING = "ping"
UPDATE = "update"
PAUSED = "paused"
RESUMED = "resumed"
DISCARDED = "discarded"
ERROR = "error"
CLOSE = "close"
AUDIO = "audio"
AUDIO_PAUSED = "audio_paused"  # audio while paused (either side): dropped, and counted
AUDIO_EMPTY = "audio_empty"  # zero-length frame (the connection probe sends one)
AUDIO_UNEXPECTED = "audio_unexpected"  # audio before `opened`, after `close`, or with no media selected
AUDIO_MALFORMED = "audio_malformed"  # not a whole number of samples
MALFORMED = "malformed"  # not JSON, not an object, wrong version or session id, bad field types
SEQUENCE_ERROR = "sequence_error"  # a gap in `seq`, or a `serverseq` we never sent
POSITION_ERROR = "position_error"  # the client's timeline ran backwards
UNEXPECTED = "unexpected"  # a valid message the state does not allow (e.g. a second `open`)
UNKNOWN_TYPE = "unknown_type"
AFTER_CLOSE = "after_close"  # anything after the close transaction
REFUSED_ORGANIZATION = "organization_mismatch"
NO_MEDIA = "no_supported_media"
OUTCOMES = (
    OPEN,
    PROBE,
    PING,
    UPDATE,
    PAUSED,
    RESUMED,
    DISCARDED,
    ERROR,
    CLOSE,
    AUDIO,
    AUDIO_PAUSED,
    AUDIO_EMPTY,
    AUDIO_UNEXPECTED,
    AUDIO_MALFORMED,
    MALFORMED,
    SEQUENCE_ERROR,
    POSITION_ERROR,
    UNEXPECTED,
    UNKNOWN_TYPE,
    AFTER_CLOSE,
    REFUSED_ORGANIZATION,
    NO_MEDIA,
)

_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$")


def parse_duration(value: object) -> float | None:
    """ISO 8601 `PT1.2S` (hours and minutes too) in seconds; None when it is not one."""
    if not isinstance(value, str):
        return None
    match = _DURATION.match(value)
    if match is None or value == "PT":
        return None
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


def format_duration(seconds: float) -> str:
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"PT{text}S"


class State(Enum):
    AWAIT_OPEN = "await_open"
    OPEN = "open"
    DISCONNECTING = "disconnecting"  # we sent `disconnect`; the client runs the close transaction
    CLOSED = "closed"  # we sent `closed`; the client closes the socket


@dataclass(frozen=True, slots=True)
class Media:
    format: str  # PCMU or L16
    channels: tuple[str, ...]

    @property
    def frame_bytes(self) -> int:
        """Bytes of one sample for every channel: frames must be whole multiples of it."""
        return FORMATS[self.format] * len(self.channels)

    def offer(self) -> dict[str, Any]:
        return {"type": "audio", "format": self.format, "channels": list(self.channels), "rate": RATE}


# -- actions ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    message: dict[str, Any]

    def text(self) -> str:
        return json.dumps(self.message, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Started:
    """The session is open with media: the shell attributes it and starts its audio pipeline."""

    conversation_id: str
    participant_id: str
    media: Media
    language: str


@dataclass(frozen=True, slots=True)
class Audio:
    data: bytes
    start: float  # position of the frame's first sample, seconds since the session's audio began


@dataclass(frozen=True, slots=True)
class Gap:
    """Audio that never reached us (paused, discarded): utterances must not span it."""

    seconds: float
    reason: str


@dataclass(frozen=True, slots=True)
class LanguageChanged:
    language: str


@dataclass(frozen=True, slots=True)
class Ended:
    """The session's audio is over (close, disconnect or failure): flush the pipeline."""

    reason: str


@dataclass(frozen=True, slots=True)
class Hangup:
    """Close the socket now (the client ignored our close transaction, or never opened)."""

    reason: str


Action = Send | Started | Audio | Gap | LanguageChanged | Ended | Hangup


@dataclass(slots=True)
class Result:
    outcome: str
    actions: list[Action] = field(default_factory=list)
    error_code: str = ""  # an `error` message's code, for the protocol-error counter


# -- the session ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionConfig:
    channels_wanted: tuple[str, ...] = ("external",)  # which channels the exporter analyses
    languages: tuple[str, ...] = ("en-US",)  # what the recognition engine can do
    open_timeout: float = 10.0  # no `open` this long after the upgrade: hang up
    idle_timeout: float = 30.0  # no frame this long (Genesys pings every 5 s): hang up
    close_timeout: float = 10.0  # after our `disconnect`, the client has this long to close


class ServerSession:
    def __init__(self, session_id: str, organization_id: str, now: float, config: SessionConfig | None = None) -> None:
        self.id = session_id
        self.organization_id = organization_id
        self.config = config or SessionConfig()
        self.state = State.AWAIT_OPEN
        self.client_seq = 0
        self.server_seq = 0
        self.started_at = now
        self.last_frame = now
        self.disconnect_at = 0.0
        self.media: Media | None = None
        self.conversation_id = ""
        self.language = ""
        self.probe = False
        self.client_paused = False
        self.server_paused = False
        self.samples = 0  # per channel, received
        self.skipped = 0.0  # seconds the client told us it did not send (pause, discard)
        self.last_position = 0.0

    # -- outgoing --------------------------------------------------------------------------------
    def _message(self, kind: str, parameters: dict[str, Any]) -> Send:
        self.server_seq += 1
        return Send(
            {
                "version": VERSION,
                "type": kind,
                "seq": self.server_seq,
                "clientseq": self.client_seq,
                "id": self.id,
                "parameters": parameters,
            }
        )

    def disconnect(self, reason: str, info: str, now: float) -> list[Action]:
        """Server-initiated end: `completed`, `unauthorized` or `error`; the client then closes."""
        if self.state in (State.DISCONNECTING, State.CLOSED):
            return []
        actions: list[Action] = []
        if self.state is State.OPEN and self.media is not None:
            actions.append(Ended(f"disconnect_{reason}"))
        self.state = State.DISCONNECTING
        self.disconnect_at = now
        parameters = {"reason": reason, "info": info} if info else {"reason": reason}
        actions.insert(0, self._message("disconnect", parameters))
        return actions

    def pause(self) -> list[Action]:
        if self.state is not State.OPEN or self.server_paused:
            return []
        self.server_paused = True
        return [self._message("pause", {})]

    def resume(self) -> list[Action]:
        if self.state is not State.OPEN or not self.server_paused:
            return []
        self.server_paused = False
        return [self._message("resume", {})]

    @property
    def paused(self) -> bool:
        return self.client_paused or self.server_paused

    @property
    def position(self) -> float:
        """Seconds of the client's audio timeline we have accounted for."""
        return self.samples / RATE + self.skipped

    # -- timers ----------------------------------------------------------------------------------
    def tick(self, now: float) -> list[Action]:
        if self.state is State.AWAIT_OPEN and now - self.started_at >= self.config.open_timeout:
            self.state = State.CLOSED
            return [Hangup("open_timeout")]
        if self.state is State.OPEN and now - self.last_frame >= self.config.idle_timeout:
            self.state = State.CLOSED
            return [Ended("idle_timeout"), Hangup("idle_timeout")]
        if self.state is State.DISCONNECTING and now - self.disconnect_at >= self.config.close_timeout:
            self.state = State.CLOSED
            return [Hangup("close_timeout")]
        return []

    def connection_lost(self) -> list[Action]:
        """The socket went away without a close transaction (a network failure to Genesys)."""
        was_open = self.state is State.OPEN and self.media is not None
        self.state = State.CLOSED
        return [Ended("connection_lost")] if was_open else []

    # -- incoming --------------------------------------------------------------------------------
    def receive_binary(self, data: bytes, now: float) -> Result:
        self.last_frame = now
        if self.state is State.CLOSED:
            return Result(AFTER_CLOSE)
        if not data:
            return Result(AUDIO_EMPTY)
        media = self.media
        if self.state is not State.OPEN or media is None:
            return Result(AUDIO_UNEXPECTED)
        if len(data) % media.frame_bytes:
            return Result(AUDIO_MALFORMED)
        start = self.position
        self.samples += len(data) // media.frame_bytes
        if self.paused:
            return Result(AUDIO_PAUSED, [Gap(len(data) / media.frame_bytes / RATE, "paused")])
        return Result(AUDIO, [Audio(data, start)])

    def receive_text(self, text: str, now: float) -> Result:
        self.last_frame = now
        if self.state is State.CLOSED:
            return Result(AFTER_CLOSE)
        message = self._parse(text)
        if message is None:
            return Result(MALFORMED, self.disconnect("error", "malformed message", now))
        seq, serverseq = message["seq"], message["serverseq"]
        kind, parameters = message["type"], message["parameters"]
        # Once we have asked the client to go, its `close` is answered whatever its numbering:
        # the close transaction is how the session ends cleanly.
        closing = self.state is State.DISCONNECTING and kind == "close"
        if (seq != self.client_seq + 1 or serverseq > self.server_seq) and not closing:
            return Result(SEQUENCE_ERROR, self.disconnect("error", "sequence number out of order", now))
        self.client_seq = seq
        position = parse_duration(message["position"])
        if (position is None or position + 1e-6 < self.last_position) and not closing:
            return Result(POSITION_ERROR, self.disconnect("error", "position ran backwards", now))
        self.last_position = position = self.last_position if position is None else position
        handler = _HANDLERS.get(kind)
        if handler is None:
            return Result(UNKNOWN_TYPE)
        return handler(self, parameters, position, now)

    def _parse(self, text: str) -> dict[str, Any] | None:
        if len(text) > MAX_TEXT:
            return None
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested ~1 000 deep (fits in MAX_TEXT)
            return None
        if not isinstance(message, dict) or message.get("version") != VERSION or message.get("id") != self.id:
            return None
        if not isinstance(message.get("type"), str) or not isinstance(message.get("parameters", {}), dict):
            return None
        for name in ("seq", "serverseq"):
            if not isinstance(message.get(name), int) or isinstance(message.get(name), bool):
                return None
        message.setdefault("parameters", {})
        message.setdefault("position", "PT0S")
        return message

    # -- handlers (one per client message type) ---------------------------------------------------
    def _open(self, parameters: dict[str, Any], position: float, now: float) -> Result:
        if self.state is not State.AWAIT_OPEN:
            return Result(UNEXPECTED, self.disconnect("error", "open already received", now))
        if parameters.get("organizationId") != self.organization_id:
            return Result(REFUSED_ORGANIZATION, self.disconnect("unauthorized", "", now))
        conversation = parameters.get("conversationId")
        participant = parameters.get("participant")
        participant_id = participant.get("id") if isinstance(participant, dict) else None
        offers = parameters.get("media")
        if not isinstance(conversation, str) or not isinstance(offers, list) or not isinstance(participant_id, str):
            return Result(MALFORMED, self.disconnect("error", "open without conversation, participant or media", now))
        language = parameters.get("language")
        self.language = language if isinstance(language, str) else ""
        self.conversation_id = conversation
        self.state = State.OPEN
        opened: dict[str, Any] = {"startPaused": False}
        if parameters.get("supportedLanguages") is True:
            opened["supportedLanguages"] = list(self.config.languages)
        if conversation == PROBE_ID:
            # Genesys checks the integration this way: answer, expect `close`, count no call.
            self.probe = True
            opened["media"] = []
            return Result(PROBE, [self._message("opened", opened)])
        media = choose_media(offers, self.config.channels_wanted)
        if media is None:
            self.state = State.AWAIT_OPEN
            return Result(NO_MEDIA, self.disconnect("error", "no offered media is PCMU or L16 at 8000 Hz", now))
        self.media = media
        opened["media"] = [media.offer()]
        return Result(
            OPEN, [self._message("opened", opened), Started(conversation, participant_id, media, self.language)]
        )

    def _ping(self, parameters: dict[str, Any], position: float, now: float) -> Result:
        if self.state is State.AWAIT_OPEN:
            return Result(UNEXPECTED)
        return Result(PING, [self._message("pong", {})])

    def _update(self, parameters: dict[str, Any], position: float, now: float) -> Result:
        if self.state is not State.OPEN:
            return Result(UNEXPECTED)
        language = parameters.get("language")
        actions: list[Action] = []
        if isinstance(language, str) and language != self.language:
            self.language = language
            actions.append(LanguageChanged(language))
        actions.append(self._message("updated", {}))
        return Result(UPDATE, actions)

    def _paused(self, parameters: dict[str, Any], position: float, now: float) -> Result:
        if self.state is not State.OPEN:
            return Result(UNEXPECTED)
        self.client_paused = True
        return Result(PAUSED, [Gap(0.0, "paused")])

    def _resumed(self, parameters: dict[str, Any], position: float, now: float) -> Result:
        if self.state is not State.OPEN:
            return Result(UNEXPECTED)
        self.client_paused = False
        return Result(RESUMED, self._skip(parameters, "paused"))

    def _discarded(self, parameters: dict[str, Any], position: float, now: float) -> Result:
        if self.state is not State.OPEN:
            return Result(UNEXPECTED)
        return Result(DISCARDED, self._skip(parameters, "discarded"))

    def _skip(self, parameters: dict[str, Any], reason: str) -> list[Action]:
        seconds = parse_duration(parameters.get("discarded"))
        if not seconds:
            return []
        self.skipped += seconds
        return [Gap(seconds, reason)]

    def _error(self, parameters: dict[str, Any], position: float, now: float) -> Result:
        code = parameters.get("code")
        return Result(ERROR, error_code=str(code) if isinstance(code, int) else "unknown")

    def _close(self, parameters: dict[str, Any], position: float, now: float) -> Result:
        actions: list[Action] = []
        if self.state is State.OPEN and self.media is not None:
            reason = parameters.get("reason")
            actions.append(
                Ended(f"close_{reason}" if reason in ("end", "error", "disconnect", "reconnect") else "close")
            )
        self.state = State.CLOSED
        actions.insert(0, self._message("closed", {}))
        return Result(CLOSE, actions)


_HANDLERS = {
    "open": ServerSession._open,
    "ping": ServerSession._ping,
    "update": ServerSession._update,
    "paused": ServerSession._paused,
    "resumed": ServerSession._resumed,
    "discarded": ServerSession._discarded,
    "error": ServerSession._error,
    "close": ServerSession._close,
}


def choose_media(offers: list[Any], wanted: tuple[str, ...]) -> Media | None:
    """The offer to take: both channels when we analyse both (or the customer's with context),
    else the fewest channels that still carry what we analyse; PCMU before L16 (half the bytes)."""
    valid: list[Media] = []
    for offer in offers:
        if not isinstance(offer, dict) or offer.get("type") != "audio" or offer.get("rate") != RATE:
            continue
        fmt, channels = offer.get("format"), offer.get("channels")
        if fmt not in FORMATS or not isinstance(channels, list) or not channels:
            continue
        if len(set(channels)) != len(channels) or any(c not in CHANNELS for c in channels):
            continue
        valid.append(Media(str(fmt), tuple(channels)))
    useful = [m for m in valid if set(wanted) <= set(m.channels)]
    if not useful:
        useful = [m for m in valid if set(wanted) & set(m.channels)]
    if not useful:
        return None
    # Fewest extra channels first (less to receive), then PCMU, then the offer's own order.
    return min(useful, key=lambda m: (len(m.channels) - len(set(wanted) & set(m.channels)), m.format != "PCMU"))
