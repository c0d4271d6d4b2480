"""The audit's I/O: GETs through the REST client (its budget and 429 handling), the CLI, the slow timer.

`audit.py` decides; this module only fetches what it asks for, in its two rounds, and presents the
report: lines or JSON for `audit` and `check`, and `genesys_queue_sentiment_coverage_info` for `run`
(refreshed every `--audit.interval`, so a dashboard and an alert show a queue that lost analysis after
someone edited a program or a queue).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, overload
from urllib.parse import urlsplit

import httpx
from prometheus_client.metrics_core import Metric

from genesys_sentiment_exporter import catalogue
from genesys_sentiment_exporter.analysis import build_analyzer
from genesys_sentiment_exporter.audit import (
    GENESYS_NATIVE,
    Analyzer,
    Answer,
    Read,
    Report,
    evaluate,
    first_reads,
    merge_pages,
    program_reads,
)
from genesys_sentiment_exporter.catalogue import AuditResult, TokenResult
from genesys_sentiment_exporter.config import Settings
from genesys_sentiment_exporter.families import counter, gauge, info
from genesys_sentiment_exporter.logs import Redactor
from genesys_sentiment_exporter.names import NameBudget
from genesys_sentiment_exporter.oauth import TokenError, TokenManager
from genesys_sentiment_exporter.sources.notifications_rest import PlatformRest

if TYPE_CHECKING:
    from genesys_sentiment_exporter.app import Exporter

log = logging.getLogger("exporter.audit")

MAX_PAGES = 50  # 5 000 queues or policies: beyond that the budget matters more than completeness
PERMISSION = re.compile(r"[A-Za-z]+:[A-Za-z]+:[A-Za-z]+")


class Rest(Protocol):
    async def request(self, method: str, path: str, body: Any = None) -> httpx.Response: ...


def missing_permissions(body: Any) -> tuple[str, ...]:
    """Permission names a 403 body gives (`messageParams` or the message text), if any."""
    if not isinstance(body, dict):
        return ()
    found: list[str] = []
    params = body.get("messageParams")
    if isinstance(params, dict):
        for value in params.values():
            found.extend(PERMISSION.findall(str(value)))
    message = body.get("message")
    if not found and isinstance(message, str):
        found.extend(PERMISSION.findall(message))
    return tuple(dict.fromkeys(found))


def _next_path(body: Any, base_path: str) -> str | None:
    """The next page's path from `nextUri` (relative or absolute); None on the last page."""
    if not isinstance(body, dict):
        return None
    uri = body.get("nextUri")
    if not isinstance(uri, str) or not uri:
        return None
    parts = urlsplit(uri)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    if not path.startswith("/api/v2/") or path == base_path:
        return None
    return path


async def fetch(rest: Rest, read: Read, pace: Callable[[], Any] | None = None) -> Answer:
    """One read, every page of it; never raises (an error is an Answer with status 0)."""
    pages: list[Any] = []
    path: str | None = read.path
    for _ in range(MAX_PAGES if read.paged else 1):
        if path is None:
            break
        if pace is not None:
            await pace()
        try:
            response = await rest.request("GET", path)
        except Exception as exc:  # the REST client gave up (network, repeated 429): one line, not a crash
            return Answer(0, None, type(exc).__name__)
        try:
            body = response.json()
        except (ValueError, RecursionError):  # not JSON, or nested beyond the parser's depth
            body = None
        if response.status_code != 200:
            return Answer(response.status_code, body, "", missing_permissions(body))
        if body is None:
            return Answer(0, None, "the answer is not JSON")
        pages.append(body)
        path = _next_path(body, path) if read.paged else None
    return Answer(200, merge_pages(pages) if read.paged else pages[0])


async def run_audit(
    rest: Rest,
    queue_ids: Sequence[str],
    all_queues: bool,
    analyzer: Analyzer = GENESYS_NATIVE,
    pace: Callable[[], Any] | None = None,
) -> Report:
    queue_ids = list(queue_ids)  # one snapshot for the whole run (WatchedQueues changes as calls come and go)
    answers: dict[str, Answer] = {}
    for read in first_reads(queue_ids, all_queues):
        answers[read.key] = await fetch(rest, read, pace)
    for read in program_reads(answers, queue_ids, all_queues):
        answers[read.key] = await fetch(rest, read, pace)
    return evaluate(answers, queue_ids, all_queues, analyzer)


def print_report(report: Report, output: str, out: Any = None) -> None:
    """`text`: one line per finding and a summary; `json`: one document for pipelines."""
    if output == "json":
        print(json.dumps(report.as_json(), indent=2), file=out, flush=True)
        return
    for finding in report.findings:
        print(finding.line(), file=out, flush=True)
    counts = report.counts()
    verdicts = Counter(q.verdict for q in report.queues)
    summary = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
    print(
        f"audit: {counts['ok']} ok, {counts['WARN']} warnings, {counts['FAIL']} failed; queues: {summary or 'none'}",
        file=out,
        flush=True,
    )


class WatchedQueues(Sequence[str]):
    """The queues `run` watches: the `--queue-id` ones, and those its tracked agents take calls in (an
    `--agent-id` deployment names no queue), at most `cap` more, so the audit covers what is monitored."""

    def __init__(self, explicit: Sequence[str], tracked: Callable[[], Iterable[str]], cap: int = 100) -> None:
        self.explicit = list(explicit)
        self.tracked = tracked
        self.cap = cap

    def _ids(self) -> list[str]:
        extra = sorted({q for q in self.tracked() if q and q not in self.explicit})[: self.cap]
        return self.explicit + extra

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids())

    def __len__(self) -> int:
        return len(self._ids())

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._ids()[index]


class AuditLoop:
    """Runs the audit every `interval` seconds within a share of the REST budget; exports the verdicts."""

    def __init__(
        self,
        rest: Rest,
        queue_ids: Sequence[str],
        all_queues: bool,
        analyzer: Analyzer = GENESYS_NATIVE,
        *,
        interval: float = 3600.0,
        requests_per_minute: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.rest = rest
        self.queue_ids = queue_ids  # may be live (WatchedQueues): read once per run
        self.all_queues = all_queues
        self.analyzer = analyzer
        self.interval = interval
        self.budget = NameBudget(requests_per_minute)
        self.clock = clock
        self.wall = wall
        self.report: Report | None = None
        self.last_success = 0.0
        self.runs: Counter[AuditResult] = Counter()

    async def _pace(self) -> None:
        while (delay := self.budget.wait(self.clock())) > 0:
            await asyncio.sleep(delay)

    async def step(self) -> None:
        try:
            report = await run_audit(self.rest, self.queue_ids, self.all_queues, self.analyzer, self._pace)
        except Exception:  # the exporter keeps running; the metric ages and the counter says why
            self.runs[AuditResult.ERROR] += 1
            log.exception("the configuration audit failed")
            return
        self.runs[AuditResult.SUCCESS] += 1
        self.report = report
        self.last_success = self.wall()
        lost = [q for q in report.queues if q.verdict == "lost"]
        for queue in lost:
            log.warning(
                "queue %s (%s) will not be analysed: %s; run `audit` for the fix",
                queue.queue_name or "?",
                queue.queue_id,
                queue.reason,
            )

    async def run(self) -> None:
        while True:
            await self.step()
            await asyncio.sleep(self.interval)

    def metrics(self) -> Iterator[Metric]:
        coverage = info(catalogue.QUEUE_COVERAGE)
        findings = gauge(catalogue.AUDIT_FINDINGS)
        if self.report is not None:
            for queue in self.report.queues:
                coverage.add_metric([queue.queue_id, queue.queue_name, queue.verdict, queue.reason], {})
            for level, count in self.report.counts().items():
                findings.add_metric([level], count)
        yield coverage
        yield findings
        if self.last_success:
            yield gauge(catalogue.AUDIT_LAST_SUCCESS, self.last_success)
        yield counter(catalogue.AUDIT_RUNS, self.runs)


# -- wiring: `audit`, `check` and `run` ------------------------------------------------------------


async def first_token(tokens: TokenManager, attempts: int = 4) -> str | None:
    """A token for a one-shot command, or why not (a rejected client is not retried)."""
    for attempt in range(attempts):
        try:
            token = await tokens.fetch()
        except TokenError as exc:
            tokens.requests[exc.result] += 1
            tokens.last_error = str(exc)
            if exc.result in (TokenResult.INVALID_CLIENT, TokenResult.UNAUTHORIZED_CLIENT) or attempt == attempts - 1:
                return str(exc)
            await asyncio.sleep(exc.retry_after if exc.retry_after is not None else 2.0**attempt)
            continue
        tokens.requests[TokenResult.SUCCESS] += 1
        if tokens.on_token is not None:
            tokens.on_token(token)
        tokens.token = token
        return None
    return tokens.last_error


def analyzer_for(settings: Settings) -> Analyzer:
    """Who scores the live calls: Genesys' own sentiment on the analytics stream; on the Notifications
    source the exporter scores transcripts with its own analyzer (`--sentiment-analyzer`). With an
    AudioHook Monitor server (`--source ...,audiohook`) the queues must also stream their audio."""
    audio = settings.audiohook
    if settings.stream_source == "analytics-websocket":
        return Analyzer(GENESYS_NATIVE.name, native=True, audio_monitoring=audio)
    try:
        analyzer = build_analyzer(settings.sentiment_analyzer, settings.analyzer_options())
    except Exception as exc:  # e.g. the onnx extra is not installed: the audit still runs, without this check
        log.warning("cannot load the %s analyzer to check its languages: %s", settings.sentiment_analyzer, exc)
        return Analyzer(settings.sentiment_analyzer, audio_monitoring=audio)
    return Analyzer(analyzer.name, can_score=analyzer.supports, audio_monitoring=audio)


def rest_for(settings: Settings, http: httpx.AsyncClient, tokens: TokenManager, source: object = None) -> Rest:
    """The source's REST client when it has one (one budget for everything), else a new one."""
    rest = getattr(source, "rest", None)
    if isinstance(rest, PlatformRest):
        return rest
    return PlatformRest(settings.resolved_api_base_url(), http, tokens, settings.api_requests_per_minute)


async def audit_command(settings: Settings, output: str, redactor: Redactor | None = None) -> int:
    """`audit`: exit 1 on any FAIL (or no token), 0 otherwise."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as http:
        tokens = TokenManager(
            settings.resolved_login_base_url(),
            settings.client_id,
            settings.client_secret,
            http,
            on_token=(lambda t: redactor.add(t.value)) if redactor is not None else None,
        )
        error = await first_token(tokens)
        if error is not None:
            print(f"FAIL token            {error}", flush=True)
            return 1
        rest = rest_for(settings, http, tokens)
        report = await run_audit(rest, settings.queue_id, settings.audit_all_queues, analyzer_for(settings))
    print_report(report, output)
    return 1 if report.failed else 0


async def audit_at_start(exporter: Exporter) -> bool:
    """`check` opens with the audit; True when it found a failure. Its lines come first in the output."""
    settings = exporter.settings
    error = await first_token(exporter.tokens)
    if error is not None:
        return False  # `check` itself reports the token problem next
    rest = rest_for(settings, exporter.http, exporter.tokens, exporter.source)
    report = await run_audit(rest, settings.queue_id, settings.audit_all_queues, analyzer_for(settings))
    print_report(report, "text")
    return report.failed


def audit_loop_for(exporter: Exporter) -> AuditLoop | None:
    """The slow timer behind genesys_queue_sentiment_coverage_info; a tenth of the REST budget at most."""
    settings = exporter.settings
    if settings.audit_interval_seconds <= 0:
        return None
    return AuditLoop(
        rest_for(settings, exporter.http, exporter.tokens, exporter.source),
        WatchedQueues(settings.queue_id, lambda: (a.queue_id for a in list(exporter.tracker.agents.values()))),
        settings.audit_all_queues,
        analyzer_for(settings),
        interval=settings.audit_interval_seconds,
        requests_per_minute=max(1.0, settings.api_requests_per_minute / 10),
    )
