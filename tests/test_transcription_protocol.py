"""Transcripts into readings, pure: every utterance and every message ends in one counted outcome."""

from __future__ import annotations

from typing import Any

import pytest

from genesys_sentiment_exporter.analysis import UtteranceAnalyzer, build_analyzer
from genesys_sentiment_exporter.postcall import PostCallBook
from genesys_sentiment_exporter.sources.transcription_protocol import (
    MessageOutcome,
    Transcripts,
    read_message,
)
from tests.live_helpers import NumberScorer

START_MS = 1_777_629_602_000
WHO = ("a1", "q1")


def body(*transcripts: dict[str, Any], status: str = "SESSION_ONGOING") -> dict[str, Any]:
    out: dict[str, Any] = {
        "conversationId": "c1",
        "sessionStartTimeMs": START_MS,
        "transcriptionStartTimeMs": START_MS - 47,
        "status": {"offsetMs": 1000, "status": status},
    }
    if transcripts:
        out["transcripts"] = list(transcripts)
    return out


def utterance(
    uid: str,
    text: str,
    channel: str = "EXTERNAL",
    final: bool = True,
    offset: int = 112_300,
    dialect: str | None = "en-US",
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "utteranceId": uid,
        "isFinal": final,
        "channel": channel,
        "alternatives": [
            {"offsetMs": offset, "durationMs": 900, "transcript": text.lower(), "decoratedTranscript": text}
        ],
    }
    if dialect:
        entry["dialect"] = dialect
    return entry


def numbers(parties: frozenset[str] = frozenset({"customer"})) -> Transcripts:
    return Transcripts(UtteranceAnalyzer(NumberScorer()), parties)


def test_a_final_customer_utterance_is_a_reading_stamped_when_it_was_spoken() -> None:
    decision = numbers().decide(read_message(body(utterance("u1", "-0.7")), "c1"), WHO, wall=1_777_629_750.0)  # type: ignore[arg-type]
    assert decision.outcome == MessageOutcome.TRANSCRIPT
    (reading,) = decision.readings
    assert (reading.agent_id, reading.queue_id, reading.party, reading.score) == ("a1", "q1", "customer", -0.7)
    assert reading.timestamp == pytest.approx((START_MS + 112_300) / 1000)  # not the arrival (wall)


def test_keepalive_and_end_of_session() -> None:
    t = numbers()
    assert t.decide(read_message(body(), "c1"), WHO, 0.0).outcome == "transcript_keepalive"  # type: ignore[arg-type]
    empty = body()
    empty["transcripts"] = []
    assert t.decide(read_message(empty, "c1"), WHO, 0.0).outcome == "transcript_keepalive"  # type: ignore[arg-type]
    ended = t.decide(read_message(body(status="SESSION_ENDED"), "c1"), WHO, 0.0)  # type: ignore[arg-type]
    assert ended.outcome == "transcript_ended" and ended.ended


def test_partial_then_final_then_repeat() -> None:
    t = numbers()
    partial = t.decide(read_message(body(utterance("u1", "-0.3", final=False)), "c1"), WHO, 0.0)  # type: ignore[arg-type]
    assert partial.readings == [] and partial.utterances == [("customer", "partial")]
    final = t.decide(read_message(body(utterance("u1", "-0.5")), "c1"), WHO, 0.0)  # type: ignore[arg-type]
    assert [r.score for r in final.readings] == [-0.5]
    again = t.decide(read_message(body(utterance("u1", "-0.5")), "c1"), WHO, 0.0)  # type: ignore[arg-type]
    assert again.readings == [] and again.utterances == [("customer", "repeat")]
    t.forget("c1")
    assert len(t.decide(read_message(body(utterance("u1", "-0.5")), "c1"), WHO, 0.0).readings) == 1  # type: ignore[arg-type]


def test_a_burst_of_a_35_second_batch_is_five_readings_in_spoken_order() -> None:
    batch = body(*(utterance(f"u{i}", f"-0.{i + 5}", offset=1000 * (5 + 6 * i)) for i in range(5)))
    decision = numbers().decide(read_message(batch, "c1"), WHO, wall=START_MS / 1000 + 40)  # type: ignore[arg-type]
    assert [r.score for r in decision.readings] == [-0.5, -0.6, -0.7, -0.8, -0.9]
    assert [r.timestamp - START_MS / 1000 for r in decision.readings] == pytest.approx([5, 11, 17, 23, 29])


def test_parties_agent_is_opt_in_and_ivr_before_the_agent_is_not_theirs() -> None:
    message = read_message(body(utterance("u1", "0.2", "INTERNAL"), utterance("u2", "-0.4", "EXTERNAL")), "c1")
    off = numbers().decide(message, WHO, 0.0)  # type: ignore[arg-type]
    assert [(r.party, r.score) for r in off.readings] == [("customer", -0.4)]
    assert off.utterances == [("agent", "party_not_scored")]
    on = numbers(frozenset({"customer", "agent"})).decide(message, WHO, 0.0)  # type: ignore[arg-type]
    assert sorted((r.party, r.score) for r in on.readings) == [("agent", 0.2), ("customer", -0.4)]
    connected_later = (START_MS + 112_300) / 1000 + 10  # the INTERNAL speech was an IVR prompt
    ivr = numbers(frozenset({"customer", "agent"})).decide(message, WHO, 0.0, connected_later)  # type: ignore[arg-type]
    assert ("agent", "before_agent") in ivr.utterances and [r.party for r in ivr.readings] == ["customer"]


def test_unscorable_utterances_are_counted_never_zero() -> None:
    t = Transcripts(build_analyzer("vader"), frozenset({"customer"}))
    message = read_message(
        body(
            utterance("u1", "C'est vraiment inadmissible.", dialect="fr-FR"),
            utterance("u2", "hello", dialect=None),
            utterance("u3", "...", dialect="en-US"),
            utterance("u4", "who said this", "BOTH"),
            {"utteranceId": "u5", "isFinal": True, "channel": "EXTERNAL"},
            "not an object",
        ),
        "c1",
    )
    decision = t.decide(message, WHO, 0.0)  # type: ignore[arg-type]
    assert decision.readings == []
    assert sorted(decision.utterances) == sorted(
        [
            ("", "malformed"),
            ("customer", "unsupported_language"),
            ("customer", "unknown_language"),
            ("customer", "empty_text"),
            ("", "unknown_channel"),
            ("customer", "malformed"),
        ]
    )
    assert t.unscorable == {"fr-FR": {"q1": 1}, "(none)": {"q1": 1}}  # `check` names the queues


def test_unscorable_dialects_are_bounded_in_number_and_length() -> None:
    """`dialect` comes from the wire: a stream of made-up ones must not grow `check`'s table without end."""
    analyzer = build_analyzer("vader")
    t = Transcripts(analyzer, frozenset({"customer"}))
    for n in range(1_000):
        dialect = f"x{n}-" + "Y" * (100_000 if n == 0 else 2)
        message = read_message(body(utterance(f"u{n}", "Bonjour.", dialect=dialect)), f"c{n}")
        decision = t.decide(message, WHO, 0.0)  # type: ignore[arg-type]
        assert decision.utterances == [("customer", "unsupported_language")]  # still counted, every one
    assert len(t.unscorable) <= 100
    assert max(len(d) for d in t.unscorable) <= 64
    assert t.unscorable["x1-YY"] == {"q1": 1}  # short ones kept as they came
    assert sum(len(d) for d in analyzer._cache) <= 1_000 * 64  # the analyzer's verdict cache, too


def test_unattributed_and_stale_calls() -> None:
    message = read_message(body(utterance("u1", "-0.5")), "c1")
    for who in ("unattributed", "stale"):
        decision = numbers().decide(message, who, 0.0)  # type: ignore[arg-type]
        assert decision.outcome == who and decision.utterances == [("customer", "unattributed")]


def test_topic_id_stands_in_for_a_missing_conversation_id() -> None:
    message = read_message({"transcripts": [utterance("u1", "0.1")]}, "c9")
    assert message is not None and message.conversation_id == "c9"
    assert message.utterances[0].spoken_at is None  # no session start: the arrival time is used
    assert numbers().decide(message, WHO, 123.0).readings[0].timestamp == 123.0
    assert read_message({}, "") is None


def test_post_call_book_keeps_the_last_call_and_a_recent_mean() -> None:
    book = PostCallBook(recent=3, max_agents=2)
    for i, score in enumerate((-0.2, -0.4, -0.6, -0.8)):
        assert book.record("a1", "q1", f"c{i}", score, -0.1, 100.0 + i) == "postcall_score"
    assert book.record("a1", "q1", "c3", -0.8, None, 200.0) == "postcall_repeat"
    entry = book.agents["a1"]
    assert (entry.last_score, entry.calls) == (-0.8, 4)
    assert book.mean("a1") == pytest.approx(-0.6)
    book.record("a2", "q1", "x", 0.1, None, 0.0)
    book.record("a3", "q1", "y", 0.1, None, 0.0)
    assert list(book.agents) == ["a2", "a3"]  # bounded: the oldest agent went


def test_numbers_too_large_for_a_float_are_no_time_not_a_crash() -> None:
    # json.loads turns 400 digits into an int that math.isfinite cannot take (OverflowError).
    huge = 10**400
    batch = body(utterance("u1", "-0.5", offset=huge))
    batch["sessionStartTimeMs"] = huge
    batch["transcriptionStartTimeMs"] = True  # bool is no number either
    message = read_message(batch, "c1")
    assert message is not None and message.utterances[0].spoken_at is None
    (reading,) = numbers().decide(message, WHO, 77.0).readings
    assert reading.timestamp == 77.0  # the arrival time, as for any body that cannot say when
    batch = body(utterance("u2", "-0.5", offset=huge))  # a good origin, an offset beyond a float
    assert read_message(batch, "c1").utterances[0].spoken_at is None  # type: ignore[union-attr]
