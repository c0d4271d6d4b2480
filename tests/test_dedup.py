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


def test_an_old_socket_has_caught_up_once_a_frame_came_through_both() -> None:
    """The end of a rollover's overlap: old 1, replacement 2 (sources/stream.py retires 1 then)."""
    dedup = Deduplicator()
    dedup.start()
    told: list[str] = []
    dedup.when_caught_up(1, 2, lambda: told.append("caught up"))
    assert dedup.duplicate(b"only the old one had it", 1) is False
    assert dedup.duplicate(b"the replacement leads", 2) is False
    assert told == []  # no frame through both yet: the old one may still hold events before it
    assert dedup.duplicate(b"the replacement leads", 1) is True
    assert told == ["caught up"]
    assert dedup.duplicate(b"more", 2) is False and dedup.duplicate(b"more", 1) is True
    assert told == ["caught up"]  # told once
    dedup.when_caught_up(1, 2, lambda: told.append("again"))  # already caught up: at once
    assert told == ["caught up", "again"]
    dedup.stop()
    assert dedup.shared == set()


def test_an_old_socket_that_leads_has_caught_up_when_its_replacement_delivers_the_same_frame() -> None:
    dedup = Deduplicator()
    dedup.start()
    told: list[str] = []
    dedup.when_caught_up(1, 2, lambda: told.append("caught up"))
    assert dedup.duplicate(b"the old one first", 1) is False
    assert told == []
    assert dedup.duplicate(b"the old one first", 2) is True
    assert told == ["caught up"]
    dedup.when_caught_up(2, 3, lambda: told.append("2 and 3"))
    assert dedup.duplicate(b"the old one first", 3) is True  # 3 shares it with 1 (first seen), not 2
    assert told == ["caught up"]
    dedup.forget(2, 3)
    dedup.stop()
