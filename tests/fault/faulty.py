"""A simulator whose HTTP answers a test can replace, for faults the simulator has no knob for.

Each fault matches a method and a path prefix and answers instead of the simulator (`times` answers,
then it is spent); `None` from the answer function means "let the simulator answer" (count only).
The rest is the real simulator on a real loopback port, so the exporter under test talks HTTP and
WebSocket to a server exactly as in the other live tests.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from genesys_cloud_simulator import SimulatedGenesysCloud, SimulatorConfig

from genesys_sentiment_exporter.app import Exporter

Answer = Callable[[web.Request], Awaitable[web.StreamResponse | None]]
CANARY_SECRET = "canary-SECRET-5d1c7e0b9a"


@dataclass
class Fault:
    method: str
    prefix: str
    answer: Answer
    times: int = 1_000_000
    hits: int = 0


class FaultySimulator(SimulatedGenesysCloud):
    def __init__(self, config: SimulatorConfig | None = None) -> None:
        super().__init__(config or SimulatorConfig(client_secret=CANARY_SECRET))
        self.faults: list[Fault] = []

    def inject(self, method: str, prefix: str, answer: Answer, times: int = 1_000_000) -> Fault:
        fault = Fault(method, prefix, answer, times)
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        self.faults.clear()

    def _app(self) -> web.Application:
        app = super()._app()

        @web.middleware
        async def inject(request: web.Request, handler: Any) -> web.StreamResponse:
            for fault in self.faults:
                if fault.times > 0 and request.method == fault.method and request.path.startswith(fault.prefix):
                    fault.times -= 1
                    fault.hits += 1
                    answer = await fault.answer(request)
                    if answer is not None:
                        return answer
                    break
            response: web.StreamResponse = await handler(request)
            return response

        app.middlewares.append(inject)
        return app


def status(code: int, body: str = "", headers: dict[str, str] | None = None) -> Answer:
    async def answer(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, text=body, headers=headers)

    return answer


def echo(code: int = 400) -> Answer:
    """A broken gateway that echoes the request, headers included, into its error body."""

    async def answer(request: web.Request) -> web.StreamResponse:
        headers = sorted(request.headers.items(), key=lambda kv: kv[0].lower() != "authorization")
        lines = [f"{k}: {v}" for k, v in headers]
        return web.Response(status=code, text="bad request: " + " | ".join(lines))

    return answer


@contextmanager
def captured_logs(level: str = "debug") -> Iterator[tuple[io.StringIO, Any]]:
    """Root logging into a buffer through the exporter's own setup (formatter and redactor)."""
    from genesys_sentiment_exporter import logs

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buffer = io.StringIO()
    redactor = logs.setup(level, "logfmt", stream=buffer)
    try:
        yield buffer, redactor
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


def send_raw(sim: SimulatedGenesysCloud, text: str) -> int:
    """One frame, exactly as given, to every open notifications socket (no envelope, no checks)."""
    sent = 0
    for channel in sim.notifications.channels.values():
        if channel.socket is not None:
            channel.socket.send(text)
            sent += 1
    return sent


def conversation_body(conversation: str, agent: str, queue: str, state: str = "connected") -> dict[str, Any]:
    """A v2.routing.queues.{id}.conversations body with one agent leg (shape of the simulator's)."""
    return {
        "id": conversation,
        "participants": [
            {"purpose": "customer", "calls": [{"state": "connected"}]},
            {"purpose": "agent", "userId": agent, "queueId": queue, "calls": [{"state": state}]},
        ],
    }


def json_answer(body: Any, code: int = 200) -> Answer:
    async def answer(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, text=json.dumps(body), content_type="application/json")

    return answer


@asynccontextmanager
async def live_notifications(
    sim: FaultySimulator | None = None, redactor: Any = None, wait: bool = True, **overrides: Any
) -> AsyncIterator[tuple[FaultySimulator, Exporter]]:
    """A FaultySimulator and an exporter on the notifications source (queue q1), both on loopback."""
    from tests.live_helpers import settings_for, wait_for

    sim = sim or FaultySimulator()
    await sim.start()
    overrides.setdefault("queue_id", ["q1"])
    overrides.setdefault("source", "notifications")
    exporter = Exporter(settings_for(sim, **overrides), redactor)
    await exporter.start()
    try:
        if wait:
            await wait_for(lambda: exporter.stream.connected, what="channel subscribed")
        yield sim, exporter
    finally:
        await exporter.stop()
        await sim.stop()


def send_raw_analytics(sim: SimulatedGenesysCloud, text: str) -> int:
    """One frame, exactly as given, to every open analytics socket (the simulator's own send dumps JSON)."""
    sockets = list(sim._analytics._sockets)
    for sock in sockets:
        sock._outbox.put_nowait(text)
    return len(sockets)


def nested(depth: int) -> str:
    """A JSON value `depth` objects deep: json.loads raises RecursionError near 1 000 levels."""
    return '{"a":' * depth + "1" + "}" * depth
