"""`python -m bench.audiohook_bench`: what AudioHook recognition costs, and how fast a sour sentence shows.

Figures (ratios and per-core numbers, never timed assertions):

- **real-time factor** of the default engine (PocketSphinx): CPU seconds per second of speech, over
  espeak-ng lines sent through the telephony path (8 kHz, mu-law, VAD-segmented), and the whole
  worker pipeline's CPU (decode + VAD + recognition + scoring) per second of a call's audio;
- **sessions per core**: 1 / (worker CPU per call-second), for a call whose customer speaks about
  half the time, then checked live: that many sessions (and 1.5 x as many) stream in real time to one
  worker, and the run reports dropped audio and recognition lag;
- **event-loop latency while recognising**: a scrape of /metrics and an AudioHook ping -> pong, idle
  and under that load (the ratio is the figure);
- **time from the end of a hostile spoken sentence to its reading in /metrics**, polling /metrics.

Results go to bench/audiohook_results.json. `--quick` (~1 min) uses fewer lines and shorter runs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from genesys_cloud_simulator import SimulatedGenesysCloud, SimulatorConfig
from genesys_cloud_simulator.audiohook_client import AudioHookClient, pcm_to_ulaw, silence, synthesise
from genesys_cloud_simulator.scenarios import CallEvent

from genesys_sentiment_exporter.app import Exporter
from genesys_sentiment_exporter.audiohook.audio import split_channels, ulaw_to_pcm16
from genesys_sentiment_exporter.audiohook.segment import Segmenter
from genesys_sentiment_exporter.config import Settings
from genesys_sentiment_exporter.sources.notifications_protocol import sentiment_topic

RESULTS = Path(__file__).with_name("audiohook_results.json")
API_KEY = "YmVuY2gtYXVkaW9ob29rLWtleQ=="
SECRET = base64.b64encode(b"bench audiohook client secret!!!").decode()
LINES = (
    "I am really angry.",
    "This is awful.",
    "I really appreciate your help.",
    "I am very angry. This is awful and horrible.",
    "That is wonderful, thank you.",
    "I have been waiting for two weeks and nobody called me back.",
    "Can you check my account please?",
    "This is the third time I am calling about the same problem.",
)
HOSTILE = "I am really angry. This is awful."


def telephony(pcm: bytes) -> bytes:
    """What the server decodes after mu-law on the wire."""
    return ulaw_to_pcm16(pcm_to_ulaw(pcm))


def call_audio(lines: tuple[str, ...]) -> bytes:
    """A customer channel that speaks about half the time: each line, then as long a silence (the agent's turn)."""
    parts = []
    for line in lines:
        speech = synthesise(line)
        parts.append(speech + silence(len(speech) / 2 / 8000 + 0.5))
    return b"".join(parts)


def measure_rtf(lines: tuple[str, ...]) -> dict[str, Any]:
    import webrtcvad

    from genesys_sentiment_exporter.analysis import build_analyzer
    from genesys_sentiment_exporter.audiohook.engines import build_engine

    engine = build_engine("pocketsphinx")
    analyzer = build_analyzer("vader")
    audio = telephony(call_audio(lines))
    call_seconds = len(audio) / 2 / 8000
    vad = webrtcvad.Vad(2)
    wire = pcm_to_ulaw(audio)
    front_start = time.process_time()
    segments = []
    segmenter = Segmenter(lambda frame: bool(vad.is_speech(frame, 8000)))
    for offset in range(0, len(wire), 800):
        (pcm,) = split_channels(wire[offset : offset + 800], "PCMU", 1)
        segments += segmenter.feed(pcm, offset / 8000)
    segments += segmenter.flush()
    front = time.process_time() - front_start
    recognise = 0.0
    texts = []
    for segment in segments:
        began = time.process_time()
        text = engine.transcribe(segment.audio)
        analyzer.analyze(text, "en-US")
        recognise += time.process_time() - began
        texts.append(text)
    speech = sum(s.seconds for s in segments)
    pipeline = (front + recognise) / call_seconds
    return {
        "utterances": len(segments),
        "speech_seconds": round(speech, 2),
        "call_seconds": round(call_seconds, 2),
        "rtf_speech": round(recognise / speech, 3),
        "decode_vad_cpu_per_call_second": round(front / call_seconds, 5),
        "worker_cpu_per_call_second": round(pipeline, 3),
        "sessions_per_core_estimate": round(1 / pipeline, 1),
        "transcripts": texts,
    }


# -- live -------------------------------------------------------------------------------------------


class Live:
    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.sim = SimulatedGenesysCloud(SimulatorConfig())
        self.exporter: Exporter | None = None
        self.calls = 0

    async def __aenter__(self) -> Live:
        await self.sim.start("127.0.0.1", 0)
        values: dict[str, Any] = {
            "api_base_url": self.sim.base_url,
            "login_base_url": self.sim.base_url,
            "client_id": self.sim.config.client_id,
            "client_secret": self.sim.config.client_secret,
            "web_listen_address": "127.0.0.1:0",
            "source": "notifications,audiohook",
            "queue_id": ["q1"],
            "audiohook_api_key": API_KEY,
            "audiohook_client_secret": SECRET,
            "audiohook_workers": self.workers,
            "audiohook_max_lag_seconds": 600.0,  # measure the cost of all audio; lag shows capacity
            "window_size": 1,
        }
        settings = Settings(**values)
        self.exporter = Exporter(settings)
        await self.exporter.start()
        source = self.exporter.audiohook
        assert source is not None
        while not (self.exporter.stream.connected and source.started.is_set()):
            await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.exporter is not None:
            await self.exporter.stop()
        await self.sim.stop()

    async def session(self) -> tuple[AudioHookClient, str]:
        assert self.exporter is not None
        self.calls += 1
        conversation, agent = f"conv-{self.calls}", f"agent-{self.calls}"
        for state in ("alerting", "connected"):
            self.sim.notifications.publish_call(
                CallEvent(0.0, conversation, agent, "q1", state, None, False, None, True)
            )
        while not self.sim.notifications.subscribed(sentiment_topic(conversation)):
            await asyncio.sleep(0.01)
        url = self.exporter.web.url.replace("http", "ws") + "/audiohook"
        client = AudioHookClient(url=url, api_key=API_KEY, client_secret=SECRET)
        await client.connect()
        await client.open(conversation)
        return client, agent


async def _scrape(http: httpx.AsyncClient, url: str) -> tuple[float, str]:
    began = time.perf_counter()
    text = (await http.get(url)).text
    return time.perf_counter() - began, text


async def _ping(client: AudioHookClient) -> float:
    before = len([m for m in client.received if m.get("type") == "pong"])
    began = time.perf_counter()
    await client.send("ping")
    while len([m for m in client.received if m.get("type") == "pong"]) == before:
        await asyncio.sleep(0.0005)
    return time.perf_counter() - began


def worker_cpu(live: Live) -> float:
    """CPU seconds (user + system) the recognition workers have used so far (Linux /proc)."""
    assert live.exporter is not None and live.exporter.audiohook is not None
    total = 0.0
    for worker in live.exporter.audiohook.pool.workers:
        fields = Path(f"/proc/{worker.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _value(text: str, name: str, needle: str = "") -> float | None:
    for line in text.splitlines():
        if line.startswith(name) and needle in line:
            return float(line.rsplit(" ", 1)[1])
    return None


async def sentence_to_reading(live: Live, http: httpx.AsyncClient, repeats: int) -> list[float]:
    """Speak a hostile sentence in real time; time from its last frame sent to the reading in /metrics."""
    assert live.exporter is not None
    speaker, _agent = await live.session()
    speech = synthesise(HOSTILE)
    delays = []
    for _ in range(repeats):
        text = (await http.get(live.exporter.metrics_url)).text
        readings = _value(text, "genesys_audiohook_utterances_total", 'outcome="reading"') or 0.0
        await speaker.stream(speech, realtime=1.0)
        ended = time.perf_counter()
        silence_task = asyncio.create_task(speaker.stream(silence(3.0), realtime=1.0))
        while True:
            text = (await http.get(live.exporter.metrics_url)).text
            now = _value(text, "genesys_audiohook_utterances_total", 'outcome="reading"') or 0.0
            if now > readings:
                delays.append(time.perf_counter() - ended)
                break
            if time.perf_counter() - ended > 15:
                break
            await asyncio.sleep(0.02)
        await silence_task
    await speaker.close()
    return delays


async def load(live: Live, sessions: int, seconds: float, audio: bytes, http: httpx.AsyncClient) -> dict[str, Any]:
    """`sessions` calls streaming in real time for `seconds`; scrape and ping latency meanwhile."""
    assert live.exporter is not None
    source = live.exporter.audiohook
    assert source is not None
    clients = [(await live.session())[0] for _ in range(sessions)]
    probe, _agent = await live.session()
    dropped_before = sum(source.dropped_seconds.values())
    cpu_before = worker_cpu(live)
    received_before = source.audio_seconds.get("external", 0.0)
    step = len(audio) // max(1, sessions)

    async def talk(index: int, client: AudioHookClient) -> None:
        start = (index * step) & ~1
        rotated = audio[start:] + audio[:start]
        need = int(seconds * 8000) * 2
        buffer = (rotated * (need // len(rotated) + 1))[:need]
        await client.stream(buffer, realtime=1.0)

    streams = asyncio.gather(*(talk(i, c) for i, c in enumerate(clients)))
    scrapes, pings, lags = [], [], []
    began = time.monotonic()
    await asyncio.sleep(1.0)
    while time.monotonic() - began < seconds - 0.5:
        scrape, _ = await _scrape(http, live.exporter.metrics_url)
        scrapes.append(scrape)
        pings.append(await _ping(probe))
        lags.append(source.pool.lag())
        await asyncio.sleep(0.25)
    await streams
    for client in [*clients, probe]:
        await client.close()
    caught_up = time.monotonic()
    while source.pool.lag() > 0 and time.monotonic() - caught_up < 300:
        await asyncio.sleep(0.1)
    catch_up = time.monotonic() - caught_up
    cpu = worker_cpu(live) - cpu_before
    dropped = sum(source.dropped_seconds.values()) - dropped_before
    received = source.audio_seconds.get("external", 0.0) - received_before
    recognised = received - dropped
    return {
        "sessions": sessions,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "catch_up_seconds_after_streams_ended": round(catch_up, 1),
        "worker_cpu_per_recognised_call_second": round(cpu / recognised, 3) if recognised else None,
        "sessions_per_core_from_cpu": round(recognised / cpu, 1) if cpu else None,
        "received_seconds": round(received, 1),
        "dropped_seconds": round(dropped, 1),
        "dropped_fraction": round(dropped / received, 4) if received else None,
        "lag_max_seconds": round(max(lags, default=0.0), 2),
        "scrape_ms_p50": round(1000 * statistics.median(scrapes), 2),
        "scrape_ms_max": round(1000 * max(scrapes), 2),
        "ping_ms_p50": round(1000 * statistics.median(pings), 2),
        "ping_ms_max": round(1000 * max(pings), 2),
    }


async def idle_latency(live: Live, http: httpx.AsyncClient, samples: int) -> dict[str, float]:
    assert live.exporter is not None
    probe, _ = await live.session()
    scrapes, pings = [], []
    for _ in range(samples):
        scrapes.append((await _scrape(http, live.exporter.metrics_url))[0])
        pings.append(await _ping(probe))
        await asyncio.sleep(0.05)
    await probe.close()
    return {
        "scrape_ms_p50": round(1000 * statistics.median(scrapes), 2),
        "ping_ms_p50": round(1000 * statistics.median(pings), 2),
    }


async def run_live(args: argparse.Namespace, per_core: float) -> dict[str, Any]:
    audio = call_audio(LINES[:4] if args.quick else LINES)
    out: dict[str, Any] = {}
    async with Live(workers=1) as live, httpx.AsyncClient(trust_env=False, timeout=30) as http:
        out["idle"] = await idle_latency(live, http, 20)
        delays = await sentence_to_reading(live, http, 2 if args.quick else 5)
        out["sentence_to_reading_seconds"] = {
            "runs": [round(d, 3) for d in delays],
            "median": round(statistics.median(delays), 3) if delays else None,
        }
        steps = (
            []
            if args.latency_only
            else (
                [max(1, int(per_core * 0.8))]
                if args.quick
                else [max(1, int(per_core * 0.8)), max(2, int(per_core * 1.5))]
            )
        )
        out["load"] = []
        for sessions in steps:
            result = await load(live, sessions, args.seconds, audio, http)
            result["scrape_ratio_vs_idle"] = round(result["scrape_ms_p50"] / out["idle"]["scrape_ms_p50"], 2)
            result["ping_ratio_vs_idle"] = round(result["ping_ms_p50"] / out["idle"]["ping_ms_p50"], 2)
            out["load"].append(result)
            print(json.dumps(result), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audiohook_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer lines, one load step, shorter runs")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per load step (default 30; quick 15)")
    parser.add_argument("--no-live", action="store_true", help="only the offline real-time factor")
    parser.add_argument("--latency-only", action="store_true", help="live: idle latency and sentence->reading only")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (15.0 if args.quick else 30.0)
    results: dict[str, Any] = {
        "environment": {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()},
    }
    rtf = measure_rtf(LINES[:4] if args.quick else LINES)
    results["offline"] = rtf
    print(json.dumps({k: v for k, v in rtf.items() if k != "transcripts"}), flush=True)
    if not args.no_live:
        results["live"] = asyncio.run(run_live(args, rtf["sessions_per_core_estimate"]))
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results.get("live", {}), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
