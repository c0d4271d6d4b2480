"""AudioHook to a page, with real programs: the simulator's calls carry no sentiment at all (the
`no-sentiment` scenario, a queue without transcription), so every reading comes from audio.

The simulator plays Genesys' AudioHook Monitor client: for agent-legacy-1's call its customer says
hostile things (espeak-ng, mu-law, real time), for agent-legacy-2's call polite things. The exporter
(`run --source notifications,audiohook`, PocketSphinx in worker processes) turns them into readings;
Debian's Prometheus evaluates the shipped rules and Alertmanager pages the queue's Slack channel for
the hostile call only.
"""

from __future__ import annotations

import asyncio
import base64
import re
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator

import httpx
import pytest
from genesys_cloud_simulator.audiohook_client import AudioHookClient, silence, synthesise

from stack import Stack, StackOptions
from stack.launcher import free_port
from tests.bundle.support import dashboard_queries, is_audiohook_query, substitute
from tests.e2e.support import PYTHON, REPO, customer_sample, scrape, wait_until
from tests.e2e.test_end_to_end import body_text, is_slack

API_KEY = "ZTJlLWF1ZGlvaG9vay1rZXk="
SECRET = base64.b64encode(b"e2e audiohook client secret, 32b").decode()
SEED = 17  # agent-legacy-1's and -2's first calls last over 150 s with this seed
HOSTILE = ("I am very angry. This is awful and horrible.", "I am really angry.")
POLITE = ("I really appreciate your help.", "That is wonderful, thank you.")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run_dir = tmp_path_factory.mktemp("e2e-audiohook")
    sim_port = free_port()
    sim_log = (run_dir / "simulator.log").open("wb")
    simulator = subprocess.Popen(
        [
            *(PYTHON, "-m", "genesys_sentiment_exporter", "simulate", "--listen-address", f"127.0.0.1:{sim_port}"),
            *("--scenario", "no-sentiment", "--seed", str(SEED)),
        ],
        cwd=REPO,
        stdout=sim_log,
        stderr=subprocess.STDOUT,
    )
    sim_url = f"http://127.0.0.1:{sim_port}"
    for name, value in (("client-secret", "demo-secret"), ("audiohook-key", API_KEY), ("audiohook-secret", SECRET)):
        (run_dir / name).write_text(value)
    exporter_port = free_port()
    options = StackOptions(
        run_dir=run_dir / "stack",
        ports={"exporter": exporter_port},
        exporter_command=[PYTHON, "-m", "genesys_sentiment_exporter", "run"],
        exporter_args=[
            *("--api-base-url", sim_url, "--login-base-url", sim_url, "--client-id", "demo-client"),
            *("--client-secret-file", str(run_dir / "client-secret"), "--queue-id", "q-legacy"),
            *("--region", "eu-west-1", "--web.external-url", f"http://127.0.0.1:{exporter_port}"),
            *("--source", "notifications,audiohook", "--audiohook.workers", "2"),
            *("--audiohook.api-key-file", str(run_dir / "audiohook-key")),
            *("--audiohook.client-secret-file", str(run_dir / "audiohook-secret")),
        ],
    )
    stack = Stack(options)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        simulator.terminate()
        simulator.wait(10)
        sim_log.close()


def live_conversation(exporter_url: str, agent: str) -> str | None:
    """The agent's live call, from the exporter's own redirect to it (no conversation id is a label)."""
    response = httpx.get(f"{exporter_url}/-/conversation/{agent}", follow_redirects=False, timeout=5)
    if response.status_code != 302:
        return None
    return response.headers["Location"].rsplit("/", 1)[1]


async def speak(url: str, conversation: str, lines: tuple[str, ...], seconds: float, stop: threading.Event) -> None:
    client = AudioHookClient(url=url, api_key=API_KEY, client_secret=SECRET)
    await client.connect()
    await client.open(conversation)
    script = b"".join(synthesise(line) + silence(1.0) for line in lines)
    began = time.monotonic()
    while time.monotonic() - began < seconds and not stop.is_set():
        await client.stream(script, realtime=1.0)
    await client.close()


def test_hostile_speech_pages_the_agents_supervisors_and_polite_speech_does_not(
    chain: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = chain
    metrics_url = stack.exporter_url + "/metrics"
    hostile_call = wait_until(lambda: live_conversation(stack.exporter_url, "agent-legacy-1"), 60, "a live call")
    polite_call = wait_until(lambda: live_conversation(stack.exporter_url, "agent-legacy-2"), 60, "a live call")
    ws_url = stack.exporter_url.replace("http", "ws") + "/audiohook"
    stop = threading.Event()

    def talk() -> None:
        async def both() -> None:
            await asyncio.gather(
                speak(ws_url, hostile_call, HOSTILE, 110, stop), speak(ws_url, polite_call, POLITE, 110, stop)
            )

        asyncio.run(both())

    speaker = threading.Thread(target=talk, daemon=True)
    started = time.time()
    speaker.start()
    try:

        def sour_now() -> bool:
            text = scrape(metrics_url)
            average = customer_sample(text, "genesys_agent_sentiment_rolling_average", "agent-legacy-1")
            readings = customer_sample(text, "genesys_agent_sentiment_window_readings", "agent-legacy-1")
            return average is not None and average < -0.5 and readings == 5

        wait_until(sour_now, 90, "agent-legacy-1's rolling average below -0.5 from speech", poll=0.5)
        sour_at = time.time()
        slack = stack.wait_for_receiver(lambda m: is_slack(m, "firing", "agent-legacy-1"), timeout=75)
        with capsys.disabled():
            print(
                f"\nAudioHook: first word spoken -> full sour window {sour_at - started:.1f} s; "
                f"-> Slack page {slack['received_at'] - started:.1f} s"
            )
        assert "AgentSentimentSustainedNegative" in body_text(slack) or "sustained" in body_text(slack).lower()
        text = scrape(metrics_url)
        polite = customer_sample(text, "genesys_agent_sentiment_rolling_average", "agent-legacy-2")
        assert polite is not None and polite > 0, "the polite call produced no positive reading"
    finally:
        stop.set()
        speaker.join(30)
    assert not [m for m in stack.receiver_messages() if "agent-legacy-2" in body_text(m)], "the polite call paged"
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        final = response.read().decode()
    assert API_KEY not in final and SECRET not in final
    # The dashboard's AudioHook row shows these sessions (the demo of test_dashboards_live runs no audio).
    audio_panels = [q for q in dashboard_queries() if is_audiohook_query(q.expr)]
    assert len(audio_panels) >= 5
    empty = [q.name for q in audio_panels if not stack.query(substitute(q.expr))]
    assert not empty, f"AudioHook panel queries without data during real audio sessions: {empty}"
    readings = re.search(r'^genesys_audiohook_utterances_total\{outcome="reading"\} (\S+)$', final, re.MULTILINE)
    assert readings is not None and float(readings.group(1)) >= 10
    assert "unauthorized" not in (stack.run_dir / "logs" / "exporter.log").read_text(errors="replace").lower()
