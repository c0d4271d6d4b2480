"""Stream sources. Each is a pure session core under a thin asyncio shell (see supervisor.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from prometheus_client.core import Metric

if TYPE_CHECKING:
    from genesys_sentiment_exporter.sources.notifications_rest import PlatformRest


class Source(Protocol):
    """What the exporter's life cycle, `/metrics` and `check` need from a source: nothing is sniffed."""

    @property
    def name(self) -> str: ...

    @property
    def rest(self) -> PlatformRest | None:
        """The platform REST client whose budget name look-ups share (None: the source has none)."""

    async def run(self) -> None:
        """Feed `Ingest` until cancelled; closes its sockets with 1000 on the way out."""

    def metrics(self) -> Iterable[Metric]:
        """The source's own families (may be none)."""

    def subscription_report(self) -> list[tuple[bool, str, str]]:
        """For `check`: (ok, what, text) lines about what the platform permitted (may be none)."""
