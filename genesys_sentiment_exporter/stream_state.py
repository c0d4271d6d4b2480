"""Connection health that every source reports and /metrics and /-/ready read."""

from __future__ import annotations

from collections import Counter


class StreamState:
    """Plain counters and timestamps (wall clock, epoch seconds); written only by the event loop."""

    def __init__(self) -> None:
        self.connected = False
        self.connects = 0
        self.disconnects: Counter[str] = Counter()
        self.rollovers: Counter[str] = Counter()
        self.overlaps_ended: Counter[str] = Counter()  # by catalogue.OverlapEnd: what let a rollover's old socket go
        self.last_message = 0.0
        self.last_heartbeat = 0.0
        self.last_error = "not connected yet"

    def ready_reason(self) -> str | None:
        return None if self.connected else f"stream not connected: {self.last_error}"
