"""`parse_fast` (msgspec, typed transcription bodies) answers what `parse` (json.loads, dict readers) answers.

For generated frames, well formed and corrupted (wrong types, null or absent fields, NaN, infinities, huge
ints, lone surrogates, repeated keys, other spacing and key order), the two decoders give the same kind,
topic and id, the same transcript reading, the same body digest; and two sessions fed the same frames,
one decoding each way, hand back equal `Received` answers (outcome, readings, utterances, changes,
actions). The duplicate digest: another key order or spacing is the same body; any changed field is not.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genesys_sentiment_exporter.analysis import UtteranceAnalyzer
from genesys_sentiment_exporter.catalogue import Outcome
from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.sources import notifications_protocol as proto
from genesys_sentiment_exporter.sources.notifications_session import NotificationsSession, apply
from genesys_sentiment_exporter.sources.transcription_protocol import (
    AGENT,
    CUSTOMER,
    Transcripts,
    WireBody,
    read_message,
    read_wire,
)
from genesys_sentiment_exporter.tracker import AgentTracker, TrackerLimits

PROPERTY = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
NOW = 1_800_000_000.0

text = st.text(alphabet=st.characters(codec=None), max_size=12)  # codec=None: lone surrogates too
odd_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    text,
)
odd = st.recursive(odd_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3))


def maybe(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the well-formed value (whole well-formed bodies must come up too); sometimes null, sometimes
    any odd JSON value. Absent: the `optional` fields below."""
    return st.integers(0, 19).flatmap(lambda n: good if n < 16 else st.none() if n < 18 else odd)


def fields(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(required, optional=optional)


ids = st.sampled_from(["c1", "c2", ""])
alternative = fields(
    {},
    {
        "transcript": maybe(st.sampled_from(["i hate this", "", "fine thanks"])),
        "decoratedTranscript": maybe(st.sampled_from(["I hate this.", "", "Fine, thanks."])),
        "offsetMs": maybe(st.integers(0, 10_000) | st.floats(0, 1e4)),
        "confidence": maybe(st.floats(0, 1)),
    },
)
transcript = fields(
    {},
    {
        "utteranceId": maybe(st.sampled_from(["u1", "u2", "u3", ""])),
        "isFinal": maybe(st.booleans()),
        "channel": maybe(st.sampled_from(["EXTERNAL", "INTERNAL", "BOTH", "UNKNOWN"])),
        "dialect": maybe(st.sampled_from(["en-US", "fr-FR", ""])),
        "alternatives": maybe(st.lists(maybe(alternative), max_size=2)),
        "engineId": maybe(st.just("r2d2")),
    },
)
transcription_body = fields(
    {},
    {
        "conversationId": maybe(ids),
        "sessionStartTimeMs": maybe(st.integers(1_777_000_000_000, 1_778_000_000_000) | st.floats(0, 2e12)),
        "transcriptionStartTimeMs": maybe(st.integers(1_777_000_000_000, 1_778_000_000_000)),
        "status": maybe(fields({}, {"status": maybe(st.sampled_from(["SESSION_ONGOING", "SESSION_ENDED"]))})),
        "transcripts": maybe(st.lists(maybe(transcript), max_size=3)),
    },
)
# Well formed throughout: the typed path's own ground (readings, partials, repeats, before the agent).
good_transcription_body = st.fixed_dictionaries(
    {
        "conversationId": st.sampled_from(["c1", "c2"]),
        "transcriptionStartTimeMs": st.integers(1_777_000_000_000, 1_778_000_000_000) | st.floats(0, 2e12),
        "status": st.fixed_dictionaries({"status": st.sampled_from(["SESSION_ONGOING", "SESSION_ENDED"])}),
        "transcripts": st.lists(
            st.fixed_dictionaries(
                {
                    "utteranceId": st.sampled_from(["u1", "u2", "u3", ""]),
                    "isFinal": st.booleans(),
                    "channel": st.sampled_from(["EXTERNAL", "INTERNAL"]),
                    "dialect": st.sampled_from(["en-US", "fr-FR", ""]),
                    "alternatives": st.lists(
                        st.fixed_dictionaries(
                            {
                                "transcript": st.sampled_from(["i hate this", ""]),
                                "decoratedTranscript": st.sampled_from(["I hate this.", ""]),
                                "offsetMs": st.integers(0, 10_000) | st.floats(0, 1e4),
                            }
                        ),
                        min_size=1,
                        max_size=2,
                    ),
                }
            ),
            max_size=3,
        ),
    },
    optional={"sessionStartTimeMs": st.integers(1_777_000_000_000, 1_778_000_000_000)},
)
call = fields(
    {"state": maybe(st.sampled_from(["alerting", "connected", "disconnected"]))},
    {"afterCallWork": maybe(fields({}, {"state": maybe(st.sampled_from(["pending", "complete"]))}))},
)
participant = fields(
    {
        "purpose": maybe(st.sampled_from(["agent", "customer", "acd"])),
        "calls": maybe(st.lists(maybe(call), max_size=2)),
    },
    {
        "userId": maybe(st.sampled_from(["a1", "a2"])),
        "queueId": maybe(st.sampled_from(["q1", "q2"])),
        "name": maybe(text),
        "endAcwTime": maybe(st.just("2026-12-02T07:25:45.626Z")),
        "chats": maybe(st.lists(odd, max_size=1)),
    },
)
conversation_body = fields({"id": maybe(ids), "participants": maybe(st.lists(maybe(participant), max_size=3))}, {})
other_body = odd | fields({"message": maybe(st.sampled_from(["WebSocket Heartbeat", "pong"]))}, {})

envelopes = st.one_of(
    st.tuples(
        st.sampled_from(["v2.conversations.c1.transcription", "v2.conversations.c2.transcription"]), transcription_body
    ),
    st.tuples(st.sampled_from(["v2.users.a1.conversations", "v2.routing.queues.q1.conversations"]), conversation_body),
    st.tuples(
        st.sampled_from(
            ["channel.metadata", "v2.system.socket_closing", "v2.speechandtextanalytics.conversation.c1.sentiment"]
        )
        | text,
        other_body,
    ),
    st.tuples(odd, odd),  # a topic that is not a string, a body that is not an object
)
envelopes = st.one_of(
    envelopes,
    st.tuples(
        st.sampled_from(["v2.conversations.c1.transcription", "v2.conversations.c2.transcription"]), transcription_body
    ),
    st.tuples(st.sampled_from(["v2.conversations.c1.transcription"]), good_transcription_body),
    st.tuples(  # ids the topic pattern refuses or takes: empty, dotted, a newline at the end, any text
        st.sampled_from(["", "a.b", "c1.transcription\n", "\n", "é"]).map(
            lambda t: f"v2.conversations.{t}.transcription"
        )
        | text.map(lambda t: f"v2.conversations.{t}.transcription"),
        good_transcription_body,
    ),
)


@st.composite
def frames(draw: st.DrawFn) -> str | bytes:
    """An envelope written the ways a server might: spacing, key order, escapes, a repeated key, bytes."""
    topic, body = draw(envelopes)
    envelope: dict[str, Any] = {
        "topicName": topic,
        "version": "2",
        "eventBody": body,
        "metadata": {"CorrelationId": "x"},
    }
    if draw(st.integers(0, 3)) == 0:  # the topic after the body: the decoder's hint misses
        envelope = dict(reversed(envelope.items()))
    if draw(st.integers(0, 19)) == 0:
        del envelope[draw(st.sampled_from(["topicName", "eventBody"]))]
    text_frame = json.dumps(
        envelope,
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, None, 1])),
        sort_keys=draw(st.integers(0, 3)) == 0,
        allow_nan=True,
    )
    repeat = draw(st.integers(0, 14))
    if repeat == 0:  # a key twice: the first copy is overruled by the one json.loads keeps
        text_frame = '{"topicName": ' + json.dumps(draw(odd), allow_nan=True) + ", " + text_frame.lstrip()[1:]
    elif repeat == 1:
        text_frame = '{"eventBody": ' + json.dumps(draw(odd), allow_nan=True) + ", " + text_frame.lstrip()[1:]
    form = draw(st.integers(0, 29))
    if form == 0:
        return text_frame.encode("utf-8", "surrogatepass")
    if form == 1:
        return " " + text_frame + "\n"
    if form == 2:
        return text_frame[: draw(st.integers(0, len(text_frame)))]  # cut short
    return text_frame


def _readable(message: proto.Message) -> Any:
    """What a handler reads of a message: the transcript reading, or the body (NaN-safe, as text)."""
    if message.wire is not None:
        return read_wire(message.wire, message.topic_id)
    if message.kind == proto.Kind.TRANSCRIPTION:
        return read_message(message.body, message.topic_id)
    return ascii(message.body)


@PROPERTY
@given(frames())
def test_fast_and_generic_decoders_read_every_frame_alike(frame: str | bytes) -> None:
    generic, fast = proto.parse(frame), proto.parse_fast(frame)
    assert (fast.kind, fast.topic, fast.topic_id) == (generic.kind, generic.topic, generic.topic_id)
    assert _readable(fast) == _readable(generic)
    if fast.wire is None and fast.kind in (proto.Kind.CONVERSATION, proto.Kind.SENTIMENT):
        try:
            expected: object = generic.dedup_key()
        except RecursionError:
            expected = RecursionError
        assert fast.dedup_key() == expected


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        found += _paths(inner, (*path, key))
    return found


@st.composite
def nearly_good_transcripts(draw: st.DrawFn) -> str:
    """A well-formed transcription frame with at most one value replaced (null, a wrong type, NaN, a huge int,
    a lone surrogate, ...) or one key dropped: the typed decoder's edge, where it must accept or hand over."""
    body = draw(good_transcription_body)
    paths = _paths(body)[1:]
    change = draw(st.integers(0, 2))
    if paths and change:
        *parent_path, key = draw(st.sampled_from(paths))
        parent = body
        for step in parent_path:
            parent = parent[step]
        if change == 1:
            parent[key] = draw(odd_scalars | odd)
        elif isinstance(parent, dict):
            del parent[key]
    return json.dumps({"topicName": "v2.conversations.c1.transcription", "eventBody": body}, allow_nan=True)


@PROPERTY
@given(nearly_good_transcripts())
def test_the_typed_transcript_reader_reads_what_the_dict_reader_reads(frame: str) -> None:
    generic, fast = proto.parse(frame), proto.parse_fast(frame)
    assert fast.kind == generic.kind == proto.Kind.TRANSCRIPTION
    assert _readable(fast) == _readable(generic)


class Varied:
    """Scores by text, refuses one text: readings tell utterances apart, and `analyzer_error` comes up."""

    name = "varied"
    languages = frozenset({"en"})

    def score(self, text: str) -> float:
        if text == "Fine, thanks.":
            raise ValueError("refused")
        return len(text) / 100.0


_WIRE = msgspec.json.Decoder(WireBody).decode
ORIGIN = 1_777_000_000.0  # seconds; bodies' start times are 1 777 000 000 000 - 1 778 000 000 000 ms


@st.composite
def wire_bodies(draw: st.DrawFn) -> WireBody:
    """A transcription body the typed decoder accepts: well formed, nearly so, or generated field by field."""
    body = draw(st.one_of(good_transcription_body, nearly_good_transcripts().map(lambda f: json.loads(f)["eventBody"])))
    if draw(st.booleans()):
        body = draw(transcription_body)
    try:
        return _WIRE(json.dumps(body, allow_nan=True))
    except (msgspec.MsgspecError, ValueError):
        return _WIRE(json.dumps(draw(good_transcription_body)))


@PROPERTY
@given(
    st.lists(
        st.tuples(
            wire_bodies(),
            st.sampled_from(["c1", "c2"]),  # the topic's id
            st.sampled_from([("a1", "q1"), ("a2", "unknown"), Outcome.STALE, Outcome.UNATTRIBUTED]),
            # when the agent connected: None, near the bodies' start times, anywhere
            st.none() | st.floats(ORIGIN - 10, ORIGIN + 10) | st.floats(ORIGIN, ORIGIN + 1e6) | st.floats(0, 2e9),
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([frozenset({CUSTOMER}), frozenset({CUSTOMER, AGENT}), frozenset({AGENT})]),
)
def test_the_fused_transcript_decision_answers_what_the_reader_and_decide_answer(
    stream: list[tuple[WireBody, str, tuple[str, str] | str, float | None]], parties: frozenset[str]
) -> None:
    """`decide_wire` against `decide(read_wire(...))`, message after message (repeats need the ones before):
    the same outcome, readings and utterance outcomes, and the same `scored` and `unscorable` left behind."""
    fused = Transcripts(UtteranceAnalyzer(Varied()), parties, remember=2)
    reference = Transcripts(UtteranceAnalyzer(Varied()), parties, remember=2)
    for n, (body, topic_id, who, connected) in enumerate(stream):
        message = read_wire(body, topic_id)
        assert message is not None  # the topic's id is never empty
        expected = reference.decide(message, who, NOW + n, connected)
        got = fused.decide_wire(body, message.conversation_id, who, NOW + n, connected)
        assert got == (expected.outcome, expected.readings, expected.utterances)
        assert fused.scored == reference.scored
        assert fused.unscorable == reference.unscorable


def test_an_utterance_id_already_scored_is_a_repeat_on_either_channel_in_both_deciders() -> None:
    """The order of the checks: a repeat is told before the party (generated streams rarely reach this)."""
    fused = Transcripts(UtteranceAnalyzer(Varied()), frozenset({CUSTOMER}))
    reference = Transcripts(UtteranceAnalyzer(Varied()), frozenset({CUSTOMER}))
    answers = []
    for channel in ("EXTERNAL", "INTERNAL"):
        entry = {"utteranceId": "u1", "isFinal": True, "channel": channel, "dialect": "en-US"}
        body = _WIRE(json.dumps({"transcripts": [{**entry, "alternatives": [{"transcript": "ok"}]}]}))
        message = read_wire(body, "c1")
        assert message is not None
        expected = reference.decide(message, ("a1", "q1"), NOW)
        got = fused.decide_wire(body, "c1", ("a1", "q1"), NOW)
        assert got == (expected.outcome, expected.readings, expected.utterances)
        answers.append(got[2])
    assert answers == [[], [(AGENT, "repeat")]]


class Constant:
    name = "constant"
    languages = frozenset({"en"})

    def score(self, text: str) -> float:
        return 0.25


def _session(parse: Any) -> tuple[NotificationsSession, Ingest]:
    session = NotificationsSession(
        queue_ids=["q1"], agent_ids=["a1"], analyzer=UtteranceAnalyzer(Constant()), parse=parse
    )
    session.start()
    return session, Ingest(AgentTracker(TrackerLimits(grace_seconds=600)), clock=lambda: 0.0, wall=lambda: NOW)


def _connect(conversation: str) -> str:
    body = {
        "id": conversation,
        "participants": [
            {"purpose": "customer", "calls": [{"state": "connected"}]},
            {"purpose": "agent", "userId": "a1", "queueId": "q1", "calls": [{"state": "connected"}]},
        ],
    }
    return json.dumps({"topicName": "v2.users.a1.conversations", "eventBody": body})


@PROPERTY
@given(st.lists(frames(), max_size=12), st.booleans())
def test_sessions_decoding_either_way_answer_alike(stream: list[str | bytes], attributed: bool) -> None:
    generic, generic_ingest = _session(proto.parse)
    fast, fast_ingest = _session(proto.parse_fast)
    setup = [_connect("c1"), _connect("c2")] if attributed else [_connect("c1")]
    for n, frame in enumerate([*setup, *stream]):
        expected = generic.receive(frame, 1, float(n), NOW + n)
        got = fast.receive(frame, 1, float(n), NOW + n)
        assert got == expected
        assert apply(fast_ingest, got) == apply(generic_ingest, expected)
    assert fast_ingest.messages == generic_ingest.messages
    assert fast_ingest.utterances == generic_ingest.utterances


def _conversation(agent_name: str = "Agent One") -> dict[str, Any]:
    return {
        "id": "c1",
        "participants": [
            {"id": "p0", "purpose": "customer", "calls": [{"id": "s0", "state": "connected"}]},
            {
                "id": "p1",
                "purpose": "agent",
                "userId": "a1",
                "queueId": "q1",
                "name": agent_name,
                "connectedTime": None,
                "calls": [{"id": "s1", "state": "connected", "afterCallWork": {"state": "pending"}}],
            },
        ],
    }


def test_a_copy_in_another_key_order_or_spacing_is_a_duplicate_and_a_changed_field_is_not() -> None:
    session, _ = _session(proto.parse_fast)
    body = _conversation()
    first = json.dumps({"topicName": "v2.users.a1.conversations", "eventBody": body})
    # The queue topic's copy, written otherwise: keys reversed at every level, other spacing, escapes.
    reordered = json.loads(json.dumps(body), object_pairs_hook=lambda pairs: dict(reversed(pairs)))
    copy = json.dumps(
        {"eventBody": reordered, "topicName": "v2.routing.queues.q1.conversations"}, indent=3, ensure_ascii=False
    )
    assert first.replace(" ", "") != copy.replace(" ", "").replace("\n", "")
    assert session.receive(first, 1, 1.0, NOW).outcome == Outcome.STATE_CHANGE
    assert session.receive(copy, 1, 2.0, NOW).outcome == Outcome.DUPLICATE
    # A field the exporter does not read changed: a new update, not a copy (a state change that moves nobody).
    renamed = json.dumps({"topicName": "v2.users.a1.conversations", "eventBody": _conversation("Agent 1")})
    assert session.receive(renamed, 1, 3.0, NOW).outcome == Outcome.STATE_CHANGE
    assert session.receive(renamed, 1, 4.0, NOW).outcome == Outcome.DUPLICATE
    # null and NaN (json.loads' path: msgspec refuses NaN) are different values, and neither is absent.
    for value in (None, float("nan"), 0.0):
        changed = _conversation("Agent 1")
        changed["participants"][1]["connectedTime"] = value
        frame = json.dumps({"topicName": "v2.users.a1.conversations", "eventBody": changed}, allow_nan=True)
        assert session.receive(frame, 1, 5.0, NOW).outcome == (
            Outcome.DUPLICATE if value is None else Outcome.STATE_CHANGE
        ), value


def test_the_digest_depends_on_the_value_not_on_the_decoder() -> None:
    body = _conversation()
    text = json.dumps(body)
    assert proto.body_digest("", json.loads(text)) == proto.body_digest("", json.loads(text), plain=True)
    assert proto.body_digest("", {"a": float("nan")}) != proto.body_digest("", {"a": None})
    assert proto.body_digest("", {"a": float("inf")}) != proto.body_digest("", {"a": None}, plain=True)
    assert proto.body_digest("", {"a": "\ud800"}) != proto.body_digest("", {"a": "\ufffd"}, plain=True)
    assert proto.body_digest("", {"a": 1}) != proto.body_digest("", {"a": 1.0}, plain=True)
    assert proto.body_digest("", {"a": 1}) != proto.body_digest("", {"a": True}, plain=True)
    assert proto.body_digest("x", {"a": 1}) != proto.body_digest("y", {"a": 1}, plain=True)


def _at_depth(frames: int, call: Any) -> Any:
    """`call()` from `frames` more Python frames down the stack (a deeper caller)."""
    return call() if frames == 0 else _at_depth(frames - 1, call)


def test_frames_nested_near_the_recursion_limit_read_alike_from_shallow_and_deep_callers() -> None:
    """Both decoders stop at the recursion limit a level apart; how deep a frame must nest to reach it
    depends on the caller's stack. Every depth from shallow to past the limit, from two stack depths."""
    for depth in [*range(0, 1_100, 50), *range(580, 620), *range(880, 1_000, 3)]:
        for nested in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
            for topic in ("v2.conversations.c1.transcription", "v2.users.a1.conversations"):
                frame = '{"topicName":"' + topic + '","eventBody":{"conversationId":"c1","x":' + nested + "}}"
                for caller in (0, 200):
                    try:
                        expected: Any = _readable(_at_depth(caller, lambda f=frame: proto.parse(f)))
                    except RecursionError:
                        expected = RecursionError
                    try:
                        got: Any = _readable(_at_depth(caller, lambda f=frame: proto.parse_fast(f)))
                    except RecursionError:
                        got = RecursionError
                    assert got == expected, (depth, topic, caller)


def _call(conversation: str, state: str, name: Any = "Agent One") -> dict[str, Any]:
    return {
        "id": conversation,
        "participants": [
            {"id": "p0", "purpose": "customer", "calls": [{"id": "s0", "state": "connected"}]},
            {"purpose": "agent", "userId": "a1", "queueId": "q1", "name": name, "calls": [{"state": state}]},
        ],
    }


# A few bodies of two calls: the states, an unread field changed, NaN (msgspec refuses the frame), a lone
# surrogate (msgspec takes the frame, refuses the body), an integer beyond a float.
updates = st.sampled_from(["c1", "c2"]).flatmap(
    lambda c: st.sampled_from(
        [
            _call(c, "alerting"),
            _call(c, "connected"),
            _call(c, "connected", "Agent 1"),
            _call(c, "connected", float("nan")),
            _call(c, "connected", "\ud800"),
            _call(c, "connected", 10**400),
            _call(c, "disconnected"),
        ]
    )
)


@st.composite
def conversation_frames(draw: st.DrawFn) -> str:
    """A conversation update through the user's or the queue's topic, written one of the ways a copy may be:
    the same text, another key order, spacing or escapes, the topic after the body (the hint misses)."""
    body = draw(updates)
    if draw(st.booleans()):
        body = json.loads(json.dumps(body), object_pairs_hook=lambda pairs: dict(reversed(pairs)))
    topic = draw(st.sampled_from(["v2.users.a1.conversations", "v2.routing.queues.q1.conversations"]))
    envelope = {"topicName": topic, "eventBody": body, "metadata": {"CorrelationId": draw(st.sampled_from("xy"))}}
    if draw(st.integers(0, 5)) == 0:
        envelope = dict(reversed(envelope.items()))
    return json.dumps(
        envelope,
        indent=draw(st.sampled_from([None, None, None, 2])),
        ensure_ascii=draw(st.booleans()),
        sort_keys=draw(st.integers(0, 5)) == 0,
    )


@PROPERTY
@given(st.lists(st.tuples(conversation_frames(), st.integers(0, 9)), max_size=30))
def test_conversation_copies_told_by_their_text_are_what_the_digest_tells(stream: list[tuple[str, int]]) -> None:
    """The fast session tells a copy by its body's text (`same_text`) before decoding it; the generic one by
    the value's digest. The same answers, update after update, through overlaps (`parse` and the digest
    only: the text of an older body must not stand for a newer one) and calls dropped after their grace."""
    generic, generic_ingest = _session(proto.parse)
    fast, fast_ingest = _session(proto.parse_fast)
    for n, (frame, event) in enumerate(stream):
        for session in (generic, fast):
            if event == 0:
                session.dedup.start()
            elif event == 1:
                session.dedup.stop()
            elif event == 2:
                session.sweep(float(n) + 100.0)  # past the grace: ended calls are dropped
        now = float(n) + (100.0 if event == 2 else 0.0)
        expected = generic.receive(frame, 0, now, NOW + n)
        got = fast.receive(frame, 0, now, NOW + n)
        assert got == expected, n
        assert apply(fast_ingest, got) == apply(generic_ingest, expected)
    assert fast_ingest.messages == generic_ingest.messages
    live = fast.attribution.live  # one text per live call, its last body's
    assert all(cid in live and live[cid].last_text == text for text, cid in fast.attribution.by_text.items())


def test_a_body_told_by_its_text_is_only_ever_the_calls_last_one() -> None:
    """A, then B, then A again is an update each time, however B came: as text, or decoded during an
    overlap (where no text is kept); and a copy of a dropped call's last body is not its duplicate."""
    first = json.dumps({"topicName": "v2.users.a1.conversations", "eventBody": _call("c1", "connected")})
    second = json.dumps({"topicName": "v2.users.a1.conversations", "eventBody": _call("c1", "connected", "A 1")})
    for overlap in (False, True):
        session, _ = _session(proto.parse_fast)
        assert session.receive(first, 1, 1.0, NOW).outcome == Outcome.STATE_CHANGE
        assert session.receive(first, 1, 2.0, NOW).outcome == Outcome.DUPLICATE
        if overlap:
            session.dedup.start()
        assert session.receive(second, 1, 3.0, NOW).outcome == Outcome.STATE_CHANGE
        session.dedup.stop()
        assert session.receive(first, 1, 4.0, NOW).outcome == Outcome.STATE_CHANGE, overlap
        assert session.receive(first, 1, 5.0, NOW).outcome == Outcome.DUPLICATE
    # A copy told by its text still says the call is alive: not dropped as idle (900 s) while copies come.
    assert session.receive(first, 1, 800.0, NOW).outcome == Outcome.DUPLICATE
    session.sweep(1_600.0)
    assert "c1" in session.attribution.live
    ended = json.dumps({"topicName": "v2.users.a1.conversations", "eventBody": _call("c1", "disconnected")})
    assert session.receive(ended, 1, 1_601.0, NOW).outcome == Outcome.STATE_CHANGE
    session.sweep(1_700.0)
    assert "c1" not in session.attribution.live and not session.attribution.by_text
    assert session.receive(ended, 1, 1_701.0, NOW).outcome != Outcome.DUPLICATE
