"""What every end-to-end test needs the same way: the venv's Python for the programs it starts, waiting on
a condition (never a fixed sleep: these tests run on loaded 2-core machines), and reading the exporter's
per-agent series."""

from __future__ import annotations

import re
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[2]
# The programs under test run from the project's venv when there is one (as `make test` builds it).
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable

T = TypeVar("T")


def wait_until(check: Callable[[], T | None], timeout: float, what: str, poll: float = 0.25) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def customer_sample(text: str, metric: str, agent: str) -> float | None:
    """The value of `metric` for `agent`'s customer party (what the customer said is what pages)."""
    labels = rf'agent_id="{agent}",queue_id="[^"]*",party="customer"'
    match = re.search(rf"^{metric}{{{labels}}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None
