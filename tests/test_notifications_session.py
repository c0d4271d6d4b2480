"""The Notifications session core, replayed: frames, REST answers and `now` in; actions and events out.

No sockets and no sleeps: time is whatever number the test hands in.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest
from genesys_cloud_simulator.notifications_conversations import ConversationBook
from genesys_cloud_simulator.scenarios import CallEvent
from genesys_cloud_simulator.transcripts import TranscriptBook

from genesys_sentiment_exporter.backoff import delays
from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.sources import notifications_protocol as proto
from genesys_sentiment_exporter.sources.dedup import Deduplicator
from genesys_sentiment_exporter.sources.notifications_session import (
    REJECT_REASONS_LIMIT,
    NotificationsSession,
    Received,
    Rollover,
    SessionError,
    SyncTopics,
    apply,
    refused_permissions,
)
from genesys_sentiment_exporter.sources.supervisor import Watchdog, WatchdogPolicy, classify_close
from genesys_sentiment_exporter.tracker import AgentTracker, TrackerLimits


def frame(topic: str, body: dict[str, Any]) -> str:
    return json.dumps({"topicName": topic, "eventBody": body, "metadata": {"CorrelationId": "x"}})


def move(conv: str, agent: str, state: str, queue: str = "q1") -> CallEvent:
    return CallEvent(0.0, conv, agent, queue, state, None, False, None, True)


def score(conv: str, agent: str, value: float, queue: str = "q1") -> CallEvent:
    return CallEvent(0.0, conv, agent, queue, "connected", value, True, None)


HEARTBEAT = frame("channel.metadata", {"message": "WebSocket Heartbeat"})
PONG = frame("channel.metadata", {"message": "pong"})
CLOSING = json.dumps({"topicName": "v2.system.socket_closing"})


def opened(session: NotificationsSession, slot: int = 0, expires: str = "") -> int:
    """Create, subscribe and adopt a channel for `slot` as the shell does; its number."""
    body = {"id": f"ch{slot}", "connectUri": "wss://streaming.example/channels/x"}
    if expires:
        body["expires"] = expires
    info = session.channel_created(slot, body, wall=1000.0)
    topics = session.planned(slot)
    session.subscriptions_answered(slot, "PUT", {"entities": [{"id": t} for t in topics]}, topics)
    session.channel_ready(info)
    return info.number


def new_ingest() -> Ingest:
    return Ingest(AgentTracker(TrackerLimits(window_size=10, grace_seconds=5, idle_seconds=900)), clock=lambda: 0.0)


def test_start_plans_base_topics_and_refuses_no_filter() -> None:
    with pytest.raises(ValueError, match="at least one"):
        NotificationsSession(queue_ids=[], agent_ids=[])
    session = NotificationsSession(queue_ids=["q1"], agent_ids=["a1", "a2"], topics_per_channel=2)
    assert session.start() == [0, 1]
    assert session.planned(0) == ["v2.users.a1.conversations", "v2.users.a2.conversations"]
    assert session.sync_request(1) == ("POST", ["v2.routing.queues.q1.conversations"])


def test_replayed_call_subscribes_reads_and_drops_after_grace() -> None:
    session = NotificationsSession(queue_ids=["q1"], agent_ids=[], grace_seconds=5)
    session.start()
    number = opened(session)
    ingest = new_ingest()
    book = ConversationBook()
    outcomes: list[str] = []
    actions: list[object] = []
    now = 10.0
    transcripts = TranscriptBook()
    for event in (move("c1", "a1", "alerting"), move("c1", "a1", "connected")):
        for topic, body in book.apply(event):
            got = session.receive(frame(topic, body), number, now, wall=2000.0)
            actions += got.actions
            outcomes.append(apply(ingest, got))
    (keepalive,) = transcripts.connected("c1", "q1", 1999.0)
    said = transcripts.say("c1", "EXTERNAL", "This is absolutely ridiculous, I am furious!", 2000.5)
    assert said is not None
    for topic, body in (keepalive, said):
        outcomes.append(apply(ingest, session.receive(frame(topic, body), number, now, wall=2001.0)))
    # each conversation update comes through the user and the queue topic: the second is a duplicate
    assert outcomes == ["state_change", "duplicate", "state_change", "duplicate", "transcript_keepalive", "reading"]
    assert actions == [SyncTopics(0)]
    both = sorted([proto.transcription_topic("c1"), proto.sentiment_topic("c1")])
    assert session.sync_request(0) == ("POST", both)
    session.subscriptions_answered(0, "POST", [{"id": t, "state": "Permitted"} for t in both], both)
    assert session.sync_request(0) is None
    agent = ingest.tracker.agents["a1"]
    assert len(agent.scores) == 1 and agent.scores[0] < -0.5  # VADER, the default analyzer, scored it
    assert agent.last_timestamp == pytest.approx(2000.5)  # when it was said, not when it arrived
    assert ingest.utterances == {("customer", "reading"): 1}
    for topic, body in book.apply(move("c1", "a1", "wrapup")):
        apply(ingest, session.receive(frame(topic, body), number, now + 1, wall=2001.0))
    assert session.sweep(now + 5.9) == []
    assert session.sweep(now + 6.0) == [SyncTopics(0)]
    # the transcription goes with the grace; the post-call topic waits for Genesys' score
    assert session.sync_request(0) == ("PUT", ["v2.routing.queues.q1.conversations", proto.sentiment_topic("c1")])


def test_heartbeat_is_traffic_and_the_pong_to_our_ping_is_not() -> None:
    session = NotificationsSession(queue_ids=["q1"], agent_ids=[])
    session.start()
    assert session.receive(HEARTBEAT, 1, 0, 0) == Received("heartbeat")
    assert session.receive(PONG, 1, 0, 0) == Received("control", traffic=False)
    assert session.receive("{nope", 1, 0, 0).outcome == "malformed"
    assert session.receive(frame("v2.other", {}), 1, 0, 0).outcome == "unknown_type"
    policy = WatchdogPolicy(silence=75.0, ping_after=36.0)
    dog = Watchdog(policy, now=0.0)
    assert dog.check(30.0) == "wait"
    assert dog.check(37.0) == "ping"
    assert dog.check(38.0) == "wait"  # one ping per silent stretch
    # the pong arrives: the shell does not call traffic() for it, so the silence still counts
    assert dog.check(75.5) == "expired"
    dog.traffic(75.6)
    assert dog.check(76.0) == "wait"
    assert dog.check(112.0) == "ping"


def test_socket_closing_rolls_over_once_and_only_for_the_current_channel() -> None:
    session = NotificationsSession(queue_ids=["q1"], agent_ids=[])
    session.start()
    first = opened(session)
    assert session.receive(CLOSING, 99, 0, 0).actions == []
    assert session.receive(CLOSING, first, 0, 0).actions == [Rollover(0, "socket_closing")]
    assert session.receive(CLOSING, first, 0, 0).actions == []  # announced twice: one rollover
    second = opened(session)
    assert second == first + 1
    assert session.receive(CLOSING, first, 0, 0).actions == []  # the retiring channel no longer counts
    assert session.channel_gone(0, first) == []
    assert session.channel_gone(0, second) == [Rollover(0, "channel_gone")]


def test_overlap_counts_a_frame_from_both_channels_once() -> None:
    session = NotificationsSession(queue_ids=["q1"], agent_ids=[])
    session.start()
    old, new = opened(session), opened(session)
    book = ConversationBook()
    ingest = new_ingest()
    (topic, body), *_ = book.apply(move("c1", "a1", "connected"))
    session.dedup.start()
    assert apply(ingest, session.receive(frame(topic, body), old, 0, 0)) == "state_change"
    assert apply(ingest, session.receive(frame(topic, body), new, 0, 0)) == "duplicate"
    session.dedup.stop()
    assert not session.dedup.active


def test_channel_answer_and_expiry_rollover_time() -> None:
    session = NotificationsSession(queue_ids=["q1"], agent_ids=[])
    session.start()
    with pytest.raises(SessionError):
        session.channel_created(0, {"id": "x"}, wall=0)
    assert session.rollover_at(0) is None
    opened(session, expires="1970-01-01T01:00:00Z")  # opened at 1000 s, expires at 3600 s
    assert session.rollover_at(0) == pytest.approx(3600 - 260)  # a tenth of its life early
    metrics = {m.name: m for m in session.metrics(1, session.rejected)}
    assert metrics["genesys_notifications_channel_expiry_timestamp_seconds"].samples[0].value == 3600


def test_rejected_subscription_leaves_the_plan_and_reports_the_permission() -> None:
    session = NotificationsSession(queue_ids=["q1"], agent_ids=[])
    session.start()
    topic = proto.sentiment_topic("c1")
    session.plan.add(topic)
    answer = [{"id": topic, "state": "Rejected", "missingPermissions": ["speechAndTextAnalytics:data:view"]}]
    session.subscriptions_answered(0, "POST", answer, [topic])
    assert session.rejected == {"missing_permissions": 1}
    assert len(session.plan) == 1
    assert (False, "permissions", "grant the OAuth client's role: speechAndTextAnalytics:data:view") in (
        session.subscription_report()
    )


def test_rejection_reasons_from_the_wire_are_a_bounded_label() -> None:
    session = NotificationsSession(queue_ids=["q1"], agent_ids=[])
    session.start()
    topics = [proto.sentiment_topic(f"c{i}") for i in range(60)]
    for i, topic in enumerate(topics):
        session.plan.add(topic)
        answer = [{"id": topic, "state": "Rejected", "rejectionReason": f"reason number {i}"}]
        session.subscriptions_answered(0, "POST", answer, [topic])
    assert sum(session.rejected.values()) == 60, "every rejection still counted"
    assert len(session.rejected) == REJECT_REASONS_LIMIT + 1
    assert session.rejected["other"] == 60 - REJECT_REASONS_LIMIT


def test_retry_delays_grow_with_jitter_and_stay_capped() -> None:
    first = delays(0.5, 30.0, random.Random(1))
    second = delays(0.5, 30.0, random.Random(2))
    a = [next(first) for _ in range(12)]
    b = [next(second) for _ in range(12)]
    assert 0.25 <= a[0] <= 0.5
    assert all(15.0 <= d <= 30.0 for d in a[7:])
    assert a != b  # jitter: two exporters do not retry in lockstep


def test_deduplicator_nests_overlaps_and_close_codes_classify() -> None:
    dedup = Deduplicator()
    dedup.start()
    dedup.start()
    assert not dedup.duplicate("f", 1)
    dedup.stop()
    assert dedup.active and dedup.duplicate("f", 2)
    dedup.stop()
    assert not dedup.active and dedup.seen == {}
    assert classify_close(None) == ("1006", "reconnect")
    assert classify_close(1001) == ("1001", "reconnect")
    assert classify_close(1008) == ("1008", "renew_token")


def test_a_refused_base_topic_request_stays_planned_on_its_slot_and_names_the_permissions() -> None:
    """Issue 9 item 5: a 4xx to the base topics is a rejection, not a retry storm; they stay planned (the
    shell asks again on the same channel) while a refused per-call topic leaves the plan."""
    session = NotificationsSession(queue_ids=["q1"], agent_ids=[])
    assert session.start() == [0]
    queue = proto.queue_topic("q1")
    answer = {"messageParams": {"missingPermissions": "routing:queue:view, analytics:queueObservation:view"}}
    assert session.subscriptions_refused(0, "PUT", [queue], 403, "denied", answer) == [queue]
    assert session.planned(0) == [queue] and session.sync_request(0) == ("POST", [queue])
    assert session.rejected["http_403"] == 1
    assert session.missing_permissions == {"routing:queue:view", "analytics:queueObservation:view"}
    report = session.subscription_report()
    assert any(not ok and f"{queue}: rejected (denied); missing permissions: analytics" in t for ok, _w, t in report)
    per_call = proto.sentiment_topic("c1")
    session.plan.add(per_call)
    assert session.subscriptions_refused(0, "POST", [per_call], 400, "bad") == []
    assert session.planned(0) == [queue]


def test_refused_permissions_reads_only_what_the_answer_names() -> None:
    assert refused_permissions({"messageParams": {"missingPermissions": ["b", " a ", 3]}}) == ("a", "b")
    assert refused_permissions({"messageParams": "x"}) == ()
    assert refused_permissions(None) == ()


@pytest.mark.parametrize("decoder", [proto.parse, proto.parse_fast], ids=["json", "msgspec"])
def test_a_transcript_takes_the_live_calls_connect_stamp_and_end_from_its_one_lookup(decoder: Any) -> None:
    """The transcription path looks the live call up once (bench/README.md, third round) for its agent, its
    connect stamp (INTERNAL speech from before it is a prompt, not the agent) and `check`'s cadence (None
    while the call is live, seconds since its end after), whichever decoder read the frame."""
    session = NotificationsSession(
        queue_ids=["q1"], agent_ids=[], grace_seconds=5, score_parties=frozenset({"customer", "agent"}), parse=decoder
    )
    session.start()
    number = opened(session)
    ingest = new_ingest()
    book, transcripts = ConversationBook(), TranscriptBook()
    for event in (move("c1", "a1", "alerting"), move("c1", "a1", "connected")):
        for topic, body in book.apply(event):
            apply(ingest, session.receive(frame(topic, body), number, 10.0, wall=2000.0))
    (keepalive,) = transcripts.connected("c1", "q1", 1990.0)
    assert apply(ingest, session.receive(frame(*keepalive), number, 10.0, wall=2000.0)) == "transcript_keepalive"
    prompt = transcripts.say("c1", "INTERNAL", "Thank you for calling, please hold.", 1991.0)
    assert prompt is not None
    got = session.receive(frame(*prompt), number, 11.0, wall=2001.0)
    assert got.utterances == [("agent", "before_agent")] and got.readings == []
    assert session.cadence["transcription"] == [None]
    for topic, body in book.apply(move("c1", "a1", "wrapup")):
        apply(ingest, session.receive(frame(topic, body), number, 12.0, wall=2002.0))
    late = transcripts.say("c1", "EXTERNAL", "Thanks, that solved it.", 2002.5)
    assert late is not None
    assert apply(ingest, session.receive(frame(*late), number, 14.5, wall=2003.0)) == "reading"
    assert session.cadence["transcription"] == [None, 2.5]  # 2.5 s after the call ended at 12.0


def test_a_held_channel_gets_the_calls_planned_meanwhile_within_its_topic_limit_and_keeps_them_planned() -> None:
    """A rollover's replacement refused: the old channel is held; the topics the refused PUT named stay
    planned (the replacement asks for all of them again), new calls' topics go on the held channel by POST
    as far as its topic limit allows, and the hold ends with the channel's number."""
    session = NotificationsSession(queue_ids=["q1"], agent_ids=[], topics_per_channel=4)
    session.start()
    old = opened(session)
    queue, c1, c2, c3 = (proto.queue_topic("q1"), *(proto.transcription_topic(c) for c in ("c1", "c2", "c3")))
    session.plan.add(c1)
    session.subscriptions_answered(0, "POST", {"entities": [{"id": c1}]}, [c1])
    info = session.slots[0].channel
    assert info is not None and info.number == old
    assert session.held_request(0) == []  # nothing held: nothing to add
    session.hold(0, info)  # before the refusal of the replacement's PUT is recorded, as the shell does
    replacement = session.channel_created(0, {"id": "ch-new", "connectUri": "wss://streaming.example/x"}, 1001.0)
    assert session.subscriptions_refused(0, "PUT", [c1, queue], 403, "denied") == [queue]
    session.channel_ready(replacement)
    assert session.planned(0) == sorted([c1, queue])  # c1 stays: the held channel carries it
    assert session.slots[0].subscribed == set() and session.slots[0].held_topics == {c1, queue}
    assert session.rejected["http_403"] == 2
    metrics = {m.name: m.samples[0].value for m in session.metrics(1, Counter()) if m.samples}
    assert metrics["genesys_notifications_channels_held"] == 1
    assert metrics["genesys_notifications_topics_subscribed"] == 2  # the held channel's
    session.plan.add(c2)
    session.plan.add(c3)
    assert session.held_request(0) == [c2, c3]
    session.held_answered(0, old, {"entities": [{"id": c2}, {"id": c3}]}, [c2, c3])
    assert session.slots[0].held_topics == {c1, c2, c3, queue}
    session.plan.remove(c1)  # c1's call ended; the held channel keeps it (never a PUT) and is full
    c4 = proto.transcription_topic("c4")
    session.plan.add(c4)
    assert session.held_request(0) == []  # 4 topics, the limit: c4 waits for the replacement
    session.held_answered(0, replacement.number, {"entities": [{"id": c4}]}, [c4])  # not the held one: ignored
    assert c4 not in session.slots[0].held_topics
    # the same PUT, asked again on the replacement, is answered: everything planned, c4 included
    assert session.planned(0) == sorted([c2, c3, c4, queue])
    assert session.release(0, replacement.number) is False and session.release(0, old) is True
    assert session.held_request(0) == [] and session.slots[0].held is None
    planned = session.planned(0)
    session.subscriptions_answered(0, "PUT", {"entities": [{"id": t} for t in planned]}, planned)
    assert session.slots[0].subscribed == {c2, c3, c4, queue}


def test_without_a_held_channel_a_refused_request_drops_its_per_call_topics() -> None:
    session = NotificationsSession(queue_ids=["q1"], agent_ids=[])
    session.start()
    opened(session)
    queue, c1 = proto.queue_topic("q1"), proto.transcription_topic("c1")
    session.plan.add(c1)
    assert session.subscriptions_refused(0, "PUT", [c1, queue], 403, "denied") == [queue]
    assert session.planned(0) == [queue]  # no channel held: c1 leaves the plan, as before
    assert session.held_request(0) == []


def test_what_the_held_channel_refuses_waits_for_the_replacement_and_what_it_rejects_leaves_the_plan() -> None:
    session = NotificationsSession(queue_ids=["q1"], agent_ids=[])
    session.start()
    old = opened(session)
    info = session.slots[0].channel
    assert info is not None
    session.hold(0, info)
    queue, c1, c2 = proto.queue_topic("q1"), proto.transcription_topic("c1"), proto.transcription_topic("c2")
    session.plan.add(c1)
    session.plan.add(c2)
    session.held_refused(0, old, [c1])  # a 4xx to the whole POST: not asked of the held channel again
    assert session.held_request(0) == [c2]
    session.held_answered(0, old, {"entities": [{"id": c2, "state": "Rejected", "rejectionReason": "x"}]}, [c2])
    assert session.planned(0) == sorted([c1, queue])  # c1 waits for the replacement; c2 was rejected
    assert session.rejected["x"] == 1 and session.held_request(0) == []
