"""`python -m bench.soak`: random faults under load for a while (default 10 minutes); not part of `make test`.

The simulator plays the demo's calls (notifications source, five queues) in this process; the exporter
runs in a process of its own (bench/soak_exporter.py), so its RSS is measured alone, from
/proc/<pid>/status. Every cycle one random fault hits the running exporter: a close with 1001/1011, a
TCP drop (1006), a `socket_closing` announcement, a deleted channel (HEAD 404), expired tokens, token
requests answered 429/500. After each fault the soak waits for the stream to come back (bound:
RECONNECT_BOUND), pauses the load, lets both sides settle on one channel and waits until every event
the simulator sent has exactly one outcome (`Ledger`: an event, not a copy: during a rollover one event
goes to two sockets; the count is cumulative from the start: an event handled late is still accounted,
a lost one stays missing until the end, one counted twice shows as a negative). Closes and drops land
at a quiet instant, once the exporter has handled everything sent (what a TCP abort loses in flight is
lost for any client, and a slow exporter has more in flight). /metrics is scraped every SCRAPE_SECONDS.

RSS ("flat within 10 %"): the warm-up lasts until every agent's first call has ended and its grace has
passed (the demo's calls last 60-240 s after up to 13 s of ringing; 5 s grace: 270 s; post-call scores
come 60 s after the end), so every per-call structure has filled and turned over once; 300 s by default,
at most half the run. Then (1) the RSS at the end (median of the last 30 s) is within 10 % of the RSS at
the end of the warm-up (median of the 30 s around it), and (2) the least-squares slope of RSS over the
judged part, projected over 10 minutes, is below 10 % too. Sizes of the exporter's per-call, per-agent
and per-topic structures are recorded at both points; with --tracemalloc the exporter's heap is compared
between the same two points, by traceback.

Prints a table, writes bench/soak.json; exits 2 on an unaccounted frame, a missed recovery bound or
RSS growth beyond 10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from genesys_cloud_simulator import SimulatedGenesysCloud, SimulatorConfig

RESULTS = Path(__file__).with_name("soak.json")
QUEUES = ["q-billing", "q-support", "q-fr", "q-payments", "q-legacy"]
RECONNECT_BOUND = 15.0
DRAIN_SECONDS = 20.0  # how long a quiet moment waits for the exporter to handle what was sent
RSS_TOLERANCE = 0.10
WARMUP_SECONDS = 300.0
SAMPLE_SECONDS = 2.0
SCRAPE_SECONDS = 5.0
WINDOW_SECONDS = 30.0  # RSS at a point: the median of the samples within this span


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class ExporterProcess:
    """The exporter in its own process, asked over a JSON line protocol (bench/soak_exporter.py)."""

    def __init__(self, proc: asyncio.subprocess.Process, metrics_url: str) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.metrics_url = metrics_url
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, settings: dict[str, Any], tracemalloc_frames: int = 0) -> ExporterProcess:
        args = [sys.executable, "-m", "bench.soak_exporter", json.dumps(settings)]
        if tracemalloc_frames:
            args += ["--tracemalloc", str(tracemalloc_frames)]
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=Path(__file__).parent.parent,
            limit=1 << 20,
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60.0)
        if not line:
            raise RuntimeError("the exporter process exited before it was ready")
        return cls(proc, json.loads(line)["metrics_url"])

    async def ask(self, cmd: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        async with self._lock:
            self.proc.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
            await self.proc.stdin.drain()
            line = await asyncio.wait_for(self.proc.stdout.readline(), 120.0)
        if not line:
            raise RuntimeError(f"the exporter process exited (code {self.proc.returncode})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def rss(self) -> int:
        return rss_bytes(self.pid)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            try:
                await self.ask("stop")
                await asyncio.wait_for(self.proc.wait(), 30.0)
            except (RuntimeError, TimeoutError, ConnectionError):
                self.proc.kill()
                await self.proc.wait()


class Ledger:
    """Events the simulator put on the wire, once each however many channels carried a copy.

    The unit of account is the event: during a make-before-break rollover one event goes to the old
    and the new socket, the exporter counts one and discards the other copy, and the old socket's
    copies are dropped when the exporter closes it (by design: the new socket has them). An event
    is expected when at least one copy went to a socket the simulator had not already closed (it
    queues what it publishes behind its own close frame, and that never reaches the wire).
    """

    def __init__(self, sim: SimulatedGenesysCloud) -> None:
        self.events = 0
        self.unsendable = 0  # events whose only copies sat behind the simulator's own close
        self._copies: list[Any] = []
        self._endpoint = sim.notifications
        self._socket_class = type(self)._socket_type()
        self._send, self._close = self._socket_class.send, self._socket_class.close
        self._publish = sim.notifications.publish
        ledger = self

        def send(sock: Any, text: str) -> None:
            ledger._copies.append(sock)
            ledger._send(sock, text)

        def close(sock: Any, code: int = 1000) -> None:
            sock.soak_closing = True
            ledger._close(sock, code)

        def publish(topic: str, body: Any) -> int:
            ledger._copies = []
            sent = ledger._publish(topic, body)
            if sent:
                if any(not getattr(c, "soak_closing", False) and not c.ws.closed for c in ledger._copies):
                    ledger.events += 1
                else:
                    ledger.unsendable += 1
            ledger._copies = []
            return int(sent)

        self._socket_class.send, self._socket_class.close = send, close
        sim.notifications.publish = publish  # type: ignore[method-assign]

    @staticmethod
    def _socket_type() -> Any:
        from genesys_cloud_simulator import notifications

        return notifications._Socket

    def restore(self) -> None:
        self._socket_class.send, self._socket_class.close = self._send, self._close
        del self._endpoint.publish


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


def _pause(sim: SimulatedGenesysCloud) -> None:
    """Quiet: no scenario events and no transcript batches (the simulator's transcript loop is separate)."""
    sim.pause_scenarios()
    sim.notifications.publish_transcripts_due = lambda: 0  # type: ignore[method-assign]


def _resume(sim: SimulatedGenesysCloud) -> None:
    del sim.notifications.publish_transcripts_due  # back to the class's method: held utterances go out
    sim.resume_scenarios()


async def _until(condition: Callable[[], Awaitable[bool] | bool], timeout: float) -> float | None:
    started = time.monotonic()
    while not await _value(condition()):
        if time.monotonic() - started > timeout:
            return None
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def _median_near(series: list[tuple[float, int]], start: float, end: float) -> int | None:
    values = [value for at, value in series if start <= at <= end]
    return int(statistics.median(values)) if values else None


def _slope(series: list[tuple[float, int]]) -> float:
    """Least-squares bytes per second."""
    if len(series) < 2:
        return 0.0
    xs, ys = [at for at, _ in series], [value for _, value in series]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def judge_rss(series: list[tuple[float, int]], warmup: float) -> dict[str, Any]:
    """The definition in the module docstring, on (seconds, bytes) samples of the exporter's RSS."""
    if not series:
        return {"samples": 0, "flat": None}
    end_at = series[-1][0]
    half = WINDOW_SECONDS / 2
    warm = _median_near(series, warmup - half, warmup + half) or series[0][1]
    end = _median_near(series, end_at - WINDOW_SECONDS, end_at) or series[-1][1]
    judged = [(at, value) for at, value in series if at >= warmup]
    slope = _slope(judged)
    growth = end / warm - 1.0
    projected = slope * 600.0 / warm
    return {
        "samples": len(series),
        "start_bytes": series[0][1],
        "warmup_seconds": warmup,
        "warmup_end_bytes": warm,
        "end_bytes": end,
        "max_bytes": max(value for _, value in series),
        "growth": round(growth, 4),
        "slope_bytes_per_second": round(slope, 1),
        "slope_projected_10min": round(projected, 4),
        "flat": growth <= RSS_TOLERANCE and projected <= RSS_TOLERANCE,
    }


def _heap_diff(before_path: str, after_path: str, top: int = 12) -> dict[str, Any]:
    import tracemalloc

    before = tracemalloc.Snapshot.load(before_path)
    after = tracemalloc.Snapshot.load(after_path)
    traced = [sum(s.size for s in snap.statistics("filename")) for snap in (before, after)]
    lines = []
    for stat in after.compare_to(before, "traceback")[:top]:
        frames = [f"{f.filename.rsplit('/site-packages/', 1)[-1]}:{f.lineno}" for f in stat.traceback][:4]
        lines.append({"size_diff": stat.size_diff, "count_diff": stat.count_diff, "size": stat.size, "at": frames})
    return {
        "traced_bytes": traced,
        "traced_growth": round(traced[1] / traced[0] - 1.0, 4) if traced[0] else None,
        "top_growth": lines,
    }


async def soak(
    duration: float,
    cycle: float,
    warmup: float,
    agents: int,
    seed: int,
    tracemalloc_frames: int = 0,
) -> dict[str, Any]:
    rng = random.Random(seed)
    warmup = min(warmup, duration / 2)
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
    settings: dict[str, Any] = {
        "api_base_url": sim.base_url,
        "login_base_url": sim.base_url,
        "client_id": sim.config.client_id,
        "client_secret": sim.config.client_secret,
        "web_listen_address": "127.0.0.1:0",
        "source": "notifications",
        "queue_id": QUEUES,
        "notifications_channel_probe_seconds": 1.0,
    }
    ledger = Ledger(sim)
    exporter = await ExporterProcess.start(settings, tracemalloc_frames)
    state: dict[str, Any] = {}

    async def refresh() -> dict[str, Any]:
        state.update(await exporter.ask("state"))
        return state

    async def connected() -> bool:
        return bool((await refresh())["connected"])

    faults: Counter[str] = Counter()
    lost_by_fault: Counter[str] = Counter()  # frames given up on in the cycle of this fault
    twice_by_fault: Counter[str] = Counter()  # events with more than one outcome in the cycle of this fault
    unobserved: Counter[str] = Counter()  # faults that left no trace in the exporter's counters
    late_cycles: Counter[str] = Counter()  # quiet moments that timed out before the exporter caught up
    undrained_faults = 0  # destructive faults that landed before the exporter caught up
    recoveries: list[float] = []
    missed: list[str] = []
    rss: list[tuple[float, int]] = []
    sim_rss: list[tuple[float, int]] = []
    sizes: dict[str, Any] = {}
    heap: dict[str, Any] = {}
    scrapes = Counter[str]()
    snapshots = tempfile.TemporaryDirectory(prefix="soak-heap-")
    started = time.monotonic()
    sent0 = seen0 = copies0 = 0
    given_up = 0  # frames missing at a quiet moment's timeout (may still come: counted at the end)

    def handled() -> int:
        """Events the exporter gave an outcome: outcomes less the copies of one event it discarded."""
        return int(state["outcomes"]) - int(state["overlap_duplicates"])

    def deficit() -> int:
        return (ledger.events - sent0) - (handled() - seen0)

    async def drained() -> bool:
        await refresh()
        return deficit() <= given_up

    async def sample() -> None:
        async with httpx.AsyncClient(timeout=10.0) as client:
            next_scrape = 0.0
            while True:
                at = time.monotonic() - started
                rss.append((at, exporter.rss()))
                sim_rss.append((at, rss_bytes()))
                if at >= next_scrape:
                    next_scrape = at + SCRAPE_SECONDS
                    try:
                        page = await client.get(exporter.metrics_url)
                        scrapes[str(page.status_code)] += 1
                    except httpx.HTTPError as exc:
                        scrapes[type(exc).__name__] += 1
                await asyncio.sleep(SAMPLE_SECONDS)

    async def checkpoint(name: str) -> None:
        sizes[name] = {"at_seconds": round(time.monotonic() - started, 1), **await exporter.ask("structures")}
        if tracemalloc_frames:
            path = os.path.join(snapshots.name, name)
            heap.setdefault("paths", {})[name] = path
            await exporter.ask("snapshot", path=path)

    sampler = asyncio.create_task(sample())
    try:
        if await _until(connected, RECONNECT_BOUND * 2) is None:
            raise RuntimeError("the exporter never subscribed")
        # Start counting from a drained instant: load paused, outboxes empty, the exporter's count still.
        _pause(sim)
        await _until(lambda: all(s.outbox.empty() for s in _sockets(sim)), 5.0)
        await asyncio.sleep(0.5)
        await refresh()
        sent0, seen0, copies0 = ledger.events, handled(), sim.notifications.messages_sent
        _resume(sim)
        while time.monotonic() - started < duration:
            await asyncio.sleep(cycle * rng.uniform(0.5, 1.0))
            if "warmup" not in sizes and time.monotonic() - started >= warmup:
                await checkpoint("warmup")
            name = rng.choice(sorted(FAULTS))
            faults[name] += 1
            quiet = name in DESTRUCTIVE
            if quiet:
                # A TCP abort or a close loses what is still in flight on that socket, for any client;
                # the fault lands once the exporter has handled everything sent, so accounting stays exact.
                _pause(sim)
                await _until(lambda: all(s.outbox.empty() for s in _sockets(sim)), 5.0)
                if await _until(drained, DRAIN_SECONDS) is None:
                    undrained_faults += 1
            fault_at = time.monotonic()
            before = (await refresh())["events"]
            await FAULTS[name](sim)
            seen_fault = await _until(lambda: _changed(refresh, "events", before), 10.0)  # noqa: B023
            back = await _until(connected, RECONNECT_BOUND)
            if back is None:
                missed.append(name)
            elif seen_fault is not None:
                recoveries.append(time.monotonic() - fault_at)
            else:
                unobserved[name] += 1
            # A quiet moment: load paused, one channel each side; every frame sent so far has an outcome.
            if not quiet:
                _pause(sim)
            await _until(
                lambda: _settled(refresh, sim),
                10.0,
            )
            if await _until(drained, DRAIN_SECONDS) is None:
                late_cycles[name] += 1
                lost_by_fault[name] += deficit() - given_up
                given_up = deficit()
            elif deficit() < given_up:  # more outcomes than events: one event counted twice
                twice_by_fault[name] += given_up - deficit()
                given_up = deficit()
            _resume(sim)
        await checkpoint("end")
        # The end: load paused, as long as it takes (within reason) for the exporter to catch up.
        _pause(sim)
        given_up = 0
        await _until(drained, DRAIN_SECONDS * 3)
        frames_checked = ledger.events - sent0
        copies_sent = sim.notifications.messages_sent - copies0
        unaccounted = deficit()
    finally:
        sampler.cancel()
        await exporter.stop()
        await sim.stop()
        ledger.restore()
    if tracemalloc_frames and {"warmup", "end"} <= set(heap.get("paths", {})):
        heap = _heap_diff(heap["paths"]["warmup"], heap["paths"]["end"])
    snapshots.cleanup()
    verdict = judge_rss(rss, warmup)
    return {
        "duration_seconds": round(time.monotonic() - started, 1),
        "faults": dict(faults),
        "recovery_seconds": {
            "max": round(max(recoveries), 3) if recoveries else None,
            "median": round(statistics.median(recoveries), 3) if recoveries else None,
        },
        "missed_recoveries": missed,
        "faults_unobserved": dict(unobserved),
        "frames_checked": frames_checked,
        "frame_copies_sent": copies_sent,
        "overlap_copies_discarded": state.get("overlap_duplicates"),
        "events_behind_simulator_close": ledger.unsendable,
        "frames_unaccounted": unaccounted,
        "frames_given_up_by_fault": dict(lost_by_fault),
        "events_counted_twice_by_fault": dict(twice_by_fault),
        "quiet_moments_late": dict(late_cycles),
        "destructive_faults_before_drained": undrained_faults,
        "messages": state.get("messages", {}),
        "scrapes": dict(scrapes),
        "exporter_pid": exporter.pid,
        "soak_pid": os.getpid(),
        "rss": verdict,
        "rss_series_mb": [[round(at), round(value / 2**20, 1)] for at, value in rss[:: max(1, len(rss) // 150)]],
        "simulator_process_rss": judge_rss(sim_rss, warmup),
        "structures": sizes,
        "tracemalloc": heap or None,
    }


async def _value(result: Awaitable[bool] | bool) -> bool:
    return bool(await result) if inspect.isawaitable(result) else result


async def _changed(refresh: Callable[[], Awaitable[dict[str, Any]]], key: str, before: Any) -> bool:
    return bool((await refresh())[key] != before)


async def _settled(refresh: Callable[[], Awaitable[dict[str, Any]]], sim: SimulatedGenesysCloud) -> bool:
    now = await refresh()
    return bool(now["connected"]) and now["channels"] == 1 and len(_sockets(sim)) == 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of faults under load (default 600)")
    parser.add_argument("--cycle", type=float, default=8.0, help="seconds between faults, at most (default 8)")
    parser.add_argument(
        "--warmup", type=float, default=WARMUP_SECONDS, help="seconds before RSS is judged (default 300)"
    )
    parser.add_argument("--agents", type=int, default=200, help="steady agents in the load (default 200)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--tracemalloc", type=int, default=0, metavar="FRAMES", help="trace the exporter's heap, FRAMES deep"
    )
    args = parser.parse_args(argv)
    result = asyncio.run(soak(args.duration, args.cycle, args.warmup, args.agents, args.seed, args.tracemalloc))
    for key, value in result.items():
        if key != "rss_series_mb":
            print(f"{key:32} {value}")
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    failed = result["frames_unaccounted"] or result["missed_recoveries"] or not result["rss"]["flat"]
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
