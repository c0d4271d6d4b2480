"""The simulated Genesys Cloud: login host and API host on one loopback port.

It is what the demo, the tests and the benchmarks talk to instead of a real org.
Besides serving the protocol it exposes control methods (publish, close, drop,
expire tokens, fail token requests) so a test can provoke each failure the
design document describes at the moment it chooses.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

from aiohttp import web

from genesys_cloud_simulator.analytics_ws import WS_PATH, AnalyticsWebSocketEndpoint
from genesys_cloud_simulator.config import SimulatorConfig
from genesys_cloud_simulator.notifications import NotificationsEndpoint
from genesys_cloud_simulator.oauth import OAuthEndpoint, TokenStore
from genesys_cloud_simulator.org_config import OrgConfigEndpoint
from genesys_cloud_simulator.scenarios import CallEvent, ScenarioEngine
from genesys_cloud_simulator.subscription import wire_event

log = logging.getLogger("genesys_cloud_simulator")

TOKEN_PATH = "/oauth/token"
SCENARIO_TICK_SECONDS = 0.1


def _require_loopback(host: str) -> None:
    """The simulator accepts well-known demo credentials: never expose it beyond this machine."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the simulator only listens on loopback addresses, not {host!r}")


class SimulatedGenesysCloud:
    """An aiohttp application speaking OAuth client-credentials and the analytics WebSocket.

    Control methods must be called from the event loop the simulator runs on.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        # Validate scenario names now rather than in a background task that would die quietly.
        self._engine: ScenarioEngine | None = None
        if self.config.scenarios:
            self._engine = ScenarioEngine(
                self.config.scenarios,
                seed=self.config.seed,
                agents=self.config.agents,
                reading_interval=self.config.reading_interval_seconds,
                sour_seconds=self.config.sour_seconds,
            )
        self._tokens = TokenStore()
        self._oauth = OAuthEndpoint(self.config, self._tokens)
        self._analytics = AnalyticsWebSocketEndpoint(self.config, self._tokens)
        self.notifications = NotificationsEndpoint(self.config, self._tokens)
        self.org = OrgConfigEndpoint(self.config, self._tokens)  # what `audit` reads (org_config.py)
        self.notifications.queue_body = self.org.queue
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._paused = False
        self.scenario_elapsed = 0.0  # scenario seconds played so far
        self.events_published = 0

    # -- lifecycle ---------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(TOKEN_PATH, self._oauth.handle)
        app.router.add_get(WS_PATH, self._analytics.handle)
        self.notifications.add_routes(app)
        self.org.add_routes(app)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        _require_loopback(host)
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        url_host = f"[{host}]" if ":" in host else host
        self._base_url = f"http://{url_host}:{bound_port}"

        self.notifications.start()
        if self._engine is not None:
            self._tasks.append(asyncio.create_task(self._drive(self._engine)))
        if self.config.close_1001_every_seconds is not None:
            self._tasks.append(
                asyncio.create_task(self._every(self.config.close_1001_every_seconds, self.close_streams))
            )
        if self.config.drop_1006_every_seconds is not None:
            self._tasks.append(asyncio.create_task(self._every(self.config.drop_1006_every_seconds, self.drop_streams)))
        log.info(
            "simulated Genesys Cloud listening on %s (scenarios: %s)",
            self._base_url,
            ", ".join(self.config.scenarios) or "none",
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._runner is not None:
            await self._analytics.close_all(1001, "server shutdown")
            await self.notifications.stop()
            await self._runner.cleanup()
            self._runner = None
            log.info("simulated Genesys Cloud stopped")

    async def __aenter__(self) -> SimulatedGenesysCloud:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """Serves as both the login host and the API host, e.g. http://127.0.0.1:PORT."""
        if self._base_url is None:
            raise RuntimeError("simulator not started")
        return self._base_url

    @property
    def websocket_url(self) -> str:
        return "ws" + self.base_url.removeprefix("http") + WS_PATH

    # -- counters for tests --------------------------------------------------------------

    @property
    def tokens_issued(self) -> int:
        return self._tokens.issued

    @property
    def token_requests(self) -> int:
        return self._oauth.requests

    @property
    def connections_accepted(self) -> int:
        return self._analytics.connections_accepted

    @property
    def upgrades_refused(self) -> int:
        return self._analytics.upgrades_refused

    @property
    def open_sockets(self) -> int:
        return self._analytics.open_sockets

    @property
    def subscribe_messages(self) -> list[dict[str, Any]]:
        """Every JSON object received on any analytics socket, in arrival order."""
        return self._analytics.subscribe_messages

    # -- control methods ---------------------------------------------------------------------

    def publish(self, event: Mapping[str, Any]) -> int:
        """Deliver a conversation event (protocol shape; `type`/`eventTime` optional, stamped now
        if absent) through each socket's filters and fields; return the number of sockets sent to.
        Sockets whose token has expired are skipped silently."""
        self.events_published += 1
        return self._analytics.publish(event)

    def publish_call(self, event: CallEvent) -> int:
        """Deliver a scenario event over both wires: the analytics stream and the Notifications topics."""
        self.events_published += 1
        return self._analytics.publish(wire_event(event)) + self.notifications.publish_call(event)

    def send_raw(self, message: Mapping[str, Any]) -> int:
        """Send `message` as is to every open socket (no filters, no token check)."""
        return self._analytics.send_raw(message)

    async def close_streams(self, code: int = 1001, reason: str = "maintenance") -> None:
        """Close every analytics socket with a proper close frame; returns once they are gone."""
        log.info("closing %d analytics socket(s) with %d", self.open_sockets, code)
        await self._analytics.close_all(code, reason)

    async def drop_streams(self) -> None:
        """Abort every analytics socket's TCP connection without a close frame (client sees 1006)."""
        log.info("dropping %d analytics socket(s)", self.open_sockets)
        await self._analytics.drop_all()

    def issue_token(self) -> str:
        """A valid access token without an HTTP round trip, for tests that are not about OAuth."""
        return self._tokens.issue(self.config.token_lifetime_seconds)

    def expire_tokens(self) -> None:
        """Every token issued so far expires now: new upgrades get 401, open analytics sockets go silent,
        and every Notifications channel dies with its token (notifications.py: deleted, socket closed)."""
        log.info("expiring all access tokens")
        self._tokens.expire_all()

    def fail_token_requests(self, n: int, status: int = 429, retry_after: float | None = None) -> None:
        """Answer the next `n` token requests with `status`.

        `Retry-After` (seconds) is sent when `retry_after` is given; for 429 it defaults to
        `config.retry_after_seconds`, for any other status (e.g. 503) there is none by default.
        """
        if retry_after is None and status == 429:
            retry_after = self.config.retry_after_seconds
        self._oauth.fail_next(n, status, retry_after)

    def pause_scenarios(self) -> None:
        self._paused = True

    def resume_scenarios(self) -> None:
        self._paused = False

    # -- background tasks ---------------------------------------------------------------------

    async def _drive(self, engine: ScenarioEngine) -> None:
        """Play the scenario timeline in real time (times `speed`); pausing freezes scenario time."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            now = loop.time()
            if not self._paused:
                self.scenario_elapsed += (now - last) * self.config.speed
                for event in engine.due(self.scenario_elapsed):
                    self.publish_call(event)
            last = now
            await asyncio.sleep(SCENARIO_TICK_SECONDS)

    @staticmethod
    async def _every(period: float, action: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                await action()
            except Exception:  # a fault injector must never stop injecting
                log.exception("periodic fault injection failed")


async def serve_forever(
    config: SimulatorConfig,
    host: str = "127.0.0.1",
    port: int = 8765,
    on_ready: Callable[[SimulatedGenesysCloud], None] | None = None,
) -> None:
    """Run a simulator until cancelled (what the CLI's `simulate` subcommand awaits).

    `on_ready` is called once it listens, e.g. to show `sim.base_url` when port is 0.
    """
    sim = SimulatedGenesysCloud(config)
    await sim.start(host, port)
    try:
        if on_ready is not None:
            on_ready(sim)
        await asyncio.Event().wait()
    finally:
        await sim.stop()
