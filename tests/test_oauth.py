"""OAuth client credentials: refresh timing (pure), request shape, and error handling."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest
from genesys_cloud_simulator import SimulatedGenesysCloud, SimulatorConfig
from pydantic import SecretStr

from genesys_sentiment_exporter.oauth import (
    MIN_REFRESH_SECONDS,
    TokenError,
    TokenManager,
    parse_retry_after,
    refresh_delay,
)


@pytest.mark.parametrize(
    ("lifetime", "expected"),
    [
        (86_400, 86_100),  # the platform default: 300 s before expiry
        (3_600, 3_300),
        (600, 300),  # exactly twice the margin: the normal rule
        (599, 599 * 0.8),  # short token: 80 % of its life
        (300, 240),  # the platform minimum
        (1, MIN_REFRESH_SECONDS),  # never a refresh loop
    ],
)
def test_refresh_delay(lifetime: float, expected: float) -> None:
    assert refresh_delay(lifetime, 300) == pytest.approx(expected)


def test_retry_after_parsing() -> None:
    assert parse_retry_after("7", 0) == 7
    assert parse_retry_after(None, 0) is None
    assert parse_retry_after("soon", 0) is None
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 40) == pytest.approx(60)
    assert parse_retry_after("-5", 0) == 0


def manager(handler: httpx.MockTransport, secret: str = "s3cr3t-value") -> TokenManager:
    http = httpx.AsyncClient(transport=handler)
    return TokenManager("https://login.mypurecloud.ie", "my-client", SecretStr(secret), http, wall=lambda: 1000.0)


async def test_request_is_basic_auth_with_form_body() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "tok", "token_type": "bearer", "expires_in": 86399})

    token = await manager(httpx.MockTransport(handle)).fetch()
    request = seen[0]
    assert request.method == "POST"
    assert str(request.url) == "https://login.mypurecloud.ie/oauth/token"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"my-client:s3cr3t-value").decode()
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.content == b"grant_type=client_credentials"
    assert token.lifetime == 86399
    assert token.expires_at == 1000.0 + 86399


@pytest.mark.parametrize(
    ("response", "result"),
    [
        (
            httpx.Response(401, json={"error": "invalid_client", "error_description": "authentication failed"}),
            "invalid_client",
        ),
        (httpx.Response(400, json={"error": "invalid_client"}), "invalid_client"),
        (httpx.Response(400, json={"error": "unauthorized_client"}), "unauthorized_client"),
        (httpx.Response(429, headers={"Retry-After": "3"}), "rate_limited"),
        (httpx.Response(503), "server_error"),
        (httpx.Response(200, json={"access_token": "x"}), "invalid_response"),
        (httpx.Response(200, json={"access_token": "x", "expires_in": 0}), "invalid_response"),
        (httpx.Response(200, text="<html>"), "invalid_response"),
    ],
)
async def test_errors_are_classified_without_leaking_the_secret(response: httpx.Response, result: str) -> None:
    tokens = manager(httpx.MockTransport(lambda _r: response))
    with pytest.raises(TokenError) as caught:
        await tokens.fetch()
    assert caught.value.result == result
    assert "s3cr3t-value" not in str(caught.value)
    if result == "rate_limited":
        assert caught.value.retry_after == 3


async def test_invalid_client_names_the_login_host_and_the_region() -> None:
    tokens = manager(httpx.MockTransport(lambda _r: httpx.Response(401, json={"error": "invalid_client"})))
    with pytest.raises(TokenError) as caught:
        await tokens.fetch()
    message = str(caught.value)
    assert "login.mypurecloud.ie" in message
    assert "region" in message and "GENESYSCLOUD_REGION" in message


async def test_network_errors_are_classified() -> None:
    def fail(_request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(TokenError) as caught:
        await manager(httpx.MockTransport(fail)).fetch()
    assert caught.value.result == "network_error"


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def test_obtain_honours_retry_after_then_backs_off_on_5xx() -> None:
    async with SimulatedGenesysCloud(SimulatorConfig(token_lifetime_seconds=300)) as sim:
        sim.fail_token_requests(1, status=429, retry_after=7)
        async with httpx.AsyncClient() as http:
            tokens = TokenManager(sim.base_url, "demo-client", SecretStr("demo-secret"), http)
            sleeps = Sleeps()
            tokens.sleep = sleeps
            token = await tokens.obtain()
            assert sleeps.delays == [7]
            assert token.lifetime == 300
            sim.fail_token_requests(3, status=503)
            await tokens.obtain()
    assert len(sleeps.delays) == 4
    backoffs = sleeps.delays[1:]
    assert all(0 < d <= 30 for d in backoffs)
    assert backoffs[2] > backoffs[0]  # exponential growth (jitter keeps half of each step fixed)
    assert tokens.requests == {"rate_limited": 1, "server_error": 3, "success": 2}


async def test_invalid_client_retries_slowly_and_is_not_ready() -> None:
    async with SimulatedGenesysCloud(SimulatorConfig()) as sim, httpx.AsyncClient() as http:
        tokens = TokenManager(sim.base_url, "demo-client", SecretStr("wrong"), http)
        delays: list[float] = []

        async def sleep(delay: float) -> None:
            delays.append(delay)
            if len(delays) == 2:
                tokens._secret = SecretStr("demo-secret")  # the operator fixed the secret

        tokens.sleep = sleep
        assert tokens.ready_reason() is not None
        await tokens.obtain()
    assert delays == [60.0, 60.0]
    assert tokens.requests["invalid_client"] == 2
    assert tokens.ready_reason() is None


async def test_rejected_client_is_not_ready_even_with_a_token_left() -> None:
    async with SimulatedGenesysCloud(SimulatorConfig()) as sim, httpx.AsyncClient() as http:
        tokens = TokenManager(sim.base_url, "demo-client", SecretStr("demo-secret"), http)
        await tokens.obtain()
        sim.config.client_secret = "rotated"  # the client's secret was rotated in the org

        async def give_up(_delay: float) -> None:
            raise asyncio.CancelledError

        tokens.sleep = give_up
        with pytest.raises(asyncio.CancelledError):
            await tokens.obtain()
    assert tokens.valid_token() is not None
    reason = tokens.ready_reason()
    assert reason is not None and "invalid_client" in reason


async def test_run_refreshes_before_expiry_without_a_loop() -> None:
    async with SimulatedGenesysCloud(SimulatorConfig(token_lifetime_seconds=300)) as sim, httpx.AsyncClient() as http:
        tokens = TokenManager(sim.base_url, "demo-client", SecretStr("demo-secret"), http)
        delays: list[float] = []

        class Stop(Exception):
            pass

        async def sleep(delay: float) -> None:
            delays.append(delay)
            if len(delays) == 3:
                raise Stop

        tokens.sleep = sleep
        with pytest.raises(Stop):
            await tokens.run()
    # A 300 s token is renewed at 80 % of its life, each time, and each renewal is one request.
    assert [round(d) for d in delays] == [240, 240, 240]
    assert tokens.requests["success"] == 3
