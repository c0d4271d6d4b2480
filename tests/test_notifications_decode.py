"""`parse` decodes with json's C scanner directly: it must answer exactly what `json.loads` answers."""

from __future__ import annotations

import json

import pytest

from genesys_sentiment_exporter.sources import notifications_protocol as proto

FRAMES = [
    '{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}',
    ' {"topicName":"x"}',  # leading whitespace: the scanner alone refuses it, json.loads accepts
    '{"topicName":"x"}\n',  # trailing whitespace
    '{"topicName":"x"} trailing',  # extra data: an error for json.loads
    '{"topicName":"x"}{"topicName":"y"}',
    '{"a": NaN, "b": -Infinity, "c": 1e400, "d": "\\ud800"}',
    "",
    "   ",
    "[1, 2",
    '{"a": 1,}',
    "nul",
    "[" * 100_000 + "]" * 100_000,  # deeper than the recursion limit
    b'{"topicName":"x"}',
    '{"topicName":"x"}'.encode("utf-16"),
]


def _outcome(decode: object, frame: str | bytes) -> object:
    try:
        return ("value", repr(decode(frame)))  # type: ignore[operator]
    except (ValueError, RecursionError) as exc:
        return ("error", type(exc))


@pytest.mark.parametrize("frame", FRAMES, ids=range(len(FRAMES)))
def test_decode_answers_what_json_loads_answers(frame: str | bytes) -> None:
    assert _outcome(proto._decode, frame) == _outcome(json.loads, frame)


def test_a_frame_that_is_not_json_is_malformed_not_fatal() -> None:
    assert proto.parse('{"topicName":"x"} trailing').kind == proto.Kind.MALFORMED
    assert proto.parse(" " + json.dumps({"topicName": "v2.users.u1.conversations", "eventBody": {}})).kind == (
        proto.Kind.CONVERSATION
    )
