"""A stand-in for `python -m genesys_sentiment_exporter demo` that follows the exporter's metric contract.

Every family it serves is taken from the metric catalogue (name, type, help, labels), so it cannot
drift from what the exporter serves; tests/test_metric_catalogue.py checks its page against it.

It lets the bundle tests (and a time-to-page measurement) drive the stack without the real
exporter: one healthy agent in q-support, and `agent-sour` in q-billing whose full-window rolling
average drops from +0.3 to -0.8 `--sour-after` seconds after start (never, by default).

    python tests/bundle/fake_exporter.py --web.listen-address 127.0.0.1:8729 --sour-after 5

GET /metrics, /-/healthy, /-/ready; GET /-/scenario returns {"started_at", "sour_at"} (epoch
seconds; sour_at is when the average crossed the threshold, null before).
"""

from __future__ import annotations

import argparse
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from genesys_sentiment_exporter import catalogue as c

WINDOW = 5


class Scenario:
    def __init__(self, sour_after: float | None) -> None:
        self.started_at = time.time()
        self.sour_after = sour_after

    @property
    def sour_at(self) -> float | None:
        if self.sour_after is None:
            return None
        at = self.started_at + self.sour_after
        return at if time.time() >= at else None

    def metrics(self) -> str:
        now = time.time()
        sour = self.sour_at is not None
        agents: list[dict[str, Any]] = [
            {"agent_id": "agent-calm", "queue_id": "q-support", "avg": 0.4, "score": 0.5},
            {
                "agent_id": "agent-sour",
                "queue_id": "q-billing",
                "avg": -0.8 if sour else 0.3,
                "score": -0.9 if sour else 0.2,
            },
        ]
        elapsed = now - self.started_at
        outcomes = {o: 0 for o in c.Outcome}
        outcomes[c.Outcome.READING] = int(elapsed / 3) * 2
        outcomes[c.Outcome.HEARTBEAT] = int(elapsed / 30)

        def per_agent(value: Any) -> list[Sample]:
            return [
                ({"agent_id": a["agent_id"], "queue_id": a["queue_id"], "party": "customer"}, value(a)) for a in agents
            ]

        families: list[tuple[c.Family, list[Sample]]] = [
            (c.WINDOW_SIZE, [({}, WINDOW)]),
            (c.BUILD, [({"version": "0.0.0-fake", "source": "fake"}, 1)]),
            (c.READY, [({}, 1)]),
            (c.STREAM_CONNECTED, [({}, 1)]),
            (c.STREAM_LAST_MESSAGE, [({}, f"{now:.3f}")]),
            (c.STREAM_LAST_HEARTBEAT, [({}, f"{now - (now % 30):.3f}")]),
            (c.TOKEN_EXPIRY, [({}, f"{now + 3000:.3f}")]),
            (c.TOKEN_LIFETIME, [({}, 3600)]),
            (c.TRACKED_AGENTS, [({}, len(agents))]),
            (c.STREAM_MESSAGES, [({"outcome": o.value}, n) for o, n in outcomes.items()]),
            (c.AGENT_ROLLING_AVERAGE, per_agent(lambda a: a["avg"])),
            (c.AGENT_SCORE, per_agent(lambda a: a["score"])),
            (c.AGENT_WINDOW_READINGS, per_agent(lambda a: WINDOW)),
            (c.AGENT_CONVERSATION_ACTIVE, per_agent(lambda a: 1)),
            (c.AGENT_LAST_READING, per_agent(lambda a: f"{now - (now % 3):.3f}")),
        ]
        return "".join(exposition(family, samples) for family, samples in families)


Sample = tuple[dict[str, str], Any]


def exposition(family: c.Family, samples: list[Sample]) -> str:
    """One family in the text format, its name, type, help and labels taken from the catalogue."""
    name = family.sample_name
    lines = [f"# HELP {name} {family.help}", f"# TYPE {name} {family.exposed_type}"]
    for labels, value in samples:
        assert set(labels) <= set(family.all_labels), (name, labels)
        text = ",".join(f'{k}="{v}"' for k, v in labels.items())
        lines.append(f"{name}{{{text}}} {value}" if text else f"{name} {value}")
    return "\n".join(lines) + "\n"


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/metrics":
            self._send(200, self.server.scenario.metrics(), "text/plain; version=0.0.4")
        elif self.path in ("/-/healthy", "/-/ready"):
            self._send(200, "ok\n", "text/plain")
        elif self.path == "/-/scenario":
            body = {"started_at": self.server.scenario.started_at, "sour_at": self.server.scenario.sour_at}
            self._send(200, json.dumps(body), "application/json")
        else:
            self._send(404, "not found\n", "text/plain")

    def _send(self, status: int, text: str, content_type: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], scenario: Scenario) -> None:
        self.scenario = scenario
        super().__init__(address, Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--web.listen-address", dest="listen", default="127.0.0.1:8729")
    parser.add_argument("--sour-after", type=float, default=None, help="seconds until agent-sour goes negative")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    server = Server((host or "127.0.0.1", int(port)), Scenario(args.sour_after))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
