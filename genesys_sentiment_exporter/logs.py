"""Logging in Prometheus' own formats (logfmt or JSON), with secrets scrubbed as a last line of defence.

The code never formats a secret into a message; `Redactor` additionally replaces
any registered secret value (client secret, live tokens) should one ever reach
a record through an exception or a third-party library.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections import deque
from typing import Any

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


RECENT_TOKENS = 8  # a token lives at least 300 s: eight cover any echo of a recent one
_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}")


def mask_credentials(text: str) -> str:
    """Blank anything shaped like an Authorization header value, known to us or not."""
    return _CREDENTIAL.sub(lambda m: m.group(1) + " <redacted>", text)


class Redactor(logging.Filter):
    """Replaces registered secrets in log records and in any text the exporter shows (/-/ready, `check`).

    The client secret (and its Basic-auth form) is `pinned` for the life of the process; tokens go to a
    short `recent` list. One list for both once let eight token refreshes push the client secret out.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pinned: list[str] = []
        self.recent: deque[str] = deque(maxlen=RECENT_TOKENS)

    @property
    def secrets(self) -> list[str]:
        return [*self.pinned, *self.recent]

    def add(self, secret: str) -> None:
        """A secret for the life of the process (the client secret)."""
        if len(secret) >= 6 and secret not in self.pinned:
            self.pinned.append(secret)

    def add_token(self, token: str) -> None:
        """A short-lived secret: remembered until RECENT_TOKENS newer ones came."""
        if len(token) >= 6 and token not in self.recent and token not in self.pinned:
            self.recent.append(token)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "<redacted>")
        return mask_credentials(text)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.pinned or self.recent:
            record.msg = self.scrub(record.getMessage())
            record.args = None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


def _ts(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _level(record: logging.LogRecord) -> str:
    return "warn" if record.levelno == logging.WARNING else record.levelname.lower()


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {"ts": _ts(record), "level": _level(record), "logger": record.name, "msg": record.getMessage()}
        exc = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else "")
        if exc:
            fields["err"] = exc
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in fields.items())


def _logfmt_value(value: str) -> str:
    if value and not any(c in value for c in ' "=\n\\'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": _ts(record),
            "level": _level(record),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        exc = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else "")
        if exc:
            fields["err"] = exc
        return json.dumps(fields)


def setup(level: str, fmt: str, stream: Any = None) -> Redactor:
    """Configure the root logger once per process; returns the redactor to register secrets with."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    redactor = Redactor()
    handler.addFilter(redactor)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    # httpx and websockets are chatty at INFO/DEBUG; their details are ours to report.
    for name in ("httpx", "httpcore", "websockets", "aiohttp.access"):
        logging.getLogger(name).setLevel(max(LEVELS[level], logging.WARNING))
    return redactor
