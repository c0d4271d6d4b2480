"""The life cycle: a stopped core task ends the run (one log line, exit 1); SIGTERM is a fast, clean stop."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator

import pytest
from aiohttp import web
from genesys_cloud_simulator import SimulatedGenesysCloud, SimulatorConfig

from genesys_sentiment_exporter import cli
from genesys_sentiment_exporter.app import Exporter
from genesys_sentiment_exporter.lifecycle import TaskCrashed, run_tasks
from genesys_sentiment_exporter.sources.notifications import NotificationsSource
from tests.live_helpers import settings_for, wait_for
from tests.test_cli import REPO, SECRET


@pytest.fixture
def root_logging() -> Iterator[None]:
    """`cli.main` configures the root logger; put it back afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


async def test_a_stopped_task_cancels_the_others_and_is_named() -> None:
    cancelled: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.append("forever")

    async def crash() -> None:
        await asyncio.sleep(0)
        raise ValueError("nested too deep")

    async def returns() -> None:
        return None

    with pytest.raises(TaskCrashed) as crashed:
        await run_tasks({"oauth": forever, "source": crash})
    assert crashed.value.task == "source" and isinstance(crashed.value.error, ValueError)
    assert cancelled == ["forever"]
    with pytest.raises(TaskCrashed, match="names task stopped: RuntimeError: returned"):
        await run_tasks({"names": returns})
    await run_tasks({"oauth": forever}, duration=0.01)  # a duration is a normal end
    assert cancelled == ["forever", "forever"]


def test_a_crashed_source_ends_run_with_one_line_and_status_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], root_logging: None
) -> None:
    async def broken(_self: NotificationsSource) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(NotificationsSource, "run", broken)
    monkeypatch.setenv("GENESYSCLOUD_OAUTHCLIENT_SECRET", SECRET)
    status = cli.main(
        [
            "run",
            "--queue-id",
            "q1",
            "--api-base-url",
            "http://127.0.0.1:1",
            "--login-base-url",
            "http://127.0.0.1:1",
            "--client-id",
            "cid",
            "--web.listen-address",
            "127.0.0.1:0",
        ]
    )
    err = capsys.readouterr().err
    assert status == 1
    errors = [line for line in err.splitlines() if "level=error" in line]
    assert len(errors) == 1, err
    assert "source task stopped (RecursionError: maximum recursion depth exceeded)" in errors[0]
    assert "Traceback" not in err


async def _stall(port: int) -> list[asyncio.StreamWriter]:
    """Scrapers that never finish: one stops mid-request, one asks for /metrics and never reads."""
    stalled = []
    _r1, half = await asyncio.open_connection("127.0.0.1", port)
    half.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    _r2, idle = await asyncio.open_connection("127.0.0.1", port)
    idle.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
    for writer in (half, idle):
        await writer.drain()
        stalled.append(writer)
    return stalled


async def test_sigterm_closes_every_socket_with_1000_and_exits_within_2_s() -> None:
    sim = SimulatedGenesysCloud(SimulatorConfig())
    await sim.start()
    env = dict(os.environ)
    env.update(
        {
            "GENESYSCLOUD_OAUTHCLIENT_SECRET": sim.config.client_secret,
            "GENESYSCLOUD_OAUTHCLIENT_ID": sim.config.client_id,
            "GENESYS_EXPORTER_API_BASE_URL": sim.base_url,
            "GENESYS_EXPORTER_LOGIN_BASE_URL": sim.base_url,
        }
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "genesys_sentiment_exporter",
        "run",
        "--queue-id",
        "q1",
        "--web.listen-address",
        "127.0.0.1:0",
        cwd=REPO,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    log = io.StringIO()
    try:
        assert process.stderr is not None
        port = 0
        while not port:
            line = (await asyncio.wait_for(process.stderr.readline(), 20)).decode()
            assert line, f"exporter ended before listening: {log.getvalue()}"
            log.write(line)
            if "listening on http://127.0.0.1:" in line:
                port = int(line.split("listening on http://127.0.0.1:")[1].split()[0].strip('"'))
        await wait_for(lambda: sim.notifications.open_sockets == 1, timeout=15, what="channel socket")
        stalled = await _stall(port)
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status = await asyncio.wait_for(process.wait(), 10)
        took = time.monotonic() - sent
        log.write((await process.stderr.read()).decode())
        for writer in stalled:
            writer.close()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await sim.stop()
    assert status == 0, log.getvalue()
    assert took < 2.0, f"took {took:.2f} s to stop"
    assert sim.notifications.close_codes == [1000], sim.notifications.close_codes
    assert "Traceback" not in log.getvalue()


async def test_stop_does_not_wait_for_a_stalled_scrape() -> None:
    """A scrape stuck in its handler (a client that stopped reading a large page) gets half a second."""
    sim = SimulatedGenesysCloud(SimulatorConfig())
    await sim.start()
    exporter = Exporter(settings_for(sim, source="notifications", queue_id=["q1"]))
    entered = asyncio.Event()

    async def stalled(_request: web.Request) -> web.Response:
        entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    exporter.web.runner.app.router.add_get("/stalled", stalled)
    await exporter.start()
    try:
        await wait_for(lambda: exporter.stream.connected, what="channel")
        _reader, writer = await asyncio.open_connection("127.0.0.1", exporter.web.port)
        writer.write(b"GET /stalled HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await asyncio.wait_for(entered.wait(), 5)
        await asyncio.wait_for(exporter.stop(), 2.0)  # the run ends within its 2 s budget
        writer.close()
    finally:
        await sim.stop()
    assert sim.notifications.close_codes == [1000]
