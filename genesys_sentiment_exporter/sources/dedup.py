"""Overlap de-duplication, pure: the one piece of the stream supervisor the session cores need.

It lives apart from `supervisor` (sockets, tasks, aiohttp) so a core can own one without
importing any I/O.
"""

from __future__ import annotations

import hashlib

DEDUP_LIMIT = 200_000


def frame_digest(frame: str | bytes) -> bytes:
    """A frame as a 16-byte key: the de-duplicator may hold `DEDUP_LIMIT` keys during an overlap,
    and a frame may be up to 1 MiB; the frames themselves would then stay alive with it."""
    data = frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else frame
    return hashlib.blake2b(data, digest_size=16).digest()


class Deduplicator:
    """During make-before-break overlaps, one frame delivered by two sockets counts once.

    Overlaps may nest (two slots rolling over at once): it stays active until the last one stops.
    """

    def __init__(self, limit: int = DEDUP_LIMIT) -> None:
        self.limit = limit
        self.overlaps = 0
        self.seen: dict[str | bytes, int] = {}

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

    def duplicate(self, key: str | bytes, connection: int) -> bool:
        other = self.seen.get(key)
        if other is not None and other != connection:
            return True  # kept: a third socket (nested overlaps) may deliver the same event again
        if len(self.seen) < self.limit:
            self.seen[key] = connection
        return False
