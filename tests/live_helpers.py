"""Start a real exporter against a real simulator on loopback, for tests that need sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from genesys_cloud_simulator import SimulatedGenesysCloud, SimulatorConfig

from genesys_sentiment_exporter.app import Exporter
from genesys_sentiment_exporter.config import Settings
from genesys_sentiment_exporter.logs import Redactor


def settings_for(sim: SimulatedGenesysCloud, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "api_base_url": sim.base_url,
        "login_base_url": sim.base_url,
        "client_id": sim.config.client_id,
        "client_secret": sim.config.client_secret,
        "web_listen_address": "127.0.0.1:0",
        "source": "analytics-websocket",  # these helpers predate the notifications default
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running(
    sim_config: SimulatorConfig | None = None, redactor: Redactor | None = None, **overrides: Any
) -> AsyncIterator[tuple[SimulatedGenesysCloud, Exporter]]:
    sim = SimulatedGenesysCloud(sim_config or SimulatorConfig())
    await sim.start()
    exporter = Exporter(settings_for(sim, **overrides), redactor)
    await exporter.start()
    try:
        yield sim, exporter
    finally:
        await exporter.stop()
        await sim.stop()


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> float:
    """Poll until `condition()` holds; returns the seconds it took. Fails the test on timeout."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def event(
    agent: str, conversation: str, score: float | None = None, state: str = "connected", queue: str = "q1"
) -> dict[str, Any]:
    message: dict[str, Any] = {"conversationId": conversation, "agentId": agent, "queueId": queue, "state": state}
    if score is not None:
        message["sentiment"] = {"score": score, "label": "neutral"}
    return message


class NumberScorer:
    """Test analyzer: an utterance's text is its score ("-0.4"), so tests state exact values."""

    name = "number"
    languages = frozenset({"en"})

    def score(self, text: str) -> float:
        return float(text)


def score_numbers(exporter: Exporter) -> None:
    """Make the exporter's notifications source score utterances with `NumberScorer`."""
    from genesys_sentiment_exporter.analysis import UtteranceAnalyzer

    exporter.source.session.transcripts.analyzer = UtteranceAnalyzer(NumberScorer())  # type: ignore[attr-defined]


def say(sim: SimulatedGenesysCloud, conversation: str, value: float, party: str = "customer") -> int:
    """One final utterance worth `value` (with `score_numbers`) on the call's live transcript."""
    return sim.notifications.say(conversation, party, repr(value))
