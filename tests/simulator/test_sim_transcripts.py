"""The simulator's live transcripts and post-call score: SDK-shaped bodies, batching, partials,
keepalives, both channels, scripted lines the analyzer (not the simulator) scores."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import httpx
import pytest
from genesys_cloud_simulator.scenarios import CallEvent, ScenarioEngine
from genesys_cloud_simulator.transcripts import (
    AGENT_LINES,
    CUSTOMER_LINES,
    FRENCH_LINES,
    SESSION_ENDED,
    SESSION_ONGOING,
    TranscriptBook,
    TranscriptSettings,
    customer_line,
)
from websockets.asyncio.client import connect

from genesys_sentiment_exporter.analysis import CannotScore, CannotScoreReason, build_analyzer
from tests.conftest import SimFactory
from tests.sdk_models import problems

TRANSCRIPT_MODEL = "TranscriptionTopicTranscriptionMessage"
SENTIMENT_MODEL = "V2StaSentimentOverallTopicOverallSentimentMessage"
T0 = 1_777_629_602.0


def transcripts(messages: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [body for topic, body in messages if topic.endswith(".transcription")]


def utterances(messages: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [u for body in transcripts(messages) for u in body.get("transcripts", [])]


def run_call(
    book: TranscriptBook,
    scores: list[float | None],
    *,
    queue: str = "q-billing",
    step: float = 3.0,
    tail: float = 120.0,
) -> list[tuple[float, tuple[str, dict[str, Any]]]]:
    """A call: connected at T0, one customer line per `step` seconds, ended, then time passes."""
    out: list[tuple[float, tuple[str, dict[str, Any]]]] = [(T0, m) for m in book.connected("c1", queue, T0)]
    now = T0
    for score in scores:
        for _ in range(round(step / 0.1)):
            now += 0.1
            out += [(now, m) for m in book.due(now)]
        out += [(now, m) for m in book.customer_said("c1", score, now)]
    for _ in range(round(step / 0.1)):
        now += 0.1
        out += [(now, m) for m in book.due(now)]
    book.call_ended("c1", now)
    end = now + tail
    while now < end:
        now += 0.1
        out += [(now, m) for m in book.due(now)]
    return out


def test_every_body_matches_the_sdk_models() -> None:
    book = TranscriptBook(TranscriptSettings(batch_seconds=2.0, keepalive_seconds=5.0, postcall_seconds=10.0))
    timed = run_call(book, [0.5, -0.8, None, -0.9, 0.2])
    book.connected("c2", "q-billing", T0)
    book.customer_said("c2", 0.3, T0, text=False)  # an utterance without alternatives
    timed += [(T0 + 10, m) for m in book.due(T0 + 10)]
    topics = {topic for _, (topic, _) in timed}
    assert topics == {
        "v2.conversations.c1.transcription",
        "v2.conversations.c2.transcription",
        "v2.speechandtextanalytics.conversation.c1.sentiment",
    }
    for _, (topic, body) in timed:
        model = TRANSCRIPT_MODEL if topic.endswith(".transcription") else SENTIMENT_MODEL
        assert problems(body, model) == [], body
    finals = [u for _, m in timed for u in utterances([m]) if u["isFinal"]]
    assert {u["channel"] for u in finals} == {"EXTERNAL", "INTERNAL"}
    assert any("alternatives" not in u for _, m in timed for u in utterances([m]))


def test_keepalives_start_every_period_and_the_session_ends() -> None:
    book = TranscriptBook(TranscriptSettings(batch_seconds=2.0, keepalive_seconds=5.0))
    timed = run_call(book, [0.3] * 4, tail=20.0)
    bodies = [(at, body) for at, (topic, body) in timed if topic.endswith(".transcription")]
    keepalives = [
        at for at, body in bodies if "transcripts" not in body and body["status"]["status"] == SESSION_ONGOING
    ]
    assert keepalives[0] == T0  # at the start of the session
    gaps = [b - a for a, b in itertools.pairwise(keepalives)]
    assert len(gaps) >= 2 and all(4.95 <= gap <= 5.15 for gap in gaps), gaps  # 0.1 s ticks
    ended = [at for at, body in bodies if body["status"]["status"] == SESSION_ENDED]
    assert len(ended) == 1 and ended[0] == bodies[-1][0]
    assert all(u["isFinal"] for at, b in bodies if at >= ended[0] for u in b.get("transcripts", []))


def test_partials_precede_their_final_with_the_same_utterance_id() -> None:
    book = TranscriptBook(TranscriptSettings(batch_seconds=2.0))
    seen: dict[str, list[bool]] = {}
    for _, message in run_call(book, [-0.8, 0.6]):
        for u in utterances([message]):
            seen.setdefault(u["utteranceId"], []).append(u["isFinal"])
    assert len(seen) == 4  # two customer lines, two agent replies
    assert all(flags == [False, True] for flags in seen.values())
    off = TranscriptBook(TranscriptSettings(partials=False))
    assert all(u["isFinal"] for _, m in run_call(off, [-0.8, 0.6]) for u in utterances([m]))


def test_offsets_are_when_the_words_were_spoken_and_batches_burst() -> None:
    """At 35 s batching, the lines of half a minute arrive in one message with their own offsets."""
    book = TranscriptBook(TranscriptSettings(batch_seconds=35.0, partials=False))
    timed = run_call(book, [-0.9] * 10)
    batches = [(at, body) for at, (t, body) in timed if t.endswith(".transcription") and body.get("transcripts")]
    first_at, first = batches[0]
    assert first_at == pytest.approx(T0 + 35.0, abs=0.2)
    assert len(first["transcripts"]) >= 10  # five customer lines and their replies, at once
    customer = [u for u in first["transcripts"] if u["channel"] == "EXTERNAL"]
    spoken = [first["sessionStartTimeMs"] / 1000 + u["alternatives"][0]["offsetMs"] / 1000 for u in customer]
    assert spoken[0] == pytest.approx(T0 + 3.0, abs=0.01)  # spoken 32 s before it arrived
    assert spoken == sorted(spoken) and spoken[-1] < first_at
    low = TranscriptBook(TranscriptSettings(batch_seconds=2.0, partials=False))
    for at, (_topic, body) in run_call(low, [-0.9] * 10):
        for u in body.get("transcripts", []):
            end = body["sessionStartTimeMs"] + u["alternatives"][0]["offsetMs"] + u["alternatives"][0]["durationMs"]
            assert at - end / 1000 <= 2.0 + 0.15  # low latency: within one batch of the end of speech


def test_post_call_score_arrives_after_the_call_not_during_it() -> None:
    book = TranscriptBook(TranscriptSettings(postcall_seconds=60.0))
    timed = run_call(book, [0.4, 0.2, -0.6, -0.8], tail=90.0)
    sentiment = [(at, body) for at, (topic, body) in timed if topic.endswith(".sentiment")]
    assert len(sentiment) == 1
    at, body = sentiment[0]
    assert at == pytest.approx(T0 + 15.0 + 60.0, abs=0.15)  # ended at T0 + 15
    assert body["sentimentOverallScore"] == pytest.approx(-0.2)
    assert body["sentimentTrendScore"] == pytest.approx(-1.0)  # mean(-0.6, -0.8) - mean(0.4, 0.2), clamped


def test_a_late_line_after_the_session_ended_is_a_straggler_spoken_before_the_end() -> None:
    book = TranscriptBook(TranscriptSettings(batch_seconds=1.0))
    book.connected("c1", "q-support", T0)
    book.call_ended("c1", T0 + 30)
    book.due(T0 + 31)
    ((_topic, body),) = book.customer_said("c1", -0.9, T0 + 33)
    assert body["status"]["status"] == SESSION_ENDED and body["transcripts"][0]["isFinal"]
    offset = body["transcripts"][0]["alternatives"][0]["offsetMs"] / 1000
    assert offset < 30.0
    assert problems(body, TRANSCRIPT_MODEL) == []


def test_untranscribed_queue_has_no_session() -> None:
    book = TranscriptBook()
    assert book.connected("c1", "q-legacy", T0) == []
    assert book.customer_said("c1", 0.2, T0 + 1) == []


@pytest.fixture(scope="module")
def vader():  # type: ignore[no-untyped-def]
    return build_analyzer("vader")


def test_intended_polarities_agree_with_the_default_analyzer(vader: Any) -> None:
    for polarity, line in CUSTOMER_LINES:
        assert vader.analyze(line, "en-US") == pytest.approx(polarity, abs=0.05), line
    for line in AGENT_LINES:
        score = vader.analyze(line, "en-US")
        assert isinstance(score, float) and 0.0 <= score <= 0.7, line
    for line in FRENCH_LINES:
        refused = vader.analyze(line, "fr-FR")
        assert isinstance(refused, CannotScore) and refused.reason is CannotScoreReason.UNSUPPORTED_LANGUAGE


def test_sour_customer_is_hostile_and_steady_is_not(vader: Any) -> None:
    engine = ScenarioEngine(["sour", "steady"], seed=3, agents=4)
    scores: dict[str, list[float]] = {}
    for event in engine.due(300.0):
        if event.score is not None:
            line = customer_line(event.score, event.conversation_id, str(event.at))
            scores.setdefault(event.agent_id, []).append(vader.analyze(line, "en-US"))
    sour = scores["agent-sour"]
    assert sum(s < -0.5 for s in sour) > len(sour) / 2
    for agent, values in scores.items():
        if agent != "agent-sour":
            windows = [sum(values[i : i + 5]) / 5 for i in range(len(values) - 4)]
            assert min(windows) > -0.5, agent


def test_zero_scenario_calls_are_in_french() -> None:
    book = TranscriptBook(TranscriptSettings(partials=False))
    engine = ScenarioEngine(["zero"], seed=1)
    said: list[dict[str, Any]] = []
    for event in engine.due(60.0):
        if event.transition and event.state == "connected":
            book.connected(event.conversation_id, event.queue_id, T0 + event.at)
        elif not event.transition:
            book.customer_said(event.conversation_id, event.score, T0 + event.at)
        said += utterances(book.due(T0 + event.at))
    assert said and {u["dialect"] for u in said} == {"fr-FR"}


CHANNELS = "/api/v2/notifications/channels"


async def test_the_endpoint_delivers_a_live_call_transcript(start_sim: SimFactory) -> None:
    sim = await start_sim(transcript_batch_seconds=0.3, live_sentiment_topic=False, postcall_sentiment_seconds=0.5)
    token = sim.issue_token()
    async with httpx.AsyncClient(
        base_url=sim.base_url, trust_env=False, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        channel = (await http.post(CHANNELS)).json()
        topics = ["v2.conversations.c1.transcription", "v2.speechandtextanalytics.conversation.c1.sentiment"]
        answer = await http.put(f"{CHANNELS}/{channel['id']}/subscriptions", json=[{"id": t} for t in topics])
        assert [e["state"] for e in answer.json()["entities"]] == ["Permitted", "Permitted"]
        async with connect(channel["connectUri"], proxy=None) as ws:
            notes = sim.notifications
            notes.publish_call(CallEvent(0.0, "c1", "a1", "q-billing", "connected", None, False, None, True))
            notes.publish_call(CallEvent(0.0, "c1", "a1", "q-billing", "connected", -0.9, True, "negative"))
            assert notes.say("c1", "agent", "I can certainly help you with that.") == 1
            notes.publish_call(CallEvent(0.0, "c1", "a1", "q-billing", "ended", None, False, None, True))
            received: list[dict[str, Any]] = []
            while not any(m["topicName"].endswith(".sentiment") for m in received):
                received.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
    bodies = [m["eventBody"] for m in received if m["topicName"].endswith(".transcription")]
    assert all(problems(b, TRANSCRIPT_MODEL) == [] for b in bodies)
    said = [u for b in bodies for u in b.get("transcripts", []) if u["isFinal"]]
    assert said[0]["channel"] == "INTERNAL"  # the unbatched line came first
    assert {u["channel"] for u in said} == {"EXTERNAL", "INTERNAL"}
    assert bodies[-1]["status"]["status"] == SESSION_ENDED
    # the sentiment topic spoke once, after the call
    assert [m["topicName"] for m in received].count("v2.speechandtextanalytics.conversation.c1.sentiment") == 1
