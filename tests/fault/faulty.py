"""A simulator whose HTTP answers a test can replace, for faults the simulator has no knob for.

Each fault matches a method and a path prefix and answers instead of the simulator (`times` answers,
then it is spent); `None` from the answer function means "let the simulator answer" (count only).
The rest is the real simulator on a real loopback port, so the exporter under test talks HTTP and
WebSocket to a server exactly as in the other live tests.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from genesys_cloud_simulator import SimulatedGenesysCloud, SimulatorConfig

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
