"""Overlap de-duplication: one event delivered by several sockets during a rollover counts once."""

from __future__ import annotations

from genesys_sentiment_exporter.sources.dedup import Deduplicator


def test_an_event_on_three_sockets_of_nested_overlaps_counts_once() -> None:
    """Two rollovers in a row (a token refresh asked again while the first replacement was opening)
    leave three sockets open for a moment: the soak saw such events counted twice after a token 500."""
    dedup = Deduplicator()
    dedup.start()
    dedup.start()  # nested: old -> middle -> new
    assert [dedup.duplicate(b"event", connection) for connection in (1, 2, 3)] == [False, True, True]
    assert dedup.duplicate(b"other", 3) is False


def test_the_same_socket_delivering_twice_is_not_a_duplicate_and_keys_are_bounded() -> None:
    dedup = Deduplicator(limit=2)
    dedup.start()
    assert [dedup.duplicate(b"a", 1), dedup.duplicate(b"a", 1)] == [False, False]  # a resend: the stream's own
    assert dedup.duplicate(b"b", 1) is False
    assert dedup.duplicate(b"c", 1) is False
    assert len(dedup.seen) == 2  # at the bound: later keys are not remembered
    dedup.stop()
    assert dedup.seen == {}
