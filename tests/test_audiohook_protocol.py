"""The AudioHook server session, frame by frame, with no socket and no clock."""

from __future__ import annotations

import json
from typing import Any

import pytest

from genesys_sentiment_exporter.audiohook import protocol as p

SID = "6d2b4b6e-0000-4000-8000-000000000001"
ORG = "org-1"
CONV = "conversation-1"
STEREO = {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}
MONO_EXT = {"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000}
MONO_INT = {"type": "audio", "format": "PCMU", "channels": ["internal"], "rate": 8000}


class Client:
    """Builds client messages with correct sequence numbers and positions."""

    def __init__(self, session: p.ServerSession) -> None:
        self.session = session
        self.seq = 0
        self.position = 0.0

    def text(self, kind: str, parameters: dict[str, Any] | None = None, now: float = 1.0, **over: Any) -> p.Result:
        self.seq += 1
        message = {
            "version": "2",
            "id": SID,
            "type": kind,
            "seq": self.seq,
            "serverseq": self.session.server_seq,
            "position": p.format_duration(self.position),
            "parameters": parameters or {},
        }
        message.update(over)
        return self.session.receive_text(json.dumps(message), now)

    def open(self, media: list[dict[str, Any]] | None = None, conversation: str = CONV, **extra: Any) -> p.Result:
        parameters = {
            "organizationId": ORG,
            "conversationId": conversation,
            "participant": {"id": "customer-1"},
            "media": [STEREO, MONO_EXT, MONO_INT] if media is None else media,
            "language": "en-US",
            **extra,
        }
        return self.text("open", parameters)

    def audio(self, seconds: float, channels: int = 2, now: float = 1.0) -> p.Result:
        self.position += seconds
        return self.session.receive_binary(bytes(int(seconds * 8000) * channels), now)


def sent(result: p.Result) -> list[dict[str, Any]]:
    return [a.message for a in result.actions if isinstance(a, p.Send)]


def new(channels: tuple[str, ...] = ("external",)) -> tuple[p.ServerSession, Client]:
    session = p.ServerSession(SID, ORG, 0.0, p.SessionConfig(channels_wanted=channels))
    return session, Client(session)


def test_open_negotiates_the_customer_channel_and_answers_with_sequence_numbers() -> None:
    _, client = new()
    result = client.open()
    assert result.outcome == p.OPEN
    (opened,) = sent(result)
    assert opened["type"] == "opened" and opened["seq"] == 1 and opened["clientseq"] == 1 and opened["id"] == SID
    assert opened["parameters"]["media"] == [MONO_EXT]  # only what is analysed: the customer's voice
    started = [a for a in result.actions if isinstance(a, p.Started)]
    assert started == [p.Started(CONV, "customer-1", p.Media("PCMU", ("external",)), "en-US")]


def test_both_parties_take_the_stereo_offer_and_l16_when_it_is_all_there_is() -> None:
    _, client = new(("external", "internal"))
    assert sent(client.open())[0]["parameters"]["media"] == [STEREO]
    l16 = {**STEREO, "format": "L16"}
    _, client = new(("external", "internal"))
    assert sent(client.open([{**STEREO, "rate": 16000}, l16]))[0]["parameters"]["media"] == [l16]


def test_unusable_media_is_refused_with_disconnect() -> None:
    _, client = new()
    result = client.open([{**STEREO, "format": "opus"}, {**MONO_EXT, "rate": 16000}])
    assert result.outcome == p.NO_MEDIA
    assert sent(result)[0]["type"] == "disconnect" and sent(result)[0]["parameters"]["reason"] == "error"


def test_connection_probe_opens_without_media_and_closes() -> None:
    session, client = new()
    result = client.open(conversation=p.PROBE_ID, supportedLanguages=True)
    assert result.outcome == p.PROBE
    opened = sent(result)[0]
    assert opened["parameters"]["media"] == [] and opened["parameters"]["supportedLanguages"] == ["en-US"]
    assert not any(isinstance(a, p.Started) for a in result.actions)
    assert session.receive_binary(b"", 1.0).outcome == p.AUDIO_EMPTY  # the probe's zero-length frame
    close = client.text("close", {"reason": "end"})
    assert sent(close)[0]["type"] == "closed" and not any(isinstance(a, p.Ended) for a in close.actions)


def test_organization_must_match_the_upgrade_header() -> None:
    session, client = new()
    result = client.text(
        "open", {"organizationId": "other", "conversationId": CONV, "participant": {"id": "x"}, "media": [MONO_EXT]}
    )
    assert result.outcome == p.REFUSED_ORGANIZATION
    assert sent(result)[0]["parameters"] == {"reason": "unauthorized"}
    assert session.state is p.State.DISCONNECTING


def test_audio_flows_with_positions_and_pong_answers_the_ping() -> None:
    session, client = new()
    client.open()
    first = client.audio(0.1, channels=1)
    second = client.audio(0.2, channels=1)
    audio = [a for r in (first, second) for a in r.actions if isinstance(a, p.Audio)]
    assert [a.start for a in audio] == [0.0, pytest.approx(0.1)]
    ping = client.text("ping", {"rtt": "PT0.01S"})
    (pong,) = sent(ping)
    assert ping.outcome == p.PING and pong["type"] == "pong" and pong["clientseq"] == ping_seq(client)
    assert session.position == pytest.approx(0.3)


def ping_seq(client: Client) -> int:
    return client.seq


def test_partial_samples_and_early_audio_are_counted_not_used() -> None:
    session, client = new(("external", "internal"))
    assert session.receive_binary(b"\x00" * 160, 0.5).outcome == p.AUDIO_UNEXPECTED
    client.open()
    assert session.receive_binary(b"\x00" * 3, 1.0).outcome == p.AUDIO_MALFORMED  # stereo PCMU: pairs of bytes


def test_sequence_gap_and_unknown_serverseq_disconnect_with_error() -> None:
    _, client = new()
    client.open()
    client.seq += 1  # skip one
    result = client.text("ping")
    assert result.outcome == p.SEQUENCE_ERROR and sent(result)[0]["type"] == "disconnect"
    # The client's `close` after our disconnect is answered even if its numbering is still off.
    closing = client.text("close", {"reason": "disconnect"})
    assert closing.outcome == p.CLOSE and sent(closing)[0]["type"] == "closed"
    _, client = new()
    client.open()
    assert client.text("ping", serverseq=99).outcome == p.SEQUENCE_ERROR


def test_position_running_backwards_is_an_error() -> None:
    _, client = new()
    client.open()
    client.audio(1.0, channels=1)
    assert client.text("ping").outcome == p.PING
    client.position = 0.5
    assert client.text("ping").outcome == p.POSITION_ERROR


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[]",
        json.dumps({"version": "1", "id": SID, "type": "ping", "seq": 1, "serverseq": 0}),
        json.dumps({"version": "2", "id": "someone-else", "type": "ping", "seq": 1, "serverseq": 0}),
        json.dumps({"version": "2", "id": SID, "type": "ping", "seq": "1", "serverseq": 0}),
        "x" * 70000,
    ],
)
def test_malformed_messages_end_in_a_counted_disconnect(frame: str) -> None:
    session, _ = new()
    result = session.receive_text(frame, 1.0)
    assert result.outcome == p.MALFORMED
    assert sent(result)[0]["type"] == "disconnect"


def test_client_pause_drops_audio_and_resume_reports_the_gap() -> None:
    _, client = new()
    client.open()
    assert client.text("paused").outcome == p.PAUSED
    dropped = client.audio(0.5, channels=1)
    assert dropped.outcome == p.AUDIO_PAUSED and not any(isinstance(a, p.Audio) for a in dropped.actions)
    resumed = client.text("resumed", {"start": "PT0.5S", "discarded": "PT2S"})
    assert resumed.outcome == p.RESUMED and [a for a in resumed.actions if isinstance(a, p.Gap)] == [
        p.Gap(2.0, "paused")
    ]
    client.position += 2.0
    after = client.audio(0.1, channels=1)
    assert [a.start for a in after.actions if isinstance(a, p.Audio)] == [pytest.approx(2.5)]


def test_server_pause_and_resume() -> None:
    session, client = new()
    client.open()
    (pause,) = session.pause()
    assert isinstance(pause, p.Send) and pause.message["type"] == "pause"
    assert session.pause() == []  # idempotent
    assert client.audio(0.1, channels=1).outcome == p.AUDIO_PAUSED
    (resume,) = session.resume()
    assert isinstance(resume, p.Send) and resume.message["type"] == "resume"
    assert client.audio(0.1, channels=1).outcome == p.AUDIO


def test_discarded_moves_the_timeline() -> None:
    session, client = new()
    client.open()
    result = client.text("discarded", {"start": "PT0S", "discarded": "PT1.5S"})
    assert result.outcome == p.DISCARDED and session.position == pytest.approx(1.5)


def test_update_language_is_acknowledged() -> None:
    _, client = new()
    client.open()
    result = client.text("update", {"language": "es-ES"})
    assert p.LanguageChanged("es-ES") in result.actions and sent(result)[0]["type"] == "updated"


def test_error_message_is_counted_by_code() -> None:
    _, client = new()
    client.open()
    result = client.text("error", {"code": 429, "message": "slow down", "retryAfter": "PT1S"})
    assert result.outcome == p.ERROR and result.error_code == "429"


def test_close_answers_closed_and_ends_the_audio() -> None:
    session, client = new()
    client.open()
    result = client.text("close", {"reason": "end"})
    assert sent(result)[0]["type"] == "closed" and p.Ended("close_end") in result.actions
    assert session.receive_text("{}", 2.0).outcome == p.AFTER_CLOSE


def test_server_disconnect_then_client_close() -> None:
    session, client = new()
    client.open()
    actions = session.disconnect("completed", "", 5.0)
    assert [a.message["type"] for a in actions if isinstance(a, p.Send)] == ["disconnect"]
    assert p.Ended("disconnect_completed") in actions
    result = client.text("close", {"reason": "disconnect"})
    assert sent(result)[0]["type"] == "closed" and not any(isinstance(a, p.Ended) for a in result.actions)


def test_timers_hang_up_silent_or_stuck_clients() -> None:
    session, _ = new()
    assert session.tick(5.0) == []
    assert session.tick(10.0) == [p.Hangup("open_timeout")]
    session, client = new()
    client.open()
    assert session.tick(30.0) == []  # last frame at 1.0
    assert session.tick(31.5) == [p.Ended("idle_timeout"), p.Hangup("idle_timeout")]
    session, client = new()
    client.open()
    session.disconnect("error", "x", 2.0)
    assert session.tick(12.5) == [p.Hangup("close_timeout")]


def test_unknown_type_and_second_open() -> None:
    _, client = new()
    client.open()
    assert client.text("dtmf").outcome == p.UNKNOWN_TYPE
    assert client.open().outcome == p.UNEXPECTED


@pytest.mark.parametrize(("text", "seconds"), [("PT0S", 0.0), ("PT1.25S", 1.25), ("PT1M2S", 62.0), ("PT1H", 3600.0)])
def test_durations(text: str, seconds: float) -> None:
    assert p.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "PT", "1.2S", "PT-1S", 5])
def test_bad_durations(text: object) -> None:
    assert p.parse_duration(text) is None
