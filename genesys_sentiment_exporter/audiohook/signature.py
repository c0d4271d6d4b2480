"""AudioHook upgrade authentication: the API key header and the HTTP message signature (pure).

Genesys signs the WebSocket upgrade the way draft-ietf-httpbis-message-signatures (RFC 9421)
describes, with HMAC-SHA256 keyed by the base64-decoded client secret, over six components in a
fixed order (shared/audiohook-protocol.md section 3). Everything here is fed the request's headers
and `now` (wall-clock seconds), so the age, replay and tamper rules are tested without a clock or
a socket. A refusal carries one reason from `REASONS`; the shell counts it and answers 401
without detail, as the Genesys documentation asks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

REQUIRED_COMPONENTS = (
    "@request-target",
    "@authority",
    "audiohook-organization-id",
    "audiohook-session-id",
    "audiohook-correlation-id",
    "x-api-key",
)
KNOWN_PARAMS = frozenset({"keyid", "nonce", "alg", "created", "expires"})
API_KEY_FORMAT = re.compile(r"^[A-Za-z0-9+/_-]+={0,2}$")
SECRET_FORMAT = re.compile(r"^(?:[A-Za-z\d+/]{4})*(?:[A-Za-z\d+/]{2}==|[A-Za-z\d+/]{3}=)?$")
MIN_NONCE_CHARS = 22  # the reference server's floor; Genesys sends 18 random bytes (24 base64 chars)

# Why an upgrade was refused; each is a label value of the refusal counter.
MISSING_API_KEY = "missing_api_key"
UNKNOWN_API_KEY = "unknown_api_key"
MISSING_HEADERS = "missing_headers"
MISSING_SIGNATURE = "missing_signature"
MALFORMED_SIGNATURE = "malformed_signature"
FUTURE_SIGNATURE = "signature_from_future"
STALE_SIGNATURE = "stale_signature"
EXPIRED_SIGNATURE = "expired_signature"
REPLAYED_SIGNATURE = "replayed_signature"
BAD_SIGNATURE = "bad_signature"
REASONS = (
    MISSING_API_KEY,
    UNKNOWN_API_KEY,
    MISSING_HEADERS,
    MISSING_SIGNATURE,
    MALFORMED_SIGNATURE,
    FUTURE_SIGNATURE,
    STALE_SIGNATURE,
    EXPIRED_SIGNATURE,
    REPLAYED_SIGNATURE,
    BAD_SIGNATURE,
)


class SignatureError(ValueError):
    """A Signature-Input or Signature header that does not parse (the reason is MALFORMED)."""


@dataclass(frozen=True, slots=True)
class SignatureInput:
    label: str
    components: tuple[str, ...]
    params: dict[str, str | int]
    serialized: str  # the member's value exactly as sent: it is the "@signature-params" line


def decode_secret(secret: str) -> bytes:
    """The HMAC key: the client secret is base64 text, and Genesys keys the HMAC with its bytes."""
    if not SECRET_FORMAT.match(secret):
        raise ValueError("the AudioHook client secret is not base64 text (copy it as Genesys shows it)")
    return base64.b64decode(secret)


# -- structured fields (RFC 8941), the subset signatures use -----------------------------------------


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def take(self, char: str) -> None:
        if self.peek() != char:
            raise SignatureError(f"expected {char!r} at {self.at}")
        self.at += 1

    def spaces(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.at += 1

    def key(self) -> str:
        match = re.compile(r"[a-z*][a-z0-9_.*-]*").match(self.text, self.at)
        if match is None:
            raise SignatureError(f"expected a key at {self.at}")
        self.at = match.end()
        return match.group()

    def string(self) -> str:
        self.take('"')
        out: list[str] = []
        while True:
            char = self.peek()
            if not char:
                raise SignatureError("unterminated string")
            self.at += 1
            if char == '"':
                return "".join(out)
            if char == "\\":
                char = self.peek()
                if char not in ('"', "\\"):
                    raise SignatureError("bad escape in string")
                self.at += 1
            elif not " " <= char <= "~":
                raise SignatureError("non-printable character in string")
            out.append(char)

    def integer(self) -> int:
        match = re.compile(r"-?[0-9]{1,15}").match(self.text, self.at)
        if match is None:
            raise SignatureError(f"expected an integer at {self.at}")
        self.at = match.end()
        return int(match.group())

    def token(self) -> str:
        match = re.compile(r"[A-Za-z*][A-Za-z0-9:/!#$%&'*+.^_`|~-]*").match(self.text, self.at)
        if match is None:
            raise SignatureError(f"expected a value at {self.at}")
        self.at = match.end()
        return match.group()

    def bare_item(self) -> str | int:
        char = self.peek()
        if char == '"':
            return self.string()
        if char == "-" or char.isdigit():
            return self.integer()
        return self.token()

    def params(self) -> dict[str, str | int]:
        params: dict[str, str | int] = {}
        while self.peek() == ";":
            self.at += 1
            self.spaces()
            name = self.key()
            self.take("=")
            if name in params:
                raise SignatureError(f"parameter {name} given twice")
            params[name] = self.bare_item()
        return params

    def inner_list(self) -> tuple[list[str], dict[str, str | int]]:
        self.take("(")
        items: list[str] = []
        while True:
            self.spaces()
            if self.peek() == ")":
                self.at += 1
                return items, self.params()
            items.append(self.string())
            if self.peek() not in (" ", ")"):
                raise SignatureError("expected a space or ')' in the component list")

    def byte_sequence(self) -> bytes:
        self.take(":")
        end = self.text.find(":", self.at)
        if end < 0:
            raise SignatureError("unterminated byte sequence")
        raw = self.text[self.at : end]
        self.at = end + 1
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError("byte sequence is not base64") from None


def parse_signature_input(header: str) -> list[SignatureInput]:
    reader = _Reader(header.strip())
    found: list[SignatureInput] = []
    while True:
        reader.spaces()
        label = reader.key()
        reader.take("=")
        start = reader.at
        components, params = reader.inner_list()
        found.append(SignatureInput(label, tuple(components), params, reader.text[start : reader.at]))
        reader.spaces()
        if not reader.peek():
            return found
        reader.take(",")


def parse_signature(header: str) -> dict[str, bytes]:
    reader = _Reader(header.strip())
    found: dict[str, bytes] = {}
    while True:
        reader.spaces()
        label = reader.key()
        reader.take("=")
        found[label] = reader.byte_sequence()
        reader.params()
        reader.spaces()
        if not reader.peek():
            return found
        reader.take(",")


# -- the signature base -------------------------------------------------------------------------------


def _header_value(value: str) -> str:
    return re.sub(r"\s*\r?\n\s*", " ", value.strip())


def signature_base(components: tuple[str, ...], values: Mapping[str, str], serialized_params: str) -> str:
    """One `"name": value` line per covered component, then the `@signature-params` line."""
    lines = [f'"{name}": {values[name]}' for name in components]
    lines.append(f'"@signature-params": {serialized_params}')
    return "\n".join(lines)


def component_values(headers: Mapping[str, str], target: str, authority: str) -> dict[str, str]:
    """What each covered component means for this request (header names are case-insensitive)."""
    lower = {name.lower(): _header_value(value) for name, value in headers.items()}
    values = {"@request-target": target, "@authority": authority}
    for name in REQUIRED_COMPONENTS[2:]:
        if name in lower:
            values[name] = lower[name]
    return values


def compute(key: bytes, base: str) -> bytes:
    return hmac.new(key, base.encode(), hashlib.sha256).digest()


# -- verification -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: str | None  # None: accepted
    session_id: str = ""
    organization_id: str = ""
    correlation_id: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is None


class NonceCache:
    """Nonces of accepted signatures until they could no longer pass the age check (bounded)."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self.until: OrderedDict[str, float] = OrderedDict()

    def seen(self, nonce: str, now: float) -> bool:
        while self.until:
            first, deadline = next(iter(self.until.items()))
            if deadline > now and len(self.until) < self.limit:
                break
            del self.until[first]
        return nonce in self.until

    def add(self, nonce: str, until: float) -> None:
        self.until[nonce] = until
        self.until.move_to_end(nonce)


class Verifier:
    """Checks one upgrade request's API key and signature against the configured credentials.

    `max_age` and `skew` follow the Genesys documentation (a signature lives 10 s, clocks may
    differ by a few seconds); the nonce of every accepted signature is remembered for that long,
    so a captured upgrade request cannot be replayed. An empty secret accepts unsigned requests
    (the integration has no client secret), never the other way round.
    """

    def __init__(self, api_key: str, client_secret: str, max_age: float = 10.0, skew: float = 3.0) -> None:
        if not API_KEY_FORMAT.match(api_key):
            raise ValueError("the AudioHook API key has characters Genesys does not use (A-Z a-z 0-9 + / _ - =)")
        self.api_key = api_key.encode()
        self.key = decode_secret(client_secret) if client_secret else b""
        self.max_age = max_age
        self.skew = skew
        self.nonces = NonceCache()

    def verify(self, headers: Mapping[str, str], target: str, authority: str, now: float) -> Verdict:
        values = component_values(headers, target, authority)
        ids = (
            values.get("audiohook-session-id", ""),
            values.get("audiohook-organization-id", ""),
            values.get("audiohook-correlation-id", ""),
        )
        reason = self._check(headers, values, now)
        return Verdict(reason, *ids)

    def _check(self, headers: Mapping[str, str], values: dict[str, str], now: float) -> str | None:
        api_key = values.get("x-api-key", "")
        if not api_key:
            return MISSING_API_KEY
        known = hmac.compare_digest(api_key.encode(), self.api_key)
        if not all(values.get(name) for name in REQUIRED_COMPONENTS):
            return MISSING_HEADERS
        lower = {name.lower(): value for name, value in headers.items()}
        if "signature-input" not in lower and "signature" not in lower:
            if not known:
                return UNKNOWN_API_KEY
            return MISSING_SIGNATURE if self.key else None
        try:
            signed = self._pick(parse_signature_input(lower.get("signature-input", "")))
            signatures = parse_signature(lower.get("signature", ""))
        except SignatureError:
            return MALFORMED_SIGNATURE if known else UNKNOWN_API_KEY
        if signed is None or signed.label not in signatures:
            return MALFORMED_SIGNATURE if known else UNKNOWN_API_KEY
        params = signed.params
        # An unknown key is verified against a random key all the same, so timing says nothing.
        key = self.key if known and self.key else secrets.token_bytes(32)
        expected = compute(key, signature_base(signed.components, values, signed.serialized))
        matches = hmac.compare_digest(expected, signatures[signed.label])
        if not known or params.get("keyid") != api_key:
            return UNKNOWN_API_KEY
        if not self.key:
            return None  # no secret configured: the key alone authenticates (as Genesys' integration allows)
        created, expires = params.get("created"), params.get("expires")
        if not isinstance(created, int) or not isinstance(expires, int | None):
            return MALFORMED_SIGNATURE
        if not matches:
            return BAD_SIGNATURE
        if created > now + self.skew:
            return FUTURE_SIGNATURE
        if created + self.max_age + self.skew < now:
            return STALE_SIGNATURE
        if expires is not None and expires + self.skew < now:
            return EXPIRED_SIGNATURE
        nonce = str(params["nonce"])
        if self.nonces.seen(nonce, now):
            return REPLAYED_SIGNATURE
        self.nonces.add(nonce, created + self.max_age + self.skew)
        return None

    @staticmethod
    def _pick(inputs: list[SignatureInput]) -> SignatureInput | None:
        """The signature that covers what Genesys covers, with only the parameters it sends."""
        for candidate in inputs:
            params = candidate.params
            covered = candidate.components
            if len(set(covered)) != len(covered) or set(covered) != set(REQUIRED_COMPONENTS):
                continue
            if set(params) - KNOWN_PARAMS:
                continue
            nonce, alg = params.get("nonce"), params.get("alg", "hmac-sha256")
            if not isinstance(nonce, str) or len(nonce) < MIN_NONCE_CHARS or alg != "hmac-sha256":
                continue
            if not isinstance(params.get("keyid"), str):
                continue
            return candidate
        return None
