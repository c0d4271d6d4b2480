"""The login host's `POST /oauth/token`, client-credentials grant only.

It behaves like the real platform (Basic client authentication, form body,
`invalid_client` on bad credentials) rather than like the design document's
JSON-body example, so a client that works here works against a real org.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from genesys_cloud_simulator.config import SimulatorConfig

log = logging.getLogger("genesys_cloud_simulator")


class TokenStore:
    """Issued access tokens and when each stops being valid (monotonic clock)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self.issued = 0

    def issue(self, lifetime_seconds: float) -> str:
        now = self._clock()
        self._expiry = {t: exp for t, exp in self._expiry.items() if exp > now}
        token = secrets.token_urlsafe(32)
        self._expiry[token] = now + lifetime_seconds
        self.issued += 1
        return token

    def is_valid(self, token: str) -> bool:
        expiry = self._expiry.get(token)
        return expiry is not None and self._clock() < expiry

    def expire_all(self) -> None:
        """Every token issued so far becomes invalid, as if its lifetime had run out."""
        self._expiry.clear()


@dataclass(slots=True, frozen=True)
class _Failure:
    status: int
    retry_after: float | None


def _oauth_error(status: int, error: str, description: str, **headers: str) -> web.Response:
    return web.json_response(
        {"error": error, "error_description": description},
        status=status,
        headers={"Cache-Control": "no-store", **headers},
    )


def _client_from_basic(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


class OAuthEndpoint:
    """Issues tokens and injects the failures a client must survive (429, 5xx)."""

    def __init__(self, config: SimulatorConfig, tokens: TokenStore) -> None:
        self._config = config
        self._tokens = tokens
        self._planned: deque[_Failure] = deque()
        self.requests = 0

    def fail_next(self, n: int, status: int, retry_after: float | None) -> None:
        for _ in range(n):
            self._planned.append(_Failure(status, retry_after))

    def _failure_for_this_request(self) -> _Failure | None:
        if self._planned:
            return self._planned.popleft()
        every = self._config.token_429_every_n
        if every is not None and self.requests % every == 0:
            return _Failure(429, self._config.retry_after_seconds)
        return None

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        failure = self._failure_for_this_request()
        if failure is not None:
            log.info("token request %d answered %d (injected)", self.requests, failure.status)
            headers = {}
            if failure.retry_after is not None:
                headers["Retry-After"] = str(math.ceil(failure.retry_after))
            body = {
                "message": "injected failure",
                "code": "too.many.requests" if failure.status == 429 else "service.unavailable",
                "status": failure.status,
            }
            return web.json_response(body, status=failure.status, headers=headers)

        client = _client_from_basic(request.headers.get("Authorization"))
        if client is None or not (
            hmac.compare_digest(client[0].encode(), self._config.client_id.encode())
            and hmac.compare_digest(client[1].encode(), self._config.client_secret.encode())
        ):
            log.info("token request refused: invalid client credentials")
            return _oauth_error(
                401, "invalid_client", "authentication failed", **{"WWW-Authenticate": 'Basic realm="oauth"'}
            )

        # request.post() is empty unless the body is a form: a JSON body has no grant_type.
        form = await request.post()
        grant_type = form.get("grant_type")
        if grant_type is None:
            return _oauth_error(400, "invalid_request", "grant_type is required (form-encoded body)")
        if grant_type != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "only client_credentials is supported")

        lifetime = self._config.token_lifetime_seconds
        token = self._tokens.issue(lifetime)
        log.info("issued access token #%d (expires in %.0f s)", self._tokens.issued, lifetime)
        return web.json_response(
            {"access_token": token, "token_type": "bearer", "expires_in": max(1, round(lifetime))},
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )
