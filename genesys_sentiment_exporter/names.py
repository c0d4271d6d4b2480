"""Agent and queue names, so that a supervisor is paged with "Jane Doe in Billing", not two GUIDs.

Names come from `GET /api/v2/users/{id}` and `GET /api/v2/routing/queues/{id}` through the notifications
source's REST client, so they share its request budget and its 429 handling; on top of that the
resolver takes at most a fifth of the budget (`NameBudget`) so that name look-ups never delay the
sentiment-topic subscriptions a new call needs. Names are exported as `genesys_agent_info` and
`genesys_queue_info` for the agents and queues currently tracked: the Prometheus rules join them into
every alert (`* on (job, agent_id) group_left (agent_name)`).

"On by default when permitted": a 403 on a kind (the OAuth client's role lacks the user or queue
view permission) stops look-ups of that kind, logs once what to grant, and is counted, instead of
asking again for every agent. A 404 is remembered as "no name" for the cache lifetime. The cache is
pure (`NameCache`: fed ids and `now`, returns what to look up), the asyncio loop around it is short.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from prometheus_client.metrics_core import Metric

from genesys_sentiment_exporter import catalogue
from genesys_sentiment_exporter.catalogue import LookupResult
from genesys_sentiment_exporter.families import counter, info

log = logging.getLogger("exporter.names")

Kind = Literal["agent", "queue"]
PATHS: dict[Kind, str] = {"agent": "/api/v2/users/{}", "queue": "/api/v2/routing/queues/{}"}
PERMISSION_HINT: dict[Kind, str] = {
    "agent": "the user directory view permission (directory:user:view)",
    "queue": "the queue view permission (routing:queue:view)",
}
DEFAULT_TTL = 6 * 3600.0  # names change rarely; a renamed agent shows the new name within hours
RETRY_AFTER_ERROR = 60.0
MAX_NAME_LENGTH = 128  # a label value, not a biography


@dataclass
class _Entry:
    name: str = ""  # "" = no name (unknown, or not resolved yet)
    expires: float = 0.0
    pending: bool = False


@dataclass
class NameCache:
    """Pure: which ids to look up now, and what is known. Bounded: ids not in use are forgotten."""

    ttl: float = DEFAULT_TTL
    max_entries: int = 50_000
    entries: dict[tuple[Kind, str], _Entry] = field(default_factory=dict)
    denied: set[Kind] = field(default_factory=set)

    def wanted(self, kind: Kind, ids: Iterable[str], now: float) -> list[str]:
        """Ids of `kind` in use that have no fresh entry and no look-up under way; marks them pending."""
        if kind in self.denied:
            return []
        out = []
        for id_ in ids:
            key = (kind, id_)
            entry = self.entries.get(key)
            if entry is None:
                if len(self.entries) >= self.max_entries:
                    continue
                entry = self.entries[key] = _Entry()
            elif entry.pending or entry.expires > now:
                continue
            entry.pending = True
            out.append(id_)
        return out

    def resolved(self, kind: Kind, id_: str, name: str | None, now: float, retry_after: float | None = None) -> None:
        entry = self.entries.setdefault((kind, id_), _Entry())
        entry.pending = False
        if name is not None:
            entry.name = name[:MAX_NAME_LENGTH]
        entry.expires = now + (self.ttl if retry_after is None else retry_after)

    def forget_unused(self, kind: Kind, in_use: set[str]) -> None:
        for key in [k for k, e in self.entries.items() if k[0] == kind and k[1] not in in_use and not e.pending]:
            del self.entries[key]

    def name(self, kind: Kind, id_: str) -> str:
        entry = self.entries.get((kind, id_))
        return entry.name if entry is not None else ""


class NameBudget:
    """Pure token bucket: names may use `per_minute` requests a minute, never more."""

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.tokens = 1.0
        self.updated: float | None = None

    def wait(self, now: float) -> float:
        if self.updated is not None:
            self.tokens = min(max(1.0, self.rate * 10), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class Rest(Protocol):
    async def request(self, method: str, path: str, body: Any = None) -> Any: ...


class NameResolver:
    """Keeps names of the tracked agents and their queues; `metrics()` exports them."""

    def __init__(
        self,
        rest: Rest,
        tracked: Callable[[], Iterable[tuple[str, str, str]]],
        *,
        agents: bool = True,
        requests_per_minute: float = 60.0,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`tracked()` yields (user id, agent_id label, queue id) of every tracked agent."""
        self.rest = rest
        self.tracked = tracked
        self.kinds: tuple[Kind, ...] = ("agent", "queue") if agents else ("queue",)
        self.cache = NameCache()
        self.budget = NameBudget(requests_per_minute)
        self.interval = interval
        self.clock = clock
        self.lookups: Counter[tuple[Kind, LookupResult]] = Counter()

    async def _lookup(self, kind: Kind, id_: str) -> None:
        while (delay := self.budget.wait(self.clock())) > 0:
            await asyncio.sleep(delay)
        try:
            response = await self.rest.request("GET", PATHS[kind].format(id_))
        except Exception as exc:  # a name is never worth a crash
            self.lookups[(kind, LookupResult.ERROR)] += 1
            log.debug("cannot look up the %s name of %s: %s", kind, id_, type(exc).__name__)
            self.cache.resolved(kind, id_, None, self.clock(), RETRY_AFTER_ERROR)
            return
        status = response.status_code
        if status == 403:
            self.lookups[(kind, LookupResult.FORBIDDEN)] += 1
            if kind not in self.cache.denied:
                self.cache.denied.add(kind)
                log.warning(
                    "%s names are off: %s answered 403; grant the OAuth client's role %s, or pass "
                    "--no-resolve-agent-names to silence this",
                    kind,
                    PATHS[kind].format("{id}"),
                    PERMISSION_HINT[kind],
                )
            self.cache.resolved(kind, id_, None, self.clock())
            return
        if status == 404:
            self.lookups[(kind, LookupResult.NOT_FOUND)] += 1
            self.cache.resolved(kind, id_, None, self.clock())
            return
        name = None
        if status == 200:
            try:
                body = response.json()
            except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
                body = None
            candidate = body.get("name") if isinstance(body, dict) else None
            if isinstance(candidate, str):  # a lone surrogate cannot be encoded: it would fail every scrape
                candidate = candidate.encode("utf-8", "replace").decode("utf-8")
            name = candidate.strip() if isinstance(candidate, str) and candidate.strip() else None
        if name is None:
            self.lookups[(kind, LookupResult.ERROR)] += 1
            self.cache.resolved(kind, id_, None, self.clock(), RETRY_AFTER_ERROR)
            return
        self.lookups[(kind, LookupResult.OK)] += 1
        self.cache.resolved(kind, id_, name, self.clock())

    def _in_use(self) -> dict[Kind, set[str]]:
        users, queues = set(), set()
        for user_id, _label, queue_id in self.tracked():
            users.add(user_id)
            queues.add(queue_id)
        return {"agent": users, "queue": queues}

    async def step(self) -> None:
        """One round: forget ids no longer tracked, look up the new ones (one at a time)."""
        in_use = self._in_use()
        for kind in self.kinds:
            self.cache.forget_unused(kind, in_use[kind])
            for id_ in self.cache.wanted(kind, sorted(in_use[kind]), self.clock()):
                if kind in self.cache.denied:  # a 403 during this round: no more asking
                    self.cache.resolved(kind, id_, None, self.clock())
                    continue
                await self._lookup(kind, id_)

    async def run(self) -> None:
        while True:
            await self.step()
            await asyncio.sleep(self.interval)

    def metrics(self) -> Iterator[Metric]:
        seen_queues: set[str] = set()
        agents = info(catalogue.AGENT_NAME)
        queues = info(catalogue.QUEUE_NAME)
        for user_id, label, queue_id in self.tracked():
            if "agent" in self.kinds and (name := self.cache.name("agent", user_id)):
                agents.add_metric([label], {"agent_name": name})
            if queue_id not in seen_queues and (name := self.cache.name("queue", queue_id)):
                seen_queues.add(queue_id)
                queues.add_metric([queue_id], {"queue_name": name})
        if "agent" in self.kinds:
            yield agents
        yield queues
        yield counter(catalogue.NAME_LOOKUPS, self.lookups)
