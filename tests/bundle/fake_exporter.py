"""A stand-in for `python -m genesys_sentiment_exporter demo` that follows the exporter's metric contract.

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
        lines = [
            "# HELP genesys_exporter_window_size Configured rolling window size.",
            "# TYPE genesys_exporter_window_size gauge",
            f"genesys_exporter_window_size {WINDOW}",
            "# TYPE genesys_exporter_build_info gauge",
            'genesys_exporter_build_info{version="0.0.0-fake",source="fake"} 1',
            "# TYPE genesys_exporter_ready gauge",
            "genesys_exporter_ready 1",
            "# TYPE genesys_stream_connected gauge",
            "genesys_stream_connected 1",
            "# TYPE genesys_stream_last_message_timestamp_seconds gauge",
            f"genesys_stream_last_message_timestamp_seconds {now:.3f}",
            "# TYPE genesys_stream_last_heartbeat_timestamp_seconds gauge",
            f"genesys_stream_last_heartbeat_timestamp_seconds {now - (now % 30):.3f}",
            "# TYPE genesys_oauth_token_expiry_timestamp_seconds gauge",
            f"genesys_oauth_token_expiry_timestamp_seconds {now + 3000:.3f}",
            "# TYPE genesys_oauth_token_lifetime_seconds gauge",
            "genesys_oauth_token_lifetime_seconds 3600",
            "# TYPE genesys_tracked_agents gauge",
            f"genesys_tracked_agents {len(agents)}",
            "# TYPE genesys_stream_messages_total counter",
            f'genesys_stream_messages_total{{outcome="reading"}} {int((now - self.started_at) / 3) * 2}',
            f'genesys_stream_messages_total{{outcome="heartbeat"}} {int((now - self.started_at) / 30)}',
        ]
        per_agent = {
            "genesys_agent_sentiment_rolling_average": "avg",
            "genesys_agent_sentiment_score": "score",
        }
        for metric, key in per_agent.items():
            lines.append(f"# TYPE {metric} gauge")
            lines += [f'{metric}{{agent_id="{a["agent_id"]}",queue_id="{a["queue_id"]}"}} {a[key]}' for a in agents]
        for metric, value in (
            ("genesys_agent_sentiment_window_readings", str(WINDOW)),
            ("genesys_agent_conversation_active", "1"),
            ("genesys_agent_last_reading_timestamp_seconds", f"{now - (now % 3):.3f}"),
        ):
            lines.append(f"# TYPE {metric} gauge")
            lines += [f'{metric}{{agent_id="{a["agent_id"]}",queue_id="{a["queue_id"]}"}} {value}' for a in agents]
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
