"""`demo`: the simulated Genesys Cloud and a real exporter, wired together in one process.

The exporter side is exactly what `run` uses; only its endpoints and credentials point at the
in-process simulator, so what the demo shows is what a deployment does. This module lives in the
simulator package so that the shipped exporter never imports simulated code.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets

from pydantic import SecretStr

from genesys_cloud_simulator.config import SimulatorConfig
from genesys_cloud_simulator.server import SimulatedGenesysCloud
from genesys_sentiment_exporter.app import Exporter
from genesys_sentiment_exporter.config import Settings
from genesys_sentiment_exporter.logs import Redactor

DEMO_LISTEN = "127.0.0.1:8729"
DEMO_POSTCALL = 10.0  # seconds from a call's end to Genesys' post-call score (minutes on a real org)
DEMO_TOKEN_LIFETIME = 900  # short enough that the demo shows a make-before-break token rollover
# The scenarios' queues: the notifications source learns each call's agent from these queues' topics.
DEMO_QUEUES = ["q-billing", "q-support", "q-fr", "q-payments", "q-legacy"]


def demo_settings(settings: Settings, simulator: SimulatedGenesysCloud) -> Settings:
    """The operator's settings pointed at the simulator; what they set themselves (flag or env) stays."""
    update: dict[str, object] = {
        "api_base_url": simulator.base_url,
        "login_base_url": simulator.base_url,
        "client_id": simulator.config.client_id,
        "client_secret": SecretStr(simulator.config.client_secret),
    }
    if settings.stream_source == "notifications" and not settings.queue_id and not settings.agent_id:
        update["queue_id"] = DEMO_QUEUES
    if settings.audiohook and not settings.audiohook_api_key.get_secret_value():
        # The simulator plays Genesys' AudioHook client too: it gets this run's key and secret.
        update["audiohook_api_key"] = SecretStr(base64.b64encode(secrets.token_bytes(18)).decode())
        update["audiohook_client_secret"] = SecretStr(base64.b64encode(secrets.token_bytes(32)).decode())
    if "web_listen_address" not in settings.model_fields_set:
        update["web_listen_address"] = DEMO_LISTEN  # a demo stays on this machine unless asked otherwise
    return settings.model_copy(update=update)


async def demo(settings: Settings, config: SimulatorConfig, redactor: Redactor) -> None:
    """Serve the simulator and the exporter until cancelled."""
    simulator = SimulatedGenesysCloud(config)
    await simulator.start("127.0.0.1", 0)
    settings = demo_settings(settings, simulator)
    exporter = Exporter(settings, redactor)
    voices: list[asyncio.Task[None]] = []

    async def speak() -> None:
        """AudioHook: the simulator streams every connected call's audio once the workers are up."""
        from genesys_cloud_simulator.audiohook_client import AudioHookCaller

        assert exporter.audiohook is not None
        await exporter.audiohook.started.wait()
        url = exporter.web.url.replace("http", "ws", 1) + "/audiohook"
        key, secret = settings.audiohook_api_key, settings.audiohook_client_secret
        await AudioHookCaller(simulator, url, key.get_secret_value(), secret.get_secret_value()).run()

    def banner() -> None:
        if exporter.audiohook is not None:
            voices.append(asyncio.create_task(speak(), name="audiohook-caller"))
        print(
            "\n".join(
                [
                    "genesys-sentiment-exporter demo is running (Ctrl-C to stop)",
                    f"  metrics:            {exporter.metrics_url}",
                    f"  landing page:       {exporter.web.url}/",
                    f"  readiness:          {exporter.web.url}/-/ready",
                    f"  simulated Genesys:  {simulator.base_url} (scenarios: {', '.join(simulator.config.scenarios)})",
                    "  within a minute, agent-sour's rolling average drops below -0.5"
                    + (" (AudioHook: agent-legacy-1's customer speaks angrily)" if exporter.audiohook else "")
                    + ":",
                    f"    curl -s {exporter.metrics_url} | grep rolling_average",
                ]
            ),
            flush=True,
        )

    try:
        await exporter.run(started=banner)  # the app's life cycle: a crashed task ends the demo
    finally:
        for task in voices:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await simulator.stop()
