"""Settings of the simulated Genesys Cloud.

Every fault the design document warns about has a knob here, so that a demo, a
test or a benchmark can switch it on without touching the server's code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class SimulatorConfig:
    client_id: str = "demo-client"
    client_secret: str = field(default="demo-secret", repr=False)  # repr=False: configs get logged
    token_lifetime_seconds: float = 3600.0
    # Scenario names from `genesys_cloud_simulator.scenarios.SCENARIOS`; empty = only what tests publish.
    scenarios: Sequence[str] = ()
    seed: int = 0
    agents: int | None = None  # steady agents; None = the scenario's default
    reading_interval_seconds: float = 3.0
    sour_seconds: float = 75.0  # how long each `sour` call stays sour (scenario seconds)
    speed: float = 1.0  # scenario time runs this many times faster than the wall clock
    min_heartbeat_seconds: float = 10.0
    # A socket that asked for no heartbeat is closed after this long without any text frame.
    idle_close_seconds: float = 120.0
    close_1001_every_seconds: float | None = None
    drop_1006_every_seconds: float | None = None
    token_429_every_n: int | None = None  # every n-th token request is answered 429
    retry_after_seconds: int = 2
    # Notifications API (exporter/simulator/notifications.py)
    notifications_heartbeat_seconds: float = 30.0
    channel_lifetime_seconds: float = 86_400.0  # compress to exercise channel expiry
    socket_closing_seconds: float = 60.0  # from v2.system.socket_closing to the close
    max_channels: int = 20
    max_topics_per_channel: int = 1000
    forbidden_topics: Sequence[str] = ()  # fnmatch patterns rejected with missingPermissions
    # fnmatch patterns availabletopics flags requiresCurrentUser: refused to this (user-less) client (topics.py)
    current_user_topics: Sequence[str] = ()
    forbidden_names: Sequence[str] = ()  # "users" / "queues": GET /api/v2/{users,routing/queues}/{id} answers 403
    sentiment_scale: str = "unit"  # "percent": sentiment topic scores are sent as -100..100
    # Org configuration (org_config.py): traps on top of those the scenarios imply, permissions the client lacks.
    org_traps: Sequence[str] = ()
    # e.g. "speechAndTextAnalytics:program:view": its reads answer 403, topics needing it are refused
    forbidden_permissions: Sequence[str] = ()
    org_max_page_size: int = 100
    # Live transcripts (transcripts.py), in scenario seconds: batch window (2 = low-latency transcription;
    # the platform's documented default is about 35), interim hypotheses, keepalive period.
    transcript_batch_seconds: float = 2.0
    transcript_partials: bool = True
    transcript_keepalive_seconds: float = 300.0
    # Genesys' overall sentiment arrives this long after the call ends (it is computed post-call).
    postcall_sentiment_seconds: float = 60.0
    # The assumption the simulator used to make: a score on the sentiment topic during the call.
    live_sentiment_topic: bool = False

    def __post_init__(self) -> None:
        positive = {
            "token_lifetime_seconds": self.token_lifetime_seconds,
            "reading_interval_seconds": self.reading_interval_seconds,
            "sour_seconds": self.sour_seconds,
            "speed": self.speed,
            "idle_close_seconds": self.idle_close_seconds,
            "close_1001_every_seconds": self.close_1001_every_seconds,
            "drop_1006_every_seconds": self.drop_1006_every_seconds,
            "token_429_every_n": self.token_429_every_n,
            "notifications_heartbeat_seconds": self.notifications_heartbeat_seconds,
            "channel_lifetime_seconds": self.channel_lifetime_seconds,
            "max_channels": self.max_channels,
            "max_topics_per_channel": self.max_topics_per_channel,
            "transcript_batch_seconds": self.transcript_batch_seconds,
            "transcript_keepalive_seconds": self.transcript_keepalive_seconds,
        }
        for name, value in positive.items():
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be positive")
        if self.min_heartbeat_seconds < 0 or self.retry_after_seconds < 0:
            raise ValueError("min_heartbeat_seconds and retry_after_seconds must not be negative")
        if self.sentiment_scale not in ("unit", "percent"):
            raise ValueError("sentiment_scale must be 'unit' or 'percent'")
        if not (self.postcall_sentiment_seconds >= 0 and math.isfinite(self.postcall_sentiment_seconds)):
            raise ValueError("postcall_sentiment_seconds must not be negative")
        if self.socket_closing_seconds < 0:
            raise ValueError("socket_closing_seconds must not be negative")
        for name in ("forbidden_topics", "current_user_topics", "forbidden_permissions"):
            if isinstance(getattr(self, name), str):
                raise TypeError(f"{name} is a sequence, not one string")
        if isinstance(self.scenarios, str):
            raise TypeError("scenarios is a sequence of names, not one string")
        from genesys_cloud_simulator.org_config import ORG_TRAPS

        unknown = [t for t in self.org_traps if t not in ORG_TRAPS]
        if isinstance(self.org_traps, str) or unknown:
            raise ValueError(f"unknown org trap(s) {unknown or self.org_traps!r}; known: {', '.join(ORG_TRAPS)}")
        if self.org_max_page_size < 1:
            raise ValueError("org_max_page_size must be positive")
