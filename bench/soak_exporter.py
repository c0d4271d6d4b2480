"""The exporter's side of the soak, in a process of its own: `python -m bench.soak_exporter SETTINGS_JSON`.

The soak's RSS budget is about the exporter; with the simulator (its transcript book, its sockets'
outboxes) in the same process, growth could not be attributed. This process runs the real `Exporter`
and nothing else but a line protocol on stdin/stdout, one JSON object per line each way, so that the
soak (which owns the simulator and injects the faults) can ask what only the exporter knows:

- `{"cmd": "state"}`: connected, frames with an outcome (heartbeats and control frames excluded),
  copies of one event dropped by the overlap de-duplication, fault traces (socket losses,
  rollovers, token requests), open channels, outcomes by kind.
- `{"cmd": "structures"}`: sizes of everything that grows with calls, agents or time (see `structures`).
- `{"cmd": "snapshot", "path": P}`: a tracemalloc snapshot dumped to P (when started with --tracemalloc).
- `{"cmd": "stop"}`: stops the exporter and exits.

The protocol's own footprint is one line buffer; it reads exporter state, never changes it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterable
from typing import Any

from genesys_sentiment_exporter.app import Exporter
from genesys_sentiment_exporter.catalogue import Outcome
from genesys_sentiment_exporter.config import Settings


def _get(root: object, path: str) -> Any:
    """`a.b.c` under `root`, or None: the sources are being refactored, a renamed attribute must not kill the soak."""
    value: Any = root
    for name in path.split("."):
        value = getattr(value, name, None)
        if value is None:
            return None
    return value


def _size(root: object, path: str) -> int | None:
    value = _get(root, path)
    try:
        return None if value is None else len(value)
    except TypeError:
        return None


def _total(values: Iterable[Any]) -> int:
    return sum(len(value) for value in values)


def data_outcomes(exporter: Exporter) -> int:
    messages = exporter.ingest.messages
    return sum(messages.values()) - messages[Outcome.HEARTBEAT] - messages[Outcome.CONTROL]


def events(exporter: Exporter) -> int:
    """Socket losses, rollovers and token requests so far: one of them moves when a fault lands."""
    stream, tokens = exporter.stream, exporter.tokens
    return sum(stream.disconnects.values()) + sum(stream.rollovers.values()) + sum(tokens.requests.values())


class OverlapDuplicates:
    """Counts the copies the make-before-break de-duplication discarded (one event, two sockets).

    Outcome `duplicate` also counts a conversation update seen through both its user and its queue
    topic (two events on the wire): only this count tells the copies of one event apart.
    """

    def __init__(self, exporter: Exporter) -> None:
        self.hits = 0
        self.dedup = _get(exporter.source, "session.dedup")
        if self.dedup is not None:
            original = self.dedup.duplicate

            def duplicate(key: str | bytes, connection: int) -> bool:
                found = bool(original(key, connection))
                self.hits += found
                return found

            self.dedup.duplicate = duplicate


def state(exporter: Exporter, copies: OverlapDuplicates) -> dict[str, Any]:
    return {
        "connected": exporter.stream.connected,
        "outcomes": data_outcomes(exporter),
        "overlap_duplicates": copies.hits,
        "events": events(exporter),
        "channels": _size(exporter.source, "live"),
        "messages": {str(k): v for k, v in exporter.ingest.messages.items()},
    }


def structures(exporter: Exporter) -> dict[str, int | None]:
    """Everything per call, per agent, per queue or per topic the exporter holds, with its bound.

    Bounds (defaults): live calls <= 20 000 (attribution max_live; idle calls go after 900 s);
    finished calls and their end times <= 10 000 each (attribution remember); calls holding a
    post-call topic: those ended within postcall_hold (600 s) whose score has not come; scored
    utterance-id sets <= 20 000 conversations (transcripts remember), each dropped with its call after
    the grace; tracker agents <= max_agents; dedup keys <= DEDUP_LIMIT and only during an overlap;
    name cache <= its max_entries.
    """
    source = exporter.source
    session = _get(source, "session")
    attribution = _get(session, "attribution")
    live = _get(attribution, "live") or {}
    scored = _get(session, "transcripts.scored") or {}
    tracker = exporter.tracker
    return {
        "calls_live": len(live),
        "calls_in_grace": sum(1 for call in live.values() if getattr(call, "ended_at", None) is not None),
        "calls_finished": _size(attribution, "finished"),
        "calls_ended_at": _size(attribution, "ended_at"),
        "calls_holding_postcall": _size(attribution, "holding"),
        "scored_conversations": len(scored),
        "scored_utterance_ids": _total(scored.values()),
        "dedup_keys": _size(session, "dedup.seen"),
        "topics_planned": _size(session, "plan.where"),
        "cadence_samples": _total((_get(session, "cadence") or {}).values()),
        "tracker_agents": len(tracker.agents),
        "tracker_seen": _size(tracker, "_seen"),
        "tracker_grace_heap": _size(tracker, "_grace"),
        "queue_series": _size(tracker, "queue_last_ended"),
        "conversations_ended_series": len(tracker.conversations_ended),
        "name_cache": _size(exporter, "names.cache.entries"),
        "channels_open": _size(source, "live"),
        "tasks": len(asyncio.all_tasks()),
    }


async def serve(settings: Settings, trace: Any) -> None:
    exporter = Exporter(settings)
    copies = OverlapDuplicates(exporter)
    await exporter.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def reply(value: object) -> None:
        sys.stdout.write(json.dumps(value) + "\n")
        sys.stdout.flush()

    reply({"ready": True, "metrics_url": exporter.metrics_url})
    try:
        while line := await reader.readline():
            request = json.loads(line)
            cmd = request.get("cmd")
            if cmd == "state":
                reply(state(exporter, copies))
            elif cmd == "structures":
                reply(structures(exporter))
            elif cmd == "snapshot" and trace is not None:
                trace.take_snapshot().dump(request["path"])
                reply({"traced_bytes": trace.get_traced_memory()[0]})
            elif cmd == "stop":
                break
            else:
                reply({"error": f"unknown command {cmd!r}"})
    finally:
        await exporter.stop()
    reply({"stopped": True})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak_exporter", description=__doc__.splitlines()[0])
    parser.add_argument("settings", help="the exporter's settings as JSON")
    parser.add_argument("--tracemalloc", type=int, default=0, help="trace allocations, this many frames deep")
    args = parser.parse_args(argv)
    trace = None
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start(args.tracemalloc)
        trace = tracemalloc
    asyncio.run(serve(Settings(**json.loads(args.settings)), trace))
    return 0


if __name__ == "__main__":
    sys.exit(main())
