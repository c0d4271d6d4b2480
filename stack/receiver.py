"""Local stand-in for Slack incoming webhooks and the PagerDuty Events API v2.

Alertmanager posts here in the demo stack instead of to Slack and PagerDuty. Every POST is
recorded with its arrival time and can be read back as JSON, which is what the tests use.

    POST /slack/<channel>     Slack incoming webhook (answers 200 "ok", like Slack)
    POST /v2/enqueue          PagerDuty Events API v2 (answers 202 like PagerDuty; 400 when
                              routing_key, event_action or, for triggers, payload.summary is missing
                              or the summary is over 1024 characters)
    GET  /messages            {"messages": [...]} oldest first; filters: ?kind=slack|pagerduty,
                              ?channel=<slack channel>, ?since=<epoch seconds, exclusive>
    DELETE /messages          forget everything recorded so far
    GET  /-/healthy           200

Standard library only (it runs in a stock python image in docker-compose.yml):

    python -m stack.receiver --listen 127.0.0.1:9099
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SLACK_PREFIX = "/slack/"
PAGERDUTY_PATH = "/v2/enqueue"
PAGERDUTY_SUMMARY_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class Message:
    """One recorded POST."""

    seq: int
    kind: str  # "slack", "pagerduty" or "unknown"
    channel: str | None  # Slack channel taken from the path; None otherwise
    path: str
    received_at: float  # epoch seconds, when the request was read
    body: Any  # parsed JSON, or the raw text when the body was not JSON
    status: int  # what the receiver answered

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class MessageStore:
    """Thread-safe, append-only list of recorded messages."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[Message] = []
        self._seq = 0

    def add(self, kind: str, channel: str | None, path: str, received_at: float, body: Any, status: int) -> Message:
        with self._lock:
            self._seq += 1
            message = Message(self._seq, kind, channel, path, received_at, body, status)
            self._messages.append(message)
            return message

    def list(self, kind: str | None = None, channel: str | None = None, since: float | None = None) -> list[Message]:
        with self._lock:
            found = list(self._messages)
        return [
            m
            for m in found
            if (kind is None or m.kind == kind)
            and (channel is None or m.channel == channel)
            and (since is None or m.received_at > since)
        ]

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()


def _pagerduty_problem(body: Any) -> str | None:
    """Why PagerDuty would reject this event, or None."""
    if not isinstance(body, dict):
        return "body is not a JSON object"
    if not body.get("routing_key"):
        return "routing_key is missing"
    action = body.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        return "event_action must be trigger, acknowledge or resolve"
    if action == "trigger":
        payload = body.get("payload")
        if not isinstance(payload, dict) or not payload.get("summary"):
            return "payload.summary is missing"
        if len(str(payload["summary"])) > PAGERDUTY_SUMMARY_LIMIT:
            return f"payload.summary is longer than {PAGERDUTY_SUMMARY_LIMIT} characters"
        if payload.get("severity") not in ("critical", "error", "warning", "info"):
            return "payload.severity must be critical, error, warning or info"
    return None


class _Handler(BaseHTTPRequestHandler):
    server: ReceiverHTTPServer
    protocol_version = "HTTP/1.1"

    # -- helpers ---------------------------------------------------------------------------------
    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    # -- verbs -----------------------------------------------------------------------------------
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/-/healthy":
            self._send(HTTPStatus.OK, "ok\n", "text/plain")
            return
        if url.path == "/messages":
            query = parse_qs(url.query)
            since_values = query.get("since")
            try:
                since = float(since_values[0]) if since_values else None
            except ValueError:
                self._send(HTTPStatus.BAD_REQUEST, {"error": "since must be a number"})
                return
            messages = self.server.store.list(
                kind=query.get("kind", [None])[0],
                channel=query.get("channel", [None])[0],
                since=since,
            )
            self._send(HTTPStatus.OK, {"messages": [m.to_json() for m in messages]})
            return
        self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_DELETE(self) -> None:
        if urlsplit(self.path).path == "/messages":
            self.server.store.clear()
            self._send(HTTPStatus.OK, {"status": "cleared"})
            return
        self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_POST(self) -> None:
        received_at = time.time()
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", errors="replace")
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw

        if path.startswith(SLACK_PREFIX) and len(path) > len(SLACK_PREFIX):
            channel = path[len(SLACK_PREFIX) :].strip("/")
            status = HTTPStatus.OK if isinstance(body, dict) else HTTPStatus.BAD_REQUEST
            message = self.server.store.add("slack", channel, path, received_at, body, status)
            self._send(status, "ok" if status == HTTPStatus.OK else "invalid_payload", "text/plain")
        elif path == PAGERDUTY_PATH:
            problem = _pagerduty_problem(body)
            if problem is None:
                status = HTTPStatus.ACCEPTED
                dedup_key = (body.get("dedup_key") if isinstance(body, dict) else None) or hashlib.sha256(
                    raw.encode()
                ).hexdigest()[:32]
                answer: dict[str, Any] = {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
            else:
                status = HTTPStatus.BAD_REQUEST
                answer = {"status": "invalid event", "message": "Event object is invalid", "errors": [problem]}
            message = self.server.store.add("pagerduty", None, path, received_at, body, status)
            self._send(status, answer)
        else:
            message = self.server.store.add("unknown", None, path, received_at, body, HTTPStatus.NOT_FOUND)
            self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})

        if self.server.echo:
            print(json.dumps(message.to_json()), file=sys.stdout, flush=True)


class ReceiverHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], *, verbose: bool = False, echo: bool = False) -> None:
        self.store = MessageStore()
        self.verbose = verbose
        self.echo = echo
        super().__init__(address, _Handler)


class Receiver:
    """The receiver in a background thread of the current process (handy in tests)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, echo: bool = False) -> None:
        self._server = ReceiverHTTPServer((host, port), echo=echo)
        self._thread = threading.Thread(target=self._server.serve_forever, name="receiver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def store(self) -> MessageStore:
        return self._server.store

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host or "0.0.0.0", int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.receiver", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 9099), help="HOST:PORT (127.0.0.1:9099)")
    parser.add_argument("--quiet", action="store_true", help="do not print each recorded message as a JSON line")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request")
    args = parser.parse_args(argv)
    server = ReceiverHTTPServer(args.listen, verbose=args.verbose, echo=not args.quiet)
    host, port = server.server_address[:2]
    print(f"receiver listening on http://{host!s}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
