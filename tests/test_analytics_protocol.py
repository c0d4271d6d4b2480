"""The pinned analytics-websocket protocol: parsing and the subscribe message, no sockets."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.sources.analytics_protocol import Kind, Sentiment, parse, subscribe_message
from genesys_sentiment_exporter.sources.analytics_session import AnalyticsSession, SubscribeRefused
from genesys_sentiment_exporter.stream_state import StreamState
from genesys_sentiment_exporter.tracker import AgentTracker

NOW = 1_800_000_000.0


def conversation(**fields: object) -> str:
    event = {
        "type": "conversation",
        "eventTime": "2026-11-26T19:00:31.250Z",
        "conversationId": "c1",
        "agentId": "a1",
        "queueId": "q1",
        "state": "connected",
        "sentiment": {"score": -0.62, "label": "negative"},
    }
    for key, value in fields.items():
        if value is ...:
            event.pop(key, None)
        else:
            event[key] = value
    return json.dumps(event)


def test_subscribe_message_matches_the_document_and_always_asks_for_the_score() -> None:
    message = json.loads(subscribe_message(["q1"], ["a1"], 30))
    assert message == {
        "action": "subscribe",
        "events": [
            {
                "type": "conversation",
                "filters": {"queueId": "q1", "agentId": "a1"},
                "fields": ["sentiment.score", "sentiment.label", "state"],
            }
        ],
        "heartbeat": 30,
    }


def test_subscribe_without_filters_matches_everything() -> None:
    message = json.loads(subscribe_message([], [], 45))
    assert message["events"] == [
        {"type": "conversation", "filters": {}, "fields": ["sentiment.score", "sentiment.label", "state"]}
    ]
    assert message["heartbeat"] == 45


def test_subscribe_one_entry_per_filter_combination() -> None:
    message = json.loads(subscribe_message(["q1", "q2"], ["a1"], 30))
    assert [e["filters"] for e in message["events"]] == [
        {"queueId": "q1", "agentId": "a1"},
        {"queueId": "q2", "agentId": "a1"},
    ]


def test_conversation_event_with_score() -> None:
    parsed = parse(conversation(), NOW)
    assert parsed.kind == Kind.CONVERSATION
    assert parsed.reading is not None and parsed.reading.score == -0.62
    assert parsed.reading.timestamp == datetime(2026, 11, 26, 19, 0, 31, 250000, tzinfo=UTC).timestamp()
    assert parsed.state is not None and parsed.state.state == "connected"


def test_absent_event_time_means_now() -> None:
    parsed = parse(conversation(eventTime=...), NOW)
    assert parsed.reading is not None and parsed.reading.timestamp == NOW


@pytest.mark.parametrize(
    ("sentiment", "status"),
    [
        ({"label": "negative"}, Sentiment.MISSING),
        ({"score": None, "label": None}, Sentiment.MISSING),
        (None, Sentiment.MISSING),
        ({"score": 1.5}, Sentiment.INVALID),
        ({"score": -1.0001}, Sentiment.INVALID),
        ({"score": "0.5"}, Sentiment.INVALID),
        ({"score": True}, Sentiment.INVALID),
        ("negative", Sentiment.INVALID),
    ],
)
def test_missing_or_invalid_score_is_never_a_reading(sentiment: object, status: str) -> None:
    parsed = parse(conversation(sentiment=sentiment), NOW)
    assert parsed.reading is None
    assert parsed.sentiment == status
    assert parsed.state is not None  # the state still counts


def test_non_finite_score_is_invalid() -> None:
    frame = conversation().replace("-0.62", "NaN")
    assert parse(frame, NOW).sentiment == Sentiment.INVALID
    frame = conversation().replace("-0.62", "Infinity")
    assert parse(frame, NOW).sentiment == Sentiment.INVALID


def test_bounds_are_inclusive() -> None:
    assert parse(conversation(sentiment={"score": -1}), NOW).reading is not None
    assert parse(conversation(sentiment={"score": 1.0}), NOW).reading is not None


def test_event_without_sentiment_object() -> None:
    parsed = parse(conversation(sentiment=...), NOW)
    assert parsed.sentiment == Sentiment.ABSENT
    assert parsed.reading is None
    assert parsed.state is not None and parsed.state.state == "connected"


def test_missing_queue_becomes_unknown() -> None:
    parsed = parse(conversation(queueId=...), NOW)
    assert parsed.reading is not None and parsed.reading.queue_id == "unknown"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("not json", "malformed"),
        (b"\xff\xfe", "malformed"),
        ("[1, 2]", "malformed"),
        ('{"no": "type"}', "malformed"),
        ('{"type": 7}', "malformed"),
        ('{"type": "presence"}', "unknown_type"),
        (conversation(agentId=...), "missing_agent"),
        (conversation(agentId=""), "missing_agent"),
        (conversation(conversationId=...), "malformed"),
        (conversation(eventTime="yesterday"), "malformed"),
        (conversation(state=5), "malformed"),
        (conversation(queueId=["q"]), "malformed"),
    ],
)
def test_rejections_carry_a_reason(frame: str | bytes, reason: str) -> None:
    parsed = parse(frame, NOW)
    assert parsed.kind == Kind.REJECTED
    assert parsed.reason == reason


def test_control_messages() -> None:
    assert parse('{"type": "heartbeat", "timestamp": "2026-11-26T19:00:30.000Z"}', NOW).kind == Kind.HEARTBEAT
    assert parse('{"type": "subscribed", "events": 1, "heartbeat": 30}', NOW).kind == Kind.SUBSCRIBED
    error = parse(
        '{"type": "error", "code": "invalid_subscription", "message": "heartbeat must be at least 10 seconds"}', NOW
    )
    assert error.kind == Kind.ERROR
    assert error.reason == "invalid_subscription"
    assert "at least 10" in error.detail


def test_session_handshake_counts_early_frames_and_numbers_sockets() -> None:
    stream = StreamState()
    session = AnalyticsSession(Ingest(AgentTracker()), stream, ["q1"], [], 30)
    assert session.handshake('{"type": "heartbeat"}', 50.0) == 0
    assert stream.last_heartbeat == 50.0
    assert session.handshake('{"type": "subscribed"}', 51.0) == 1
    with pytest.raises(SubscribeRefused, match="forbidden"):
        session.handshake('{"type": "error", "code": "forbidden", "message": "no"}', 52.0)
    assert session.handshake('{"type": "subscribed"}', 53.0) == 2
    frame = json.dumps({"type": "conversation", "conversationId": "c1", "agentId": "a1", "sentiment": {"score": 0.5}})
    session.dedup.start()
    session.handle(frame, parse(frame, 60.0), 1, 60.0)
    session.handle(frame, parse(frame, 60.0), 2, 60.0)
    # the overlap keeps 16-byte digests, never the frames (up to 1 MiB each, 200 000 keys)
    assert [len(key) for key in session.dedup.seen] == [16]
    session.dedup.stop()
    assert session.ingest.messages == {"heartbeat": 1, "control": 2, "reading": 1, "duplicate": 1}
