"""Items 4 (token and channel answers), 16 and 17: what the login and API hosts answer cannot stop
the exporter, and a failure says which host and why.

Over real loopback sockets: the FaultySimulator answers in place of the simulator.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx
from aiohttp import web
from pydantic import SecretStr

from genesys_sentiment_exporter.oauth import MAX_TOKEN_LIFETIME, TokenManager
from tests.fault.faulty import FaultySimulator, live_notifications, status
from tests.live_helpers import wait_for
from tests.test_web import openssl_cert

NESTED = "[" * 10_000 + "]" * 10_000  # parses only with a recursion limit above 10 000


def raw(text: str, code: int = 200) -> object:
    async def answer(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, text=text, content_type="application/json")

    return answer


async def test_a_token_answer_nested_10000_deep_is_an_invalid_response_not_a_dead_task() -> None:
    sim = FaultySimulator()
    sim.inject("POST", "/oauth/token", raw('{"access_token": ' + NESTED + "}"), times=2)  # type: ignore[arg-type]
    async with live_notifications(sim, wait=False) as (_sim, exporter):
        await wait_for(lambda: exporter.tokens.requests["invalid_response"] >= 1, what="nested answer counted")
        await wait_for(lambda: exporter.stream.connected, timeout=15, what="recovered once the host answers well")
        assert exporter.running  # no core task stopped: one that stops ends the run


async def test_a_channel_answer_nested_10000_deep_is_retried_not_fatal() -> None:
    sim = FaultySimulator()
    sim.inject("POST", "/api/v2/notifications/channels", raw(NESTED), times=2)  # type: ignore[arg-type]
    async with live_notifications(sim, wait=False) as (_sim, exporter):
        await wait_for(lambda: "not JSON" in exporter.stream.last_error or exporter.stream.connected, what="answer")
        await wait_for(lambda: exporter.stream.connected, timeout=15, what="channel on retry")
        assert exporter.running  # no core task stopped: one that stops ends the run


async def test_infinite_or_absurd_token_lifetimes_are_not_trusted() -> None:
    sim = FaultySimulator()
    sim.inject("POST", "/oauth/token", raw('{"access_token": "tok-infinite-000", "expires_in": Infinity}'), times=1)  # type: ignore[arg-type]
    sim.inject("POST", "/oauth/token", raw('{"access_token": "tok-huge-0000000", "expires_in": 1e308}'), times=1)  # type: ignore[arg-type]
    await sim.start()
    try:
        async with httpx.AsyncClient(trust_env=False) as http:
            tokens = TokenManager(sim.base_url, "demo-client", SecretStr("x"), http)
            tokens.sleep = lambda _delay: asyncio.sleep(0)  # type: ignore[method-assign]
            token = await tokens.obtain()
    finally:
        await sim.stop()
    assert tokens.requests["invalid_response"] == 1  # Infinity: no usable expires_in
    assert token.value == "tok-huge-0000000"
    assert token.lifetime == MAX_TOKEN_LIFETIME  # 1e308: at most the platform's 48 h, so it is renewed


async def test_an_unverifiable_certificate_is_named_as_such(tmp_path: Path) -> None:
    cert, key = openssl_cert(tmp_path, "login")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with httpx.AsyncClient(trust_env=False) as http:
            tokens = TokenManager(f"https://127.0.0.1:{port}", "c", SecretStr("x"), http)
            try:
                await tokens.fetch()
            except Exception as exc:
                message = str(exc)
            else:
                raise AssertionError("a self-signed login host was accepted")
    finally:
        await runner.cleanup()
    assert f"127.0.0.1:{port}" in message
    assert "certificate verify failed" in message, message
    assert "self-signed" in message or "self signed" in message, message


async def test_dns_failure_and_refused_connections_name_host_and_cause() -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        for base, cause in (("https://login.invalid", "DNS"), ("http://127.0.0.1:9", "refused")):
            tokens = TokenManager(base, "c", SecretStr("x"), http)
            try:
                await tokens.fetch()
            except Exception as exc:
                message = str(exc)
            assert base.split("//")[1] in message and cause in message, message


async def test_a_500_token_answer_then_recovery() -> None:
    sim = FaultySimulator()
    sim.inject("POST", "/oauth/token", status(500, "oops"), times=2)
    async with live_notifications(sim, wait=False) as (_sim, exporter):
        await wait_for(lambda: exporter.stream.connected, timeout=15, what="connected after 500s")
        assert exporter.tokens.requests["server_error"] == 2
