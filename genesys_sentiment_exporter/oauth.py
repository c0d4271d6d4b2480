"""OAuth 2.0 client credentials against Genesys Cloud, kept fresh ahead of expiry.

Genesys issues no refresh token: "refreshing" is asking for a new token. The
lifetime is set per OAuth client (300 s to 48 h), so it is always read from
`expires_in`, never assumed. The timing rule lives in `refresh_delay`, a pure
function; `TokenManager` is the thin asyncio loop around it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from genesys_sentiment_exporter.backoff import Backoff
from genesys_sentiment_exporter.catalogue import TokenResult
from genesys_sentiment_exporter.neterrors import describe

log = logging.getLogger("exporter.oauth")

MIN_REFRESH_SECONDS = 5.0  # floor under any refresh delay: a 1 s token must not become a request loop
INVALID_CLIENT_RETRY_SECONDS = 60.0
MAX_TOKEN_LIFETIME = 172_800.0  # 48 h: the longest lifetime a Genesys OAuth client can be given


def refresh_delay(lifetime: float, margin: float) -> float:
    """Seconds after issue at which to ask for the next token.

    Normally when `margin` seconds remain; a token whose whole life is under twice
    the margin (the platform's 300 s minimum against a 300 s margin) would be
    refreshed at once, forever, so such tokens are refreshed at 80 % of their life.
    """
    delay = lifetime * 0.8 if lifetime < 2 * margin else lifetime - margin
    return max(delay, MIN_REFRESH_SECONDS)


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    lifetime: float
    issued_at: float  # wall clock
    expires_at: float  # wall clock

    def valid(self, now: float) -> bool:
        return now < self.expires_at


class TokenError(Exception):
    """A failed token request. `result` is the metric label; the message never holds a secret."""

    def __init__(self, result: TokenResult, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.result = result
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), 3600.0)


class TokenManager:
    """Holds the current token and renews it in the background; sources await new tokens."""

    def __init__(
        self,
        login_base_url: str,
        client_id: str,
        client_secret: SecretStr,
        http: httpx.AsyncClient,
        *,
        margin: float = 300.0,
        wall: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
        on_token: Callable[[Token], None] | None = None,
    ) -> None:
        self.token_url = login_base_url.rstrip("/") + "/oauth/token"
        self.login_host = urlsplit(login_base_url).netloc
        self.client_id = client_id
        self._secret = client_secret
        self.http = http
        self.margin = margin
        self.wall = wall
        self.backoff = backoff or Backoff(base=1.0, cap=30.0)
        self.token: Token | None = None
        self.requests: Counter[TokenResult] = Counter()
        self.last_error = "no token requested yet"
        self.credentials_rejected = False  # the login host refused the client: not ready, even with a token left
        self._changed = asyncio.Event()
        self.on_token = on_token
        self.sleep = asyncio.sleep  # tests substitute a recorder to check retry delays without waiting

    # -- one request ---------------------------------------------------------------------------
    async def fetch(self) -> Token:
        """One token request, exactly as the platform wants it (Basic auth header, form body)."""
        credentials = f"{self.client_id}:{self._secret.get_secret_value()}".encode()
        headers = {
            "Authorization": "Basic " + base64.b64encode(credentials).decode("ascii"),
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        try:
            response = await self.http.post(self.token_url, content=b"grant_type=client_credentials", headers=headers)
        except httpx.TimeoutException as exc:
            raise TokenError(TokenResult.NETWORK_ERROR, f"token request to {self.login_host} timed out") from exc
        except httpx.TransportError as exc:
            raise TokenError(
                TokenResult.NETWORK_ERROR, f"token request to {self.login_host} failed: {describe(exc)}"
            ) from exc
        return self._token_from(response)

    def _token_from(self, response: httpx.Response) -> Token:
        status = response.status_code
        if status == 429:
            retry = parse_retry_after(response.headers.get("Retry-After"), self.wall())
            raise TokenError(TokenResult.RATE_LIMITED, f"{self.login_host} rate-limited the token request", retry)
        if status >= 500:
            raise TokenError(TokenResult.SERVER_ERROR, f"{self.login_host} answered HTTP {status} to the token request")
        try:
            body = response.json()
        except (ValueError, RecursionError):  # RecursionError: an answer nested thousands deep
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if error == "invalid_client":
            raise TokenError(
                TokenResult.INVALID_CLIENT,
                f"login host {self.login_host} rejected OAuth client {self.client_id!r} (invalid_client). "
                "The usual cause is a wrong region: the client exists only in its own region's org, so "
                "check GENESYSCLOUD_REGION (or --login-base-url); otherwise the client id or secret is wrong",
            )
        if error == "unauthorized_client":
            raise TokenError(
                TokenResult.UNAUTHORIZED_CLIENT,
                f"login host {self.login_host}: OAuth client {self.client_id!r} is not allowed the "
                "client-credentials grant (unauthorized_client); create it with Grant Type "
                "'Client Credentials' in Admin > OAuth",
            )
        if status != 200 or not isinstance(body, dict):
            raise TokenError(TokenResult.INVALID_RESPONSE, f"{self.login_host} answered HTTP {status} without a token")
        value = body.get("access_token")
        lifetime = body.get("expires_in")
        if not isinstance(value, str) or not value:
            raise TokenError(TokenResult.INVALID_RESPONSE, f"{self.login_host} answered without an access_token")
        if (
            isinstance(lifetime, bool)
            or not isinstance(lifetime, int | float)
            or not math.isfinite(lifetime)
            or not lifetime > 0
        ):
            # Infinity (JSON allows it) would never be renewed and would hide the token-expiry alert.
            raise TokenError(TokenResult.INVALID_RESPONSE, f"{self.login_host} answered without a usable expires_in")
        if lifetime > MAX_TOKEN_LIFETIME:
            log.warning(
                "%s granted a token for %.3g s, beyond the platform's 48 h: treating it as 48 h",
                self.login_host,
                lifetime,
            )
            lifetime = MAX_TOKEN_LIFETIME
        now = self.wall()
        return Token(value, float(lifetime), now, now + float(lifetime))

    # -- the loop ------------------------------------------------------------------------------
    def valid_token(self) -> Token | None:
        token = self.token
        return token if token is not None and token.valid(self.wall()) else None

    def ready_reason(self) -> str | None:
        """None while a valid token is held; otherwise why not (for /-/ready)."""
        if self.credentials_rejected:
            return f"OAuth client rejected: {self.last_error}"
        if self.valid_token() is not None:
            return None
        return f"no valid OAuth token: {self.last_error}"

    async def obtain(self) -> Token:
        """Get a token, retrying until one comes: 429 honours Retry-After, errors back off."""
        while True:
            try:
                token = await self.fetch()
            except TokenError as exc:
                self.requests[exc.result] += 1
                self.last_error = str(exc)
                if exc.result in (TokenResult.INVALID_CLIENT, TokenResult.UNAUTHORIZED_CLIENT):
                    self.credentials_rejected = True
                    delay = INVALID_CLIENT_RETRY_SECONDS
                    log.error("%s; retrying in %.0f s", exc, delay)
                elif exc.retry_after is not None:
                    delay = exc.retry_after
                    log.warning("%s; retrying after %.1f s (Retry-After)", exc, delay)
                else:
                    delay = self.backoff.next_delay()
                    log.warning("%s; retrying in %.1f s", exc, delay)
                await self.sleep(delay)
                continue
            self.requests[TokenResult.SUCCESS] += 1
            self.backoff.reset()
            self.last_error = ""
            self.credentials_rejected = False
            if self.on_token is not None:
                self.on_token(token)
            self.token = token
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()
            log.info("obtained an OAuth token valid for %.0f s", token.lifetime)
            return token

    async def run(self) -> None:
        """Keep a fresh token forever: obtain, sleep until the refresh point, repeat."""
        while True:
            token = self.token if self.token is not None else await self.obtain()
            delay = refresh_delay(token.lifetime, self.margin) - (self.wall() - token.issued_at)
            if delay > 0:
                await self.sleep(delay)
            await self.obtain()

    async def current(self) -> Token:
        """A valid token, waiting for the background loop if there is none yet."""
        while True:
            token = self.valid_token()
            if token is not None:
                return token
            await self._changed.wait()

    async def wait_newer(self, token: Token) -> Token:
        """Return once a token other than `token` is held."""
        while self.token is token or self.token is None:
            await self._changed.wait()
        return self.token
