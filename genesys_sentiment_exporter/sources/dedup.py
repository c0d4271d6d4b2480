"""Overlap de-duplication, pure: the one piece of the stream supervisor the session cores need.

It lives apart from `supervisor` (sockets, tasks, aiohttp) so a core can own one without
importing any I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

DEDUP_LIMIT = 200_000


def frame_digest(frame: str | bytes) -> bytes:
    """A frame as a 16-byte key: the de-duplicator may hold `DEDUP_LIMIT` keys during an overlap,
    and a frame may be up to 1 MiB; the frames themselves would then stay alive with it."""
    data = frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else frame
    return hashlib.blake2b(data, digest_size=16).digest()


class Deduplicator:
    """During make-before-break overlaps, one frame delivered by two sockets counts once.

    Overlaps may nest (two slots rolling over at once): it stays active until the last one stops.

    It also tells when an old socket has caught up with its replacement: once one frame has come
    through both. The old one delivered it, so everything it still carried before it is through (a
    socket delivers in order; what only the old one carries was published before the replacement
    subscribed, so before that frame), and what follows comes through the replacement too. Either may
    deliver it first: on a starved host the replacement leads, usually the old one does. That, not a
    fixed delay, is when the old socket may go (`when_caught_up`).
    """

    def __init__(self, limit: int = DEDUP_LIMIT) -> None:
        self.limit = limit
        self.overlaps = 0
        self.seen: dict[str | bytes, int] = {}
        self.shared: set[tuple[int, int]] = set()  # pairs of connections (lower number first) with a frame in common
        self._waiting: dict[tuple[int, int], Callable[[], None]] = {}

    @property
    def active(self) -> bool:
        return self.overlaps > 0

    def start(self) -> None:
        if self.overlaps == 0:
            self.seen.clear()
        self.overlaps += 1

    def stop(self) -> None:
        self.overlaps = max(0, self.overlaps - 1)
        if self.overlaps == 0:
            self.seen.clear()
            self.shared.clear()

    def when_caught_up(self, old: int, new: int, then: Callable[[], None]) -> None:
        """Call `then` once a frame has come through both connections (at once if one has): the old
        socket of an overlap has drained what only it carried."""
        pair = (old, new) if old < new else (new, old)
        if pair in self.shared:
            then()
        else:
            self._waiting[pair] = then

    def forget(self, old: int, new: int) -> None:
        self._waiting.pop((old, new) if old < new else (new, old), None)

    def duplicate(self, key: str | bytes, connection: int) -> bool:
        other = self.seen.get(key)
        if other is not None and other != connection:
            pair = (connection, other) if connection < other else (other, connection)
            if pair not in self.shared:
                self.shared.add(pair)
                then = self._waiting.pop(pair, None)
                if then is not None:
                    then()
            return True  # kept: a third socket (nested overlaps) may deliver the same event again
        if len(self.seen) < self.limit:
            self.seen[key] = connection
        return False
