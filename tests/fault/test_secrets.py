"""Items 2 and 3: no token or client secret in /-/ready, `check` output or logs, however long it runs."""

from __future__ import annotations

import base64
import logging

import httpx
import pytest

from genesys_sentiment_exporter.app import Exporter
from genesys_sentiment_exporter.check import run_check
from genesys_sentiment_exporter.config import Settings
from genesys_sentiment_exporter.logs import Redactor
from genesys_sentiment_exporter.oauth import Token
from tests.fault.faulty import CANARY_SECRET, FaultySimulator, captured_logs, echo
from tests.live_helpers import settings_for, wait_for


def _secrets(exporter: Exporter, tokens: list[str]) -> list[str]:
    basic = base64.b64encode(f"{exporter.settings.client_id}:{CANARY_SECRET}".encode()).decode()
    return [CANARY_SECRET, basic, *tokens]


async def test_an_error_body_echoing_the_bearer_token_never_reaches_ready_or_logs() -> None:
    sim = FaultySimulator()
    await sim.start()
    sim.inject("POST", "/api/v2/notifications/channels", echo(400))
    with captured_logs() as (logs, redactor):
        exporter = Exporter(settings_for(sim, source="notifications", queue_id=["q1"]), redactor)
        await exporter.start()
        try:
            await wait_for(lambda: exporter.tokens.token is not None, what="token")
            token = exporter.tokens.token
            assert token is not None
            await wait_for(lambda: "bad request" in exporter.stream.last_error, what="echoed error")
            async with httpx.AsyncClient(trust_env=False) as http:
                ready = await http.get(exporter.web.url + "/-/ready")
                metrics = await http.get(exporter.metrics_url)
        finally:
            await exporter.stop()
            await sim.stop()
    assert ready.status_code == 503
    assert "bad request" in ready.text  # the reason is still there...
    for secret in _secrets(exporter, [token.value]):
        assert secret not in ready.text  # ...without the token
        assert secret not in metrics.text
        assert secret not in logs.getvalue()


async def test_check_output_never_holds_an_echoed_token(capsys: pytest.CaptureFixture[str]) -> None:
    sim = FaultySimulator()
    await sim.start()
    sim.inject("POST", "/api/v2/notifications/channels", echo(400))
    try:
        exporter = Exporter(settings_for(sim, source="notifications", queue_id=["q1"]), Redactor())
        status = await run_check(exporter, 1.5)
    finally:
        await sim.stop()
    out = capsys.readouterr().out
    assert status == 1
    assert "bad request" in out
    token = exporter.tokens.token
    assert token is not None
    for secret in _secrets(exporter, [token.value]):
        assert secret not in out


def test_the_client_secret_stays_redacted_after_many_token_refreshes() -> None:
    with captured_logs() as (logs, redactor):
        exporter = Exporter(
            Settings(
                api_base_url="http://127.0.0.1:9",
                login_base_url="http://127.0.0.1:9",
                client_id="c",
                client_secret=CANARY_SECRET,
                queue_id=["q1"],
                web_listen_address="127.0.0.1:0",
            ),
            redactor,
        )
        issued = []
        for i in range(50):  # 50 refreshes: about 4 hours of 300 s tokens
            value = f"token-{i:04d}-abcdef"
            issued.append(value)
            exporter._new_token(Token(value, 300.0, 0.0, 300.0))
        logging.getLogger("exporter.test").error("oops %s %s", CANARY_SECRET, issued[-1])
    text = logs.getvalue()
    assert "oops" in text
    assert CANARY_SECRET not in text
    assert issued[-1] not in text
    assert len(redactor.recent) <= 8  # old tokens are forgotten, the client secret never is
