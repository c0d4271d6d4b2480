"""An unset field may arrive absent (REST answers, the SDK's serialiser) or as null (the conversation
notification example in shared/genesys-platform-notes.md): every parser must read both the same way.

Each case is a body carrying nulls; its "absent" twin is the same body with every null member removed
(the simulator's `compact`, which is how the simulated REST answers are made).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from genesys_cloud_simulator.topics import compact

from genesys_sentiment_exporter.sources import notifications_protocol as proto
from genesys_sentiment_exporter.sources.notifications_session import NotificationsSession, parse_expires
from genesys_sentiment_exporter.sources.transcription_protocol import read_message

START_MS = 1_777_629_602_000


def conversation(agent_state: str = "connected", acw: str = "pending") -> dict[str, Any]:
    """The notes' example, nulls included."""
    over = agent_state == "disconnected"
    return {
        "id": "conv1",
        "participants": [
            {
                "id": "p-cust",
                "purpose": "customer",
                "queueId": None,
                "userId": None,
                "calls": [{"id": "s1", "state": "connected", "direction": "inbound", "disconnectType": None}],
            },
            {
                "id": "p-acd",
                "purpose": "acd",
                "queueId": "q1",
                "calls": [{"id": "s2", "state": "disconnected", "disconnectType": "transfer"}],
            },
            {
                "id": "p-agent",
                "purpose": "agent",
                "userId": "u1",
                "queueId": None,  # the ACD participant's queue is the fallback
                "name": "Agent A",
                "connectedTime": "2026-05-01T10:00:21.000Z",
                "endTime": "2026-05-01T10:04:00.000Z" if over else None,
                "wrapupRequired": True,
                "startAcwTime": None,
                "endAcwTime": None,
                "wrapup": None,
                "calls": [
                    {
                        "id": "s3",
                        "state": agent_state,
                        "direction": "inbound",
                        "connectedTime": "2026-05-01T10:00:21.000Z",
                        "disconnectedTime": None,
                        "disconnectType": "peer" if over else None,
                        "afterCallWork": {"state": acw, "startTime": None, "endTime": None},
                    }
                ],
            },
        ],
    }


@pytest.mark.parametrize(
    ("body", "legs"),
    [
        (conversation(), [("u1", "q1", "connected")]),
        (conversation("disconnected", "pending"), [("u1", "q1", "wrapup")]),
        (conversation("disconnected", "notApplicable"), [("u1", "q1", "disconnected")]),
    ],
)
def test_conversation_bodies_read_the_same_with_nulls_or_without(
    body: dict[str, Any], legs: list[tuple[str, str, str]]
) -> None:
    assert compact(body) != body  # the case really carries nulls
    for variant in (body, compact(body)):
        view = proto.read_conversation(variant, None)
        assert view is not None and view.voice
        assert [(leg.agent_id, leg.queue_id, leg.state) for leg in view.legs] == legs


def test_null_lists_and_ids_in_a_conversation_are_not_crashes() -> None:
    body = {"id": "conv1", "participants": [{"purpose": "agent", "userId": None, "calls": None}, None]}
    view = proto.read_conversation(body, "q9")
    assert view is not None and view.legs == []
    assert proto.read_conversation({"id": None, "participants": None}, None) is None


def utterance(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "utteranceId": "u1",
        "isFinal": True,
        "channel": "EXTERNAL",
        "alternatives": [
            {
                "confidence": None,
                "offsetMs": 1500,
                "durationMs": 900,
                "transcript": "thank you",
                "decoratedTranscript": None,
                "words": None,
            }
        ],
        "agentAssistantId": None,
        "engineProvider": None,
        "dialect": "en-US",
        "voiceTranscriptionEnabled": None,
    }
    entry.update(overrides)
    return entry


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (  # keepalive: transcripts null, organization unset
            {
                "conversationId": "c1",
                "organizationId": None,
                "transcripts": None,
                "status": {"offsetMs": 1, "status": "SESSION_ONGOING"},
            },
            [],
        ),
        (  # sessionStartTimeMs null: the transcription start is the origin
            {
                "conversationId": "c1",
                "sessionStartTimeMs": None,
                "transcriptionStartTimeMs": START_MS,
                "transcripts": [utterance()],
                "status": {"offsetMs": None, "status": "SESSION_ONGOING"},
            },
            [("u1", "customer", True, "thank you", "en-US", (START_MS + 1500) / 1000)],
        ),
        (  # no dialect, no alternatives: nothing to score, still one utterance to count
            {
                "conversationId": "c1",
                "sessionStartTimeMs": START_MS,
                "transcripts": [utterance(dialect=None, alternatives=None)],
            },
            [("u1", "customer", True, None, None, None)],
        ),
    ],
)
def test_transcript_bodies_read_the_same_with_nulls_or_without(body: dict[str, Any], expected: list[Any]) -> None:
    assert compact(body) != body
    for variant in (body, compact(body)):
        message = read_message(variant, "c1")
        assert message is not None and message.conversation_id == "c1"
        got = [(u.utterance_id, u.party, u.final, u.text, u.dialect, u.spoken_at) for u in message.utterances]
        assert got == expected


def test_subscription_listings_read_the_same_with_nulls_or_without() -> None:
    body = {
        "entities": [
            {"id": "t1", "state": "Permitted", "rejectionReason": None, "missingPermissions": None, "selfUri": None},
            {"id": "t2", "state": "Rejected", "rejectionReason": "Missing", "missingPermissions": ["a:b:c"]},
        ]
    }
    for variant in (body, compact(body)):
        results = proto.read_subscriptions(variant, ["t1", "t2"])
        assert [(r.permitted, r.missing_permissions) for r in results] == [(True, ()), (False, ("a:b:c",))]
    with pytest.raises(ValueError):
        proto.read_subscriptions({"entities": None}, ["t1"])  # no list: not a confirmation


def test_a_channel_without_expires_or_with_a_null_one_has_no_deadline() -> None:
    assert parse_expires(None) == 0.0
    session = NotificationsSession(queue_ids=["q1"], agent_ids=[])
    session.start()
    body = {"id": "streaming-1", "connectUri": "ws://127.0.0.1:1/x", "expires": None}
    for variant in (body, compact(body)):
        assert session.channel_created(0, variant, 100.0).expires == 0.0


def frame(topic: str, body: dict[str, Any]) -> str:
    return json.dumps({"topicName": topic, "eventBody": body, "metadata": {"CorrelationId": None}})


@pytest.mark.parametrize("drop_nulls", [False, True], ids=["nulls", "absent"])
def test_a_post_call_score_with_a_null_trend_is_a_score_without_a_trend(drop_nulls: bool) -> None:
    session = NotificationsSession(queue_ids=["q1"], agent_ids=[])
    session.start()
    shape = compact if drop_nulls else (lambda b: b)
    session.receive(frame(proto.queue_topic("q1"), shape(conversation())), 0, 0.0, 100.0)
    body = {"conversationId": "conv1", "sentimentOverallScore": -0.4, "sentimentTrendScore": None, "queueIds": None}
    received = session.receive(frame(proto.sentiment_topic("conv1"), shape(body)), 0, 1.0, 101.0)
    assert received.postcall == ("u1", "q1", "conv1", -0.4, None)
    missing = {"conversationId": "conv1", "sentimentOverallScore": None}
    assert (
        session.receive(frame(proto.sentiment_topic("conv1"), shape(missing)), 0, 2.0, 102.0).outcome
        == "missing_sentiment"
    )
