"""One exporter instance: it owns its registry, state, token manager, source and web server.

Nothing lives at module level, so tests (and the demo) can run several
exporters in one process without their metrics leaking into each other.

Life cycle (`Exporter.run`): the web server, then the core tasks (token, source, expiry, names)
in one task group. A core task that stops ends the whole run with `TaskCrashed` after one log
line, and the command exits non-zero: an exporter without its stream must not keep answering
`/-/healthy`, or no orchestrator would ever restart it. Cancelling the run (SIGTERM) closes
every socket with 1000 and the web server within a bounded time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx

from genesys_sentiment_exporter.analysis import build_analyzer
from genesys_sentiment_exporter.audit_shell import audit_loop_for
from genesys_sentiment_exporter.config import Settings, parse_listen_address
from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.lifecycle import run_tasks
from genesys_sentiment_exporter.logs import Redactor
from genesys_sentiment_exporter.metrics import ExporterCollector, ExporterInfo, ExtraMetrics, new_registry
from genesys_sentiment_exporter.names import NameResolver
from genesys_sentiment_exporter.oauth import Token, TokenManager
from genesys_sentiment_exporter.sources import Source
from genesys_sentiment_exporter.stream_state import StreamState
from genesys_sentiment_exporter.tracker import AgentTracker, TrackerLimits
from genesys_sentiment_exporter.web import WebLimits, WebServer, build_app
from genesys_sentiment_exporter.web_config import WebConfig, load_web_config

if TYPE_CHECKING:
    from genesys_sentiment_exporter.audiohook.server import AudioHookSource

log = logging.getLogger("exporter")


STOP_SECONDS = 1.5  # the whole shutdown, sockets and web server, stays under the 2 s an orchestrator allows


def make_source(
    settings: Settings,
    tokens: TokenManager,
    ingest: Ingest,
    stream: StreamState,
    http: httpx.AsyncClient | None = None,
) -> Source:
    if settings.stream_source == "notifications":
        from genesys_sentiment_exporter.sources.notifications import NotificationsSource

        return NotificationsSource(
            api_base_url=settings.resolved_api_base_url(),
            tokens=tokens,
            ingest=ingest,
            stream=stream,
            http=http or tokens.http,
            queue_ids=settings.queue_id,
            agent_ids=settings.agent_id,
            grace_seconds=settings.grace_seconds,
            idle_seconds=settings.idle_seconds,
            sentiment_scale=settings.sentiment_scale,
            max_channels=settings.notifications_max_channels,
            topics_per_channel=settings.notifications_topics_per_channel,
            requests_per_minute=settings.api_requests_per_minute,
            probe_seconds=settings.notifications_channel_probe_seconds,
            ssl_context=ssl.create_default_context(),
            analyzer=build_analyzer(settings.sentiment_analyzer, settings.analyzer_options()),
            score_parties=frozenset(settings.score_parties),
            postcall_hold_seconds=settings.postcall_hold_seconds,
            max_overlap_seconds=settings.rollover_max_overlap_seconds,
        )
    from genesys_sentiment_exporter.sources.analytics_websocket import AnalyticsWebSocketSource

    return AnalyticsWebSocketSource(
        api_base_url=settings.resolved_api_base_url(),
        tokens=tokens,
        ingest=ingest,
        stream=stream,
        queue_ids=settings.queue_id,
        agent_ids=settings.agent_id,
        heartbeat_seconds=settings.heartbeat_seconds,
        ssl_context=ssl.create_default_context(),
        max_overlap_seconds=settings.rollover_max_overlap_seconds,
    )


@dataclass(frozen=True)
class HeapPolicy:
    """The cyclic collector, tuned for a loop that must not stall (issue 13, freshness).

    CPython's full (generation 2) collection walks every tracked object: ~55 000 from the imports
    alone, plus two per agent (its `AgentState` and its window). At 10 000 agents that was 37-84 ms
    with the stream's loop stopped, started whenever enough objects had survived two young
    collections (a new window per call: every 10-20 s at 10 000 events/s), and it alone delayed
    up to ~0.5 % of all readings by tens of ms. So, once the process is built: one collection, then
    `gc.freeze()` (the start-up heap is never walked again; it is never garbage either), and the
    automatic full collection replaced by one every `full_every` seconds, which walks only what
    came after start-up (2-5 ms at 10 000 agents, against 25-37 ms unfrozen, in-process). Young
    collections (the per-frame dicts) stay as CPython runs them: well under a millisecond each.

    Process-wide, so it is the command's to apply (`cli.serve`), not every `Exporter` a test builds.
    """

    full_every: float = 600.0
    rare: int = 1_000_000  # generation-1 collections before an automatic full one: ~never

    def settle(self) -> None:
        gc.collect()
        gc.freeze()
        young, middle, _full = gc.get_threshold()
        gc.set_threshold(young, middle, self.rare)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.full_every)
            gc.collect()


class Exporter:
    def __init__(self, settings: Settings, redactor: Redactor | None = None) -> None:
        self.settings = settings
        self.redactor = redactor or Redactor()
        secret = settings.client_secret.get_secret_value()
        self.redactor.add(secret)
        # The token request's Basic header carries the secret in base64: an echo of it is a leak too.
        self.redactor.add(base64.b64encode(f"{settings.client_id}:{secret}".encode()).decode("ascii"))
        self.identity = settings.identity()
        self.tracker = AgentTracker(
            TrackerLimits(
                window_size=settings.window_size,
                grace_seconds=settings.grace_seconds,
                idle_seconds=settings.idle_seconds,
                max_agents=settings.max_agents,
            ),
            label_id=self.identity.label if self.identity.mode == "pseudonymous" else None,
        )
        self.ingest = Ingest(self.tracker)
        if "agent" in settings.score_parties and settings.stream_source == "notifications":
            # Opt-in: the agent's own words in windows of their own (party="agent"); see README on why.
            self.ingest.add_party(AgentTracker(self.tracker.limits, label_id=self.tracker.label_id, party="agent"))
        self.stream = StreamState()
        # Certificate verification stays on (httpx default); plain http was allowed only for loopback.
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
        self.tokens = TokenManager(
            settings.resolved_login_base_url(),
            settings.client_id,
            settings.client_secret,
            self.http,
            margin=settings.token_refresh_margin_seconds,
            on_token=self._new_token,
        )
        self.source = make_source(settings, self.tokens, self.ingest, self.stream, self.http)
        self.names = self._name_resolver()
        extras: list[ExtraMetrics] = [self.source]
        self.audiohook = self._audiohook()
        if self.audiohook is not None:
            extras.append(self.audiohook)
        extras.append(ExporterInfo(self.identity.mode, settings.resolved_ui_url(), settings.web_external_url))
        if self.names is not None:
            extras.append(self.names)
        self.audit = audit_loop_for(self)  # genesys_queue_sentiment_coverage_info on a slow timer
        if self.audit is not None:
            extras.append(self.audit)
        self.collector = ExporterCollector(
            tracker=self.tracker,
            ingest=self.ingest,
            stream=self.stream,
            tokens=self.tokens,
            source_name=self.source.name,
            ready=lambda: self.ready_reason() is None,
            extras=extras,
            per_agent_series=self.identity.per_agent_series,
        )
        self.registry = new_registry(self.collector)
        host, port = parse_listen_address(settings.web_listen_address)
        web_config = load_web_config(settings.web_config_file) if settings.web_config_file else WebConfig()
        web_limits = WebLimits(
            max_requests=settings.web_max_requests,
            max_connections=settings.web_max_connections,
            read_timeout=settings.web_read_timeout,
            write_timeout=2 * settings.web_read_timeout,
        )
        app = build_app(
            self.registry,
            settings.web_telemetry_path,
            self.ready_reason,
            self.expire,
            web_config.basic_auth_users,
            self.conversation_url,
            self.audiohook.install if self.audiohook is not None else None,
            web_limits,
            self.collector.prepare,
        )
        self.web = WebServer(app, host, port, web_config.tls, web_limits)
        self._life: asyncio.Task[None] | None = None

    def conversation_url(self, label: str) -> str | None:
        """The Genesys Cloud page of the live call of the agent whose `agent_id` label is `label`.

        Monitor, coach and barge are on that page (help.mypurecloud.com, "Monitor, coach, and barge
        into live voice interactions"). Not in `none` mode: there is no per-agent label to ask with.
        """
        ui = self.settings.resolved_ui_url()
        if not ui or not self.identity.per_agent_series:
            return None
        agent = self.tracker.agents.get(label) if self.identity.mode == "plain" else None
        if agent is None and self.identity.mode == "pseudonymous":
            agent = next((a for a in list(self.tracker.agents.values()) if a.label_id == label), None)
        if agent is None or not agent.conversation_id:
            return None
        return f"{ui}/directory/#/engage/admin/interactions/{quote(agent.conversation_id, safe='')}"

    def _audiohook(self) -> AudioHookSource | None:
        if not self.settings.audiohook:
            return None
        from genesys_sentiment_exporter.audiohook.server import build_audiohook

        return build_audiohook(self.settings, self.ingest.parties, self.redactor)

    def _name_resolver(self) -> NameResolver | None:
        """Names through the notifications source's REST client (its budget), a fifth of the budget at most."""
        rest = self.source.rest
        if not self.settings.resolve_agent_names or rest is None or not self.identity.per_agent_series:
            return None
        agents = self.tracker.agents

        def tracked() -> Iterator[tuple[str, str, str]]:
            for agent in list(agents.values()):
                yield agent.agent_id, agent.label_id, agent.queue_id

        return NameResolver(
            rest,
            tracked,
            agents=self.identity.names_allowed,
            requests_per_minute=max(1.0, self.settings.api_requests_per_minute / 5),
        )

    def _new_token(self, token: Token) -> None:
        self.redactor.add_token(token.value)

    def expire(self) -> None:
        now = time.monotonic()
        for tracker in self.ingest.parties.values():
            tracker.expire(now)

    def ready_reason(self) -> str | None:
        reasons = [r for r in (self.tokens.ready_reason(), self.stream.ready_reason()) if r]
        # The reasons quote what servers answered; an answer may echo the request (and its token).
        return self.redactor.scrub("; ".join(reasons)) if reasons else None

    @property
    def metrics_url(self) -> str:
        return self.web.url + self.settings.web_telemetry_path

    def _jobs(self, serving: bool) -> dict[str, Callable[[], Awaitable[None]]]:
        jobs: dict[str, Callable[[], Awaitable[None]]] = {"oauth": self.tokens.run, "source": self.source.run}
        if serving:  # what only the web server's pages need
            jobs["expiry"] = self._expiry
            if self.names is not None:
                jobs["names"] = self.names.run
            if self.audiohook is not None:
                jobs["audiohook"] = self.audiohook.run
            if self.audit is not None:
                jobs["audit"] = self.audit.run
        return jobs

    async def run(
        self,
        *,
        serve: bool = True,
        duration: float | None = None,
        started: Callable[[], None] | None = None,
        heap: HeapPolicy | None = None,
    ) -> None:
        """Run until cancelled, for `duration` seconds, or until a core task stops (`TaskCrashed`).

        `serve=False` (check) runs the token and source tasks only, with no web server.
        An `OSError` from binding the listen address propagates before anything else starts.
        `heap`: the process's collector is this exporter's to tune (the command, not tests).
        """
        try:
            if serve:
                await self.web.start()
                log.info("listening on %s (source %s)", self.web.url, self.source.name)
            jobs = self._jobs(serve)
            if heap is not None:
                heap.settle()
                jobs["gc"] = heap.run
            if started is not None:
                started()
            await run_tasks(jobs, duration)
        finally:
            self.stream.connected = False
            if serve:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(STOP_SECONDS - 0.5):
                        await self.web.stop()  # a stalled scrape is cut, not waited for
            await self.http.aclose()

    @property
    def running(self) -> bool:
        """The background run (`start`) is alive: no core task has stopped, since one that stops ends it."""
        return self._life is not None and not self._life.done()

    async def start(self) -> None:
        """`run()` in the background, once listening (tests and embedders); `stop()` ends it."""
        listening = asyncio.Event()
        self._life = asyncio.create_task(self.run(started=listening.set), name="exporter")
        ready = asyncio.create_task(listening.wait())
        await asyncio.wait({self._life, ready}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._life.done():
            self._life.result()  # the listen error

    async def _expiry(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self.expire()

    async def stop(self) -> None:
        """Cancel the background run; a task crash that ended it is raised here."""
        life, self._life = self._life, None
        if life is None:
            await self.http.aclose()
            return
        life.cancel()
        try:
            await life
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # stop() itself was cancelled: not ours to swallow
