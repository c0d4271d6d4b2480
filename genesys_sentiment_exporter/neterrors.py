"""Network failures in words an operator can act on: which host, and why.

httpx and aiohttp wrap the cause (`ConnectError`, `ClientConnectorError`) and a log line that names
only the wrapper hides whether the certificate was refused, the name did not resolve, or the port
was closed. `describe` walks the exception chain for the first cause it knows. It quotes no request
and no header, so it carries no secret.
"""

from __future__ import annotations

import socket
import ssl

_MAX_CHAIN = 12


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < _MAX_CHAIN:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _known(exc: BaseException) -> str | None:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"DNS lookup failed: {exc.strerror or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return None


def describe(exc: BaseException) -> str:
    """`certificate verify failed: self-signed certificate`, `DNS lookup failed: ...`, or the error's own words."""
    chain = _chain(exc)
    for link in chain:
        known = _known(link)
        if known is not None:
            return known
    # Unknown: the innermost message that says something (often an OSError's strerror).
    for link in reversed(chain):
        text = getattr(link, "strerror", None) or str(link)
        if text:
            return f"{type(link).__name__}: {text[:200]}"
    return type(exc).__name__
