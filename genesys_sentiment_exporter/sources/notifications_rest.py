"""REST calls of the Notifications source: a request budget (token bucket) and 429 Retry-After.

Every request the source makes (channels, subscriptions, HEAD probes, user names) goes through
`PlatformRest.request`, so the whole source stays within one budget (default 300/min, the
platform's documented default per token) and honours the platform's back-pressure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from genesys_sentiment_exporter.backoff import Backoff
from genesys_sentiment_exporter.catalogue import ApiResult
from genesys_sentiment_exporter.logs import mask_credentials
from genesys_sentiment_exporter.neterrors import describe
from genesys_sentiment_exporter.oauth import TokenManager, parse_retry_after

log = logging.getLogger("exporter.source.notifications")

MAX_ATTEMPTS = 6


class TokenBucket:
    """Pure: `take(now)` returns 0 when a request may go now, else the seconds to wait first."""

    def __init__(self, per_minute: int, burst: int | None = None) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, per_minute // 10))
        self.tokens = self.capacity
        self.updated: float | None = None
        self.blocked_until = 0.0  # a 429's Retry-After holds every request

    def take(self, now: float) -> float:
        if self.updated is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if now < self.blocked_until:
            return self.blocked_until - now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def block(self, now: float, seconds: float) -> None:
        self.blocked_until = max(self.blocked_until, now + seconds)


class RestError(Exception):
    """`body`: the error answer's JSON when it had one (a 4xx names the missing permissions there)."""

    def __init__(self, message: str, status: int = 0, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class PlatformRest:
    def __init__(
        self,
        api_base_url: str,
        http: httpx.AsyncClient,
        tokens: TokenManager,
        per_minute: int = 300,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.base = api_base_url.rstrip("/")
        self.http = http
        self.tokens = tokens
        self.bucket = TokenBucket(per_minute)
        self.clock = clock
        self.sleep = sleep
        self.results: Counter[ApiResult] = Counter()  # by status class or failure, for a metric

    async def _turn(self) -> None:
        while True:
            wait = self.bucket.take(self.clock())
            if wait <= 0:
                return
            await self.sleep(wait)

    async def request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """One API call with retries: 429 waits Retry-After, 401 asks for a new token, 5xx/network back off."""
        backoff = Backoff(base=0.5, cap=30.0)
        renewed = False
        for attempt in range(1, MAX_ATTEMPTS + 1):
            await self._turn()
            token = await self.tokens.current()
            try:
                response = await self.http.request(
                    method,
                    self.base + path,
                    json=body,
                    headers={"Authorization": f"Bearer {token.value}", "Accept": "application/json"},
                )
            except httpx.TransportError as exc:
                self.results[ApiResult.NETWORK_ERROR] += 1
                if attempt == MAX_ATTEMPTS:
                    raise RestError(f"{method} {urlsplit(self.base).netloc}{path}: {describe(exc)}") from exc
                await self.sleep(backoff.next_delay())
                continue
            status = response.status_code
            self.results[ApiResult.of_status(status)] += 1
            if status == 429:
                delay = parse_retry_after(response.headers.get("Retry-After"), time.time())
                delay = backoff.next_delay() if delay is None else delay
                self.bucket.block(self.clock(), delay)
                log.warning("%s %s rate-limited (429); waiting %.1f s (Retry-After)", method, path, delay)
                continue
            if status == 401 and not renewed:
                renewed = True
                log.warning("%s %s refused the token (401); requesting a new token", method, path)
                await self.tokens.obtain()
                continue
            if status >= 500 and attempt < MAX_ATTEMPTS:
                await self.sleep(backoff.next_delay())
                continue
            return response
        raise RestError(f"{method} {path}: gave up after {MAX_ATTEMPTS} attempts", 429)

    def _excerpt(self, response: httpx.Response) -> str:
        """The start of an error body for the operator, with any token it echoes removed first."""
        text = response.text
        token = self.tokens.token
        if token is not None:
            text = text.replace(token.value, "<redacted>")
        return mask_credentials(text)[:200]

    async def json(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
        response = await self.request(method, path, body)
        if response.status_code not in ok:
            try:
                body = response.json()
            except (ValueError, RecursionError):
                body = None
            raise RestError(
                f"{method} {path} answered HTTP {response.status_code}: {self._excerpt(response)}",
                response.status_code,
                body,
            )
        try:
            return response.json()
        except (ValueError, RecursionError) as exc:  # RecursionError: nested thousands deep
            raise RestError(f"{method} {path} answered a body that is not JSON", response.status_code) from exc
