"""Exponential backoff with jitter: pure arithmetic, so retry timing is testable without sleeping."""

from __future__ import annotations

import random
from collections.abc import Iterator


class Backoff:
    """Delays base*2^n capped at `cap`, with "equal jitter" (half fixed, half random).

    Equal rather than full jitter keeps a floor under each delay, so a fleet of
    exporters spreads out without any of them retrying in a tight loop.
    """

    def __init__(self, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0
        self.rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 32)
        return float(ceiling / 2 + self.rng.uniform(0, ceiling / 2))

    def reset(self) -> None:
        self.attempt = 0


def delays(base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None) -> Iterator[float]:
    """The same equal-jitter schedule as a generator: `next()` it before each retry."""
    backoff = Backoff(base, cap, rng)
    while True:
        yield backoff.next_delay()
