"""Notifications source, pure parts: parsing, attribution, scale, topic plan, subscription answers, budget."""

from __future__ import annotations

import json
from typing import Any

import pytest
from genesys_cloud_simulator.notifications_conversations import ConversationBook
from genesys_cloud_simulator.scenarios import CallEvent

from genesys_sentiment_exporter.sources import notifications_protocol as proto
from genesys_sentiment_exporter.sources.notifications_rest import TokenBucket


def frame(topic: str, body: dict[str, Any]) -> str:
    return json.dumps({"topicName": topic, "eventBody": body, "metadata": {"CorrelationId": "x"}})


def move(conv: str, agent: str, state: str, queue: str = "q1") -> CallEvent:
    return CallEvent(0.0, conv, agent, queue, state, None, False, None, True)


def test_parse_kinds() -> None:
    assert proto.parse(frame("channel.metadata", {"message": "WebSocket Heartbeat"})).kind == proto.Kind.HEARTBEAT
    assert proto.parse(frame("channel.metadata", {"message": "pong"})).kind == proto.Kind.PONG
    assert proto.parse('{"topicName": "v2.system.socket_closing"}').kind == proto.Kind.SOCKET_CLOSING
    users = proto.parse(frame("v2.users.u1.conversations", {"id": "c1"}))
    assert (users.kind, users.topic_id) == (proto.Kind.CONVERSATION, "u1")
    sentiment = proto.parse(frame(proto.sentiment_topic("c9"), {}))
    assert (sentiment.kind, sentiment.topic_id) == (proto.Kind.SENTIMENT, "c9")
    assert proto.parse("not json").kind == proto.Kind.MALFORMED
    assert proto.parse("[1]").kind == proto.Kind.MALFORMED
    assert proto.parse(frame("v2.something.else", {})).kind == proto.Kind.UNKNOWN


def test_notes_example_body_attributes_to_the_connected_agent() -> None:
    body = {
        "id": "conv1",
        "participants": [
            {"id": "p-cust", "purpose": "customer", "calls": [{"id": "s1", "state": "connected"}]},
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
                "queueId": "q1",
                "wrapupRequired": True,
                "calls": [{"id": "s3", "state": "connected", "afterCallWork": {"state": "pending"}}],
            },
        ],
    }
    attribution = proto.Attribution(grace_seconds=5)
    update = attribution.on_conversation(body, None, now=0, wall=100)
    assert [(c.agent_id, c.queue_id, c.state) for c in update.changes] == [("u1", "q1", "connected")]
    assert update.subscribe == (proto.transcription_topic("conv1"), proto.sentiment_topic("conv1"))
    assert attribution.attribute("conv1", []) == ("u1", "q1")
    assert attribution.on_conversation(body, "q1", now=1, wall=101).outcome == "duplicate"


def test_a_second_copy_is_told_a_duplicate_by_its_digest_before_its_participants_are_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The queue topic's copy of an update comes right after the user topic's: half the conversation events."""
    body = {
        "id": "c1",
        "participants": [
            {"purpose": "customer", "calls": [{"state": "connected"}]},
            {"purpose": "agent", "userId": "a1", "queueId": "q1", "calls": [{"state": "connected"}]},
        ],
    }
    attribution = proto.Attribution(grace_seconds=5, idle_seconds=10)
    assert attribution.on_conversation(body, None, now=0, wall=100).changes
    reads: list[object] = []
    real = proto.read_conversation
    monkeypatch.setattr(proto, "read_conversation", lambda *a: reads.append(a) or real(*a))
    copy = json.loads(json.dumps(body, sort_keys=True))  # the same value, keys in another order
    assert attribution.on_conversation(copy, "q1", now=8, wall=108).outcome == "duplicate"
    assert reads == []  # told by the digest alone
    assert attribution.due(15) == []  # the copy counts as the call being seen: not idle at 8 + 7
    assert attribution.attribute("c1", None) == ("a1", "q1")
    changed = {**body, "participants": [*body["participants"], {"purpose": "acd", "queueId": "q1", "calls": []}]}
    assert attribution.on_conversation(changed, "q1", now=9, wall=109).outcome == "state_change"
    assert len(reads) == 1  # a changed body is read
    assert attribution.on_conversation({**changed, "participants": "x"}, "q1", now=9, wall=109).outcome == "malformed"
    assert attribution.on_conversation(changed, None, now=9, wall=109).outcome == "duplicate"


def test_transfer_moves_the_conversation_and_grace_drops_the_topic() -> None:
    book = ConversationBook()
    attribution = proto.Attribution(grace_seconds=5)
    changes = []
    for event in (move("c1", "a1", "alerting"), move("c1", "a1", "connected")):
        for topic, body in book.apply(event):
            if topic.startswith("v2.users."):
                changes += attribution.on_conversation(body, None, 0, 0).changes
    assert [c.state for c in changes] == ["alerting", "connected"]
    assert attribution.attribute("c1", None) == ("a1", "q1")
    transfer = [b for t, b in book.transfer("c1", "a2", "q2") if t.startswith("v2.routing.queues.q2")]
    moved = [c for body in transfer for c in attribution.on_conversation(body, "q2", 1, 1).changes]
    assert [(c.agent_id, c.state) for c in moved] == [("a1", "disconnected"), ("a2", "alerting"), ("a2", "connected")]
    assert attribution.attribute("c1", None) == ("a2", "q2")
    ends = [b for t, b in book.apply(move("c1", "a1", "wrapup")) if t == "v2.users.a2.conversations"]
    assert [c.state for c in attribution.on_conversation(ends[0], None, 2, 2).changes] == ["wrapup"]
    assert attribution.attribute("c1", None) == ("a2", "q2")  # late readings still go to a2
    assert attribution.due(6.9) == []
    assert attribution.due(7.0) == [proto.transcription_topic("c1")]
    assert attribution.attribute("c1", None) == "stale"
    assert attribution.owner("c1") == ("a2", "q2")  # whose post-call score it will be
    assert attribution.due(7.0 + 599.9) == []
    assert attribution.due(7.0 + 600.0) == [proto.sentiment_topic("c1")]  # the post-call hold is over
    assert attribution.attribute("c-unknown", None) == proto.UNATTRIBUTED


def test_non_voice_and_agentless_conversations() -> None:
    attribution = proto.Attribution(5)
    chat = {"id": "c2", "participants": [{"purpose": "agent", "userId": "u1", "chats": [{"state": "connected"}]}]}
    assert attribution.on_conversation(chat, None, 0, 0).outcome == proto.NOT_VOICE
    queued = {
        "id": "c3",
        "participants": [
            {"purpose": "customer", "calls": [{"state": "connected"}]},
            {"purpose": "acd", "queueId": "q1", "calls": [{"state": "connected"}]},
        ],
    }
    assert attribution.on_conversation(queued, "q1", 0, 0).outcome == "missing_agent"
    assert attribution.on_conversation({"participants": []}, None, 0, 0).outcome == "malformed"


@pytest.mark.parametrize(
    ("setting", "values", "expected", "in_use"),
    [
        ("unit", [0.5, -1.0], [0.5, -1.0], "unit"),
        ("unit", [50], [None], "unit"),
        ("percent", [50, -100, 0.5], [0.5, -1.0, 0.005], "percent"),
        ("percent", [100.5, 1e308, -1e308], [None, None, None], "percent"),
        # One value outside [-1, 1] is refused, not a reason to rescale everything after it.
        ("auto", [0.5, -62, 0.5], [0.5, None, 0.5], "unit"),
        ("auto", [1e308, -0.8, -0.8], [None, -0.8, -0.8], "unit"),
        ("auto", ["0.5", True, float("nan"), float("inf"), 250], [None, None, None, None, None], "unit"),
    ],
)
def test_scale(setting: proto.ScaleSetting, values: list[object], expected: list[float | None], in_use: str) -> None:
    scale = proto.Scale(setting)
    assert [scale.normalise(v) for v in values] == expected
    assert scale.in_use == in_use


def test_the_1001st_topic_opens_a_second_channel_and_the_plan_refuses_when_full() -> None:
    plan = proto.TopicPlan(per_channel=1000, max_channels=2)
    assert {plan.add(f"t{i}") for i in range(1000)} == {0}
    assert plan.add("t1000") == 1
    assert plan.add("t0") == 0  # already placed
    for i in range(1001, 2000):
        assert plan.add(f"t{i}") == 1
    assert plan.add("one-too-many") is None
    assert plan.refused == 1
    assert plan.remove("t5") == 0
    assert plan.add("fits-again") == 0


def test_subscription_answers() -> None:
    body = {
        "entities": [
            {"id": "v2.users.u1.conversations", "state": "Permitted"},
            {"id": "t2", "state": "Rejected", "rejectionReason": "Missing perms", "missingPermissions": ["a:b:c"]},
            {"id": "t3", "state": "Rejected", "rejectionReason": "Topic not found!"},
        ]
    }
    results = proto.read_subscriptions(body, ["v2.users.u1.conversations", "t2", "t3", "t4"])
    assert [(r.permitted, r.reason) for r in results] == [
        (True, ""),
        (False, "missing_permissions"),
        (False, "topic_not_found"),
        (False, "unconfirmed"),  # not listed: not confirmed (issue 10 item 8), asked again
    ]
    assert results[1].missing_permissions == ("a:b:c",)


def test_token_bucket_keeps_the_budget() -> None:
    bucket = TokenBucket(per_minute=60, burst=2)
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == pytest.approx(1.0)
    assert bucket.take(1.0) == 0.0
    bucket.block(1.0, 5.0)
    assert bucket.take(2.0) == pytest.approx(4.0)
    granted = sum(1 for t in range(600) if bucket.take(10.0 + t / 10) == 0.0)  # 60 s of asking 10/s
    assert granted <= 62
