"""Items 6, 10, 11 and 15 (HTTP side): what HTTP clients do cannot hold the loop the stream runs on,
take every descriptor, eat the memory, tell which users exist, or delay shutdown.

Raw loopback sockets play the attackers; a real exporter on the simulator is the target.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import bcrypt
import httpx
from genesys_cloud_simulator import SimulatedGenesysCloud

from genesys_sentiment_exporter.app import Exporter
from genesys_sentiment_exporter.model import Reading, StateChange
from genesys_sentiment_exporter.web import SCRAPE_PAGE, BasicAuth
from tests.live_helpers import settings_for, wait_for


@asynccontextmanager
async def exporter_on_sim(**overrides: Any) -> AsyncIterator[Exporter]:
    sim = SimulatedGenesysCloud()
    await sim.start()
    exporter = Exporter(settings_for(sim, **overrides))
    await exporter.start()
    try:
        yield exporter
    finally:
        await exporter.stop()
        await sim.stop()


def web_config(tmp_path: Path, password: str, rounds: int) -> Path:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  prometheus: {hashed}\n", encoding="utf-8")
    return path


def auth_of(exporter: Exporter) -> BasicAuth:
    middleware = exporter.web.runner.app.middlewares[0]
    auth = middleware.__self__  # type: ignore[attr-defined]
    assert isinstance(auth, BasicAuth)
    return auth


async def raw_socket(url: str, rcvbuf: int | None = None) -> socket.socket:
    host, port = url.split("//")[1].split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    return sock


async def closed_by_peer(sock: socket.socket) -> bool:
    """True once the server closed the connection (EOF or reset); reads and discards what it sent."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65536), 0.05)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


# -- item 6: basic auth --------------------------------------------------------------------------------


async def test_unknown_users_pay_the_same_bcrypt_as_known_ones(tmp_path: Path) -> None:
    config = web_config(tmp_path, "right-password", rounds=5)
    async with exporter_on_sim(web_config_file=config) as exporter, httpx.AsyncClient(trust_env=False) as http:
        auth = auth_of(exporter)
        assert auth.dummy.split(b"$")[2] == b"05"  # the dummy hash has the configured cost
        for user in ("prometheus", "nobody"):
            before = auth.verifications
            response = await http.get(exporter.metrics_url, auth=(user, "wrong"))
            assert response.status_code == 401
            assert auth.verifications == before + 1, user  # unknown users run bcrypt too


async def test_wrong_passwords_never_hold_a_valid_scrape_or_evict_its_success(tmp_path: Path) -> None:
    config = web_config(tmp_path, "right-password", rounds=8)
    async with (
        exporter_on_sim(web_config_file=config) as exporter,
        httpx.AsyncClient(trust_env=False, timeout=60) as http,
    ):
        auth = auth_of(exporter)
        assert (await http.get(exporter.metrics_url, auth=("prometheus", "right-password"))).status_code == 200
        verified = auth.verifications
        wrong = [
            asyncio.create_task(http.get(exporter.metrics_url, auth=("prometheus", f"wrong-{i}"))) for i in range(30)
        ]
        await wait_for(lambda: auth.pending >= 5, what="wrong passwords queued for bcrypt")
        valid = await http.get(exporter.metrics_url, auth=("prometheus", "right-password"))
        healthy_while_pending = auth.pending
        assert valid.status_code == 200
        assert healthy_while_pending > 0  # served while wrong passwords still wait for bcrypt
        statuses = [r.status_code for r in await asyncio.gather(*wrong)]
        assert set(statuses) <= {401, 429} and statuses.count(401) >= 5
        assert (await http.get(exporter.metrics_url, auth=("prometheus", "right-password"))).status_code == 200
        assert auth.verifications == verified + statuses.count(401)  # the success stayed cached


# -- item 10: idle and half-sent connections -------------------------------------------------------------


async def test_idle_and_half_sent_connections_are_closed() -> None:
    async with exporter_on_sim(web_read_timeout=0.5) as exporter:
        idle = [await raw_socket(exporter.web.url) for _ in range(5)]
        half = [await raw_socket(exporter.web.url) for _ in range(5)]
        loop = asyncio.get_running_loop()
        for sock in half:
            await loop.sock_sendall(sock, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        try:
            for sock in idle + half:
                for _ in range(100):
                    if await closed_by_peer(sock):
                        break
                else:
                    raise AssertionError("a connection stayed open past --web.read-timeout")
        finally:
            for sock in idle + half:
                sock.close()
        await wait_for(lambda: exporter.web.open_connections == 0, what="server side closed")


async def test_connection_cap_holds_and_a_scraper_still_gets_in() -> None:
    async with exporter_on_sim(web_max_connections=20, web_read_timeout=60) as exporter:
        crowd = [await raw_socket(exporter.web.url) for _ in range(60)]
        try:
            await wait_for(lambda: exporter.web.refused_connections >= 40, what="cap enforced")
            assert exporter.web.open_connections <= 20
            async with httpx.AsyncClient(trust_env=False) as http:
                assert (await http.get(exporter.web.url + "/-/healthy")).status_code == 200
        finally:
            for sock in crowd:
                sock.close()


# -- item 11: concurrent scrapes, slow readers ----------------------------------------------------------


def populate(exporter: Exporter, agents: int) -> None:
    """Agents with 100-character ids and a reading each: about 1.5 KB of page per agent."""
    now = time.monotonic()  # what the exporter's expiry compares with
    for i in range(agents):
        agent, queue = f"agent-{i:06d}-" + "x" * 100, "queue-" + "q" * 100
        exporter.tracker.state(StateChange(agent, queue, f"c{i}", "connected", 0.0), now)
        exporter.tracker.reading(Reading(agent, queue, f"c{i}", -0.5, 1.0, 0.1), now)


async def test_concurrent_scrapes_share_one_render_and_extra_ones_are_refused() -> None:
    async with (
        exporter_on_sim(web_max_requests=10) as exporter,
        httpx.AsyncClient(trust_env=False, limits=httpx.Limits(max_connections=200)) as http,
    ):
        populate(exporter, 2000)
        page = exporter.web.runner.app[SCRAPE_PAGE]
        before = page.renders
        responses = await asyncio.gather(*(http.get(exporter.metrics_url) for _ in range(100)))
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {200, 503}
        assert statuses.count(200) >= 10
        assert page.renders - before < statuses.count(200)  # overlapping scrapes reused a page
        bodies = {r.content for r in responses if r.status_code == 200}
        assert all(b"genesys_stream_messages_total" in b for b in bodies)


async def stall(exporter: Exporter, count: int) -> list[socket.socket]:
    """`count` scrapers that ask for the page and never read it."""
    loop = asyncio.get_running_loop()
    stalled = []
    for _ in range(count):
        sock = await raw_socket(exporter.web.url, rcvbuf=4096)
        await loop.sock_sendall(sock, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        stalled.append(sock)
    page = exporter.web.runner.app[SCRAPE_PAGE]
    await wait_for(lambda: page.in_flight == count, what=f"{count} stalled scrapes")
    return stalled


async def test_slow_readers_are_cut_off() -> None:
    async with exporter_on_sim(web_read_timeout=0.5) as exporter:  # write timeout: twice that
        populate(exporter, 8000)  # a page of about 12 MB, far more than the socket buffers hold
        stalled = await stall(exporter, 3)
        try:
            async with httpx.AsyncClient(trust_env=False) as http:
                assert (await http.get(exporter.web.url + "/-/healthy")).status_code == 200
            page = exporter.web.runner.app[SCRAPE_PAGE]
            await wait_for(lambda: page.in_flight == 0, timeout=5, what="slow readers cut off")
            assert all([await closed_by_peer(sock) for sock in stalled])
        finally:
            for sock in stalled:
                sock.close()


async def test_stalled_scrapers_do_not_delay_shutdown() -> None:
    sim = SimulatedGenesysCloud()
    await sim.start()
    exporter = Exporter(settings_for(sim))  # default timeouts: 15 s read, 30 s write
    await exporter.start()
    stalled: list[socket.socket] = []
    try:
        populate(exporter, 8000)
        stalled = await stall(exporter, 3)
        await asyncio.wait_for(exporter.stop(), timeout=2.0)  # the bound: exit within 2 s
    finally:
        for sock in stalled:
            sock.close()
        await sim.stop()
