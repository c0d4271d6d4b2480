"""`python -m bench.soak`: random faults under load for a while (default 10 minutes); not part of `make test`.

The simulator plays the demo's calls (notifications source, five queues) while, every cycle, one
random fault hits the running exporter: a close with 1001/1011, a TCP drop (1006), a
`socket_closing` announcement, a deleted channel (HEAD 404), expired tokens, token requests
answered 429/500. After each fault the soak waits for the stream to come back (bound:
RECONNECT_BOUND), pauses the load, lets both sides settle on one channel, and checks that every
frame the simulator delivered since the last check got exactly one outcome (closes and drops land
at a quiet instant: what a TCP abort loses in flight is lost for any client). RSS is sampled each
cycle; with --tracemalloc the exporter's own heap (allocations with exporter code on the stack; the
simulator shares the process) is compared between the end of the warm-up and the end, and must stay
within 10 %; without it, RSS is judged the same way.

Prints a table, writes bench/soak.json; exits 2 on an unaccounted frame, a missed recovery bound or
RSS growth beyond 10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from genesys_cloud_simulator import SimulatedGenesysCloud, SimulatorConfig

from genesys_sentiment_exporter.app import Exporter
from genesys_sentiment_exporter.catalogue import Outcome
from genesys_sentiment_exporter.config import Settings
from genesys_sentiment_exporter.sources.notifications import NotificationsSource

RESULTS = Path(__file__).with_name("soak.json")
QUEUES = ["q-billing", "q-support", "q-fr", "q-payments", "q-legacy"]
RECONNECT_BOUND = 15.0
RSS_TOLERANCE = 0.10


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def data_outcomes(exporter: Exporter) -> int:
    messages = exporter.ingest.messages
    return sum(messages.values()) - messages[Outcome.HEARTBEAT] - messages[Outcome.CONTROL]


def _sockets(sim: SimulatedGenesysCloud) -> list[Any]:
    return [c.socket for c in sim.notifications.channels.values() if c.socket is not None]


async def _close(sim: SimulatedGenesysCloud, code: int) -> None:
    for sock in _sockets(sim):
        sock.close(code)


async def _drop(sim: SimulatedGenesysCloud) -> None:
    for sock in _sockets(sim):
        transport = sock.ws._req.transport
        if transport is not None:
            transport.abort()


async def _closing(sim: SimulatedGenesysCloud) -> None:
    sim.notifications.socket_closing(close_after=0.5)


async def _gone(sim: SimulatedGenesysCloud) -> None:
    for channel_id in list(sim.notifications.channels):
        sim.notifications.delete_channel(channel_id, close_socket=False)


async def _expire(sim: SimulatedGenesysCloud) -> None:
    sim.expire_tokens()


async def _token(sim: SimulatedGenesysCloud, status: int) -> None:
    sim.fail_token_requests(2, status, retry_after=0.5 if status == 429 else None)
    sim.expire_tokens()  # so that a new token is asked for (and refused twice) now


DESTRUCTIVE = frozenset({"close_1001", "close_1011", "drop_1006"})
FAULTS: dict[str, Callable[[SimulatedGenesysCloud], Awaitable[None]]] = {
    "close_1001": lambda sim: _close(sim, 1001),
    "close_1011": lambda sim: _close(sim, 1011),
    "drop_1006": _drop,
    "socket_closing": _closing,
    "channel_gone": _gone,
    "tokens_expired": _expire,
    "token_429": lambda sim: _token(sim, 429),
    "token_500": lambda sim: _token(sim, 500),
}


def _exporter_heap(trace: Any, snapshot: Any) -> int:
    """Live bytes allocated with the exporter's code anywhere on the stack (the simulator shares the process)."""
    mine = snapshot.filter_traces([trace.Filter(True, "*genesys_sentiment_exporter*", all_frames=True)])
    return sum(stat.size for stat in mine.statistics("filename"))


def _events(exporter: Exporter) -> int:
    """Socket losses, rollovers and token requests so far: one of them moves when a fault lands."""
    stream, tokens = exporter.stream, exporter.tokens
    return sum(stream.disconnects.values()) + sum(stream.rollovers.values()) + sum(tokens.requests.values())


async def _until(condition: Callable[[], bool], timeout: float) -> float | None:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            return None
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def soak(
    duration: float, cycle: float, warmup: float, agents: int, seed: int, trace: Any = None
) -> dict[str, Any]:
    rng = random.Random(seed)
    sim = SimulatedGenesysCloud(
        SimulatorConfig(
            scenarios=("steady", "sour"),
            agents=agents,
            seed=seed,
            reading_interval_seconds=1.0,
            notifications_heartbeat_seconds=2.0,
        )
    )
    await sim.start()
    values: dict[str, Any] = {
        "api_base_url": sim.base_url,
        "login_base_url": sim.base_url,
        "client_id": sim.config.client_id,
        "client_secret": sim.config.client_secret,
        "web_listen_address": "127.0.0.1:0",
        "source": "notifications",
        "queue_id": QUEUES,
        "notifications_channel_probe_seconds": 1.0,
    }
    settings = Settings(**values)
    exporter = Exporter(settings)
    source = exporter.source
    assert isinstance(source, NotificationsSource)
    await exporter.start()
    faults: Counter[str] = Counter()
    by_fault: Counter[str] = Counter()  # unaccounted frames by the fault of their cycle
    baseline: Any = None
    heap: list[int] = []  # bytes allocated by the exporter's code (tracemalloc), after warm-up and at the end
    unobserved: Counter[str] = Counter()  # faults that left no trace in the exporter's counters
    recoveries: list[float] = []
    missed: list[str] = []
    unaccounted = 0
    checked = 0
    rss: list[tuple[float, int]] = []
    started = time.monotonic()
    try:
        if await _until(lambda: exporter.stream.connected, RECONNECT_BOUND) is None:
            raise RuntimeError("the exporter never subscribed")
        sent_mark, seen_mark = sim.notifications.messages_sent, data_outcomes(exporter)
        while time.monotonic() - started < duration:
            await asyncio.sleep(cycle * rng.uniform(0.5, 1.0))
            name = rng.choice(sorted(FAULTS))
            faults[name] += 1
            if name in DESTRUCTIVE:
                # A TCP abort or a close loses what is still in flight on that socket, for any client;
                # the fault lands at a quiet instant (load paused, outboxes empty) so accounting stays exact.
                sim.pause_scenarios()
                await _until(lambda: all(sock.outbox.empty() for sock in _sockets(sim)), 5.0)
                await asyncio.sleep(0.2)
            fault_at = time.monotonic()
            before = _events(exporter)
            await FAULTS[name](sim)
            seen_fault = await _until(lambda: _events(exporter) != before, 10.0)  # noqa: B023 - awaited here
            back = await _until(lambda: exporter.stream.connected, RECONNECT_BOUND)
            if back is None:
                missed.append(name)
                continue
            if seen_fault is not None:
                recoveries.append(time.monotonic() - fault_at)
            else:
                unobserved[name] += 1
            # A quiet moment: load paused, one channel each side; every delivered frame has an outcome.
            sim.pause_scenarios()
            settled = await _until(
                lambda: len(source.live) == 1 and len(_sockets(sim)) == 1 and exporter.stream.connected, 10.0
            )
            sent = sim.notifications.messages_sent - sent_mark
            accounted = await _until(lambda: data_outcomes(exporter) - seen_mark == sent, 5.0)  # noqa: B023
            seen = data_outcomes(exporter) - seen_mark
            if settled is not None and accounted is None:
                unaccounted += abs(sent - seen)
            checked += sent
            sent_mark, seen_mark = sim.notifications.messages_sent, data_outcomes(exporter)
            sim.resume_scenarios()
            gc.collect()
            rss.append((time.monotonic() - started, rss_bytes()))
            by_fault[name] += abs(sent - seen) if settled is not None and accounted is None else 0
            if trace is not None and baseline is None and time.monotonic() - started >= warmup:
                baseline = trace.take_snapshot()
                heap.append(_exporter_heap(trace, baseline))
    finally:
        await exporter.stop()
        await sim.stop()
    if trace is not None and baseline is not None:
        final = trace.take_snapshot()
        heap.append(_exporter_heap(trace, final))
        for line in final.compare_to(baseline, "lineno")[:15]:
            print("tracemalloc", line)
    after_warmup = [value for at, value in rss if at >= warmup] or [value for _at, value in rss]
    growth = (after_warmup[-1] / after_warmup[0] - 1.0) if after_warmup else 0.0
    return {
        "duration_seconds": round(time.monotonic() - started, 1),
        "faults": dict(faults),
        "recovery_seconds": {
            "max": round(max(recoveries), 3) if recoveries else None,
            "median": round(sorted(recoveries)[len(recoveries) // 2], 3) if recoveries else None,
        },
        "missed_recoveries": missed,
        "faults_unobserved": dict(unobserved),
        "frames_checked": checked,
        "frames_unaccounted": unaccounted,
        "unaccounted_by_fault": dict(by_fault),
        "messages": {str(k): v for k, v in exporter.ingest.messages.items()},
        "rss_bytes_first_after_warmup": after_warmup[0] if after_warmup else 0,
        "rss_bytes_last": after_warmup[-1] if after_warmup else 0,
        "rss_growth": round(growth, 4),
        "exporter_heap_bytes": heap,
        "exporter_heap_growth": round(heap[-1] / heap[0] - 1.0, 4) if len(heap) == 2 and heap[0] else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of faults under load (default 600)")
    parser.add_argument("--cycle", type=float, default=8.0, help="seconds between faults, at most (default 8)")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before RSS is judged (default 60)")
    parser.add_argument("--agents", type=int, default=200, help="steady agents in the load (default 200)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--tracemalloc", action="store_true", help="print the 15 lines whose memory grew most")
    args = parser.parse_args(argv)
    trace = None
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start(16)
        trace = tracemalloc
    result = asyncio.run(soak(args.duration, args.cycle, args.warmup, args.agents, args.seed, trace))
    for key, value in result.items():
        print(f"{key:32} {value}")
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    # The simulator shares the process: with --tracemalloc the exporter's own heap is judged, else RSS.
    growth = result["exporter_heap_growth"] if result["exporter_heap_growth"] is not None else result["rss_growth"]
    failed = result["frames_unaccounted"] or result["missed_recoveries"] or growth > RSS_TOLERANCE
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
