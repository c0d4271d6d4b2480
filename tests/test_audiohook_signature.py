"""AudioHook upgrade authentication: the documented golden vector, and every refusal with its reason."""

from __future__ import annotations

import base64

import pytest
from genesys_cloud_simulator.audiohook_client import signed_headers

from genesys_sentiment_exporter.audiohook import signature as sig

# The Genesys documentation's example (shared/audiohook-protocol.md section 3).
GOLDEN_PARAMS = (
    '("@request-target" "@authority" "audiohook-organization-id" "audiohook-session-id" '
    '"audiohook-correlation-id" "x-api-key");keyid="SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh";'
    'nonce="VGhpc0lzQVVuaXF1ZU5vbmNl";alg="hmac-sha256";created=1641013200;expires=3282026430'
)
GOLDEN_HEADERS = {
    "Audiohook-Organization-Id": "d7934305-0972-4844-938e-9060eef73d05",
    "Audiohook-Session-Id": "30b0e395-84d3-4570-ac13-9a62d8f514c0",
    "Audiohook-Correlation-Id": "e160e428-53e2-487c-977d-96989bf5c99d",
    "X-API-KEY": "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh",
    "Signature-Input": "sig1=" + GOLDEN_PARAMS,
    "Signature": "sig1=:NZBwyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJh4=:",
}
GOLDEN_KEY = "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh"
GOLDEN_SECRET = "TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU="
TARGET = "/api/v1/voicebiometrics/ws"
HOST = "audiohook.example.com"
CREATED = 1641013200

API_KEY = "c2ltdWxhdGVkLWFwaS1rZXk="
SECRET = base64.b64encode(b"simulated client secret 32 bytes").decode()
URL = "ws://127.0.0.1:8729/audiohook"


def golden_verifier() -> sig.Verifier:
    return sig.Verifier(GOLDEN_KEY, GOLDEN_SECRET)


def test_golden_vector_accepted_and_base_matches_the_documentation() -> None:
    values = sig.component_values(GOLDEN_HEADERS, TARGET, HOST)
    base = sig.signature_base(sig.REQUIRED_COMPONENTS, values, GOLDEN_PARAMS)
    digest = sig.compute(sig.decode_secret(GOLDEN_SECRET), base)
    assert base64.b64encode(digest).decode() == "NZBwyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJh4="
    verdict = golden_verifier().verify(GOLDEN_HEADERS, TARGET, HOST, CREATED + 2)
    assert verdict.ok and verdict.session_id == "30b0e395-84d3-4570-ac13-9a62d8f514c0"
    assert verdict.organization_id == "d7934305-0972-4844-938e-9060eef73d05"


def test_simulator_signs_like_genesys() -> None:
    """The simulator's independent signer reproduces the documented signature."""
    headers = signed_headers(
        "wss://audiohook.example.com/api/v1/voicebiometrics/ws",
        GOLDEN_KEY,
        GOLDEN_SECRET,
        GOLDEN_HEADERS["Audiohook-Organization-Id"],
        GOLDEN_HEADERS["Audiohook-Session-Id"],
        GOLDEN_HEADERS["Audiohook-Correlation-Id"],
        now=CREATED,
        nonce="VGhpc0lzQVVuaXF1ZU5vbmNl",
    )
    # Same key, nonce and created; only `expires` differs (Genesys sends created + 30).
    assert headers["Signature-Input"].startswith("sig1=" + GOLDEN_PARAMS.split(";expires=")[0])
    assert golden_verifier().verify(headers, TARGET, HOST, CREATED + 1).ok


def fresh(now: float, **changes: str) -> dict[str, str]:
    headers = signed_headers(URL, API_KEY, SECRET, "org-1", "session-1", "corr-1", now=now)
    headers.update(changes)
    return headers


def verify(headers: dict[str, str], now: float, verifier: sig.Verifier | None = None) -> str | None:
    verifier = verifier or sig.Verifier(API_KEY, SECRET)
    return verifier.verify(headers, "/audiohook", "127.0.0.1:8729", now).reason


NOW = 1_800_000_000.0


def test_fresh_signature_accepted_once_then_replay_refused() -> None:
    verifier = sig.Verifier(API_KEY, SECRET)
    headers = fresh(NOW)
    assert verify(headers, NOW + 1, verifier) is None
    assert verify(headers, NOW + 2, verifier) == sig.REPLAYED_SIGNATURE
    # A new nonce is a new request.
    assert verify(fresh(NOW + 2), NOW + 2, verifier) is None


def test_nonces_are_forgotten_once_the_signature_could_not_pass_anyway() -> None:
    verifier = sig.Verifier(API_KEY, SECRET)
    for i in range(50):
        assert verify(fresh(NOW + i), NOW + i, verifier) is None
    assert len(verifier.nonces.until) <= 14  # max_age + skew + 1 seconds of nonces


@pytest.mark.parametrize(
    ("signed_at", "checked_at", "reason"),
    [
        (NOW + 10, NOW, sig.FUTURE_SIGNATURE),
        (NOW, NOW + 14, sig.STALE_SIGNATURE),
        (NOW, NOW + 12, None),  # within max age plus skew
    ],
)
def test_age(signed_at: float, checked_at: float, reason: str | None) -> None:
    assert verify(fresh(signed_at), checked_at) == reason


def test_expired_signature_refused() -> None:
    headers = fresh(NOW)
    headers["Signature-Input"] = headers["Signature-Input"].replace(f"expires={int(NOW) + 30}", f"expires={int(NOW)}")
    # Re-sign so only the expiry is wrong, not the HMAC.
    verifier = sig.Verifier(API_KEY, SECRET, max_age=60)
    params = headers["Signature-Input"].removeprefix("sig1=")
    values = sig.component_values(headers, "/audiohook", "127.0.0.1:8729")
    digest = sig.compute(sig.decode_secret(SECRET), sig.signature_base(sig.REQUIRED_COMPONENTS, values, params))
    headers["Signature"] = f"sig1=:{base64.b64encode(digest).decode()}:"
    assert verify(headers, NOW + 5, verifier) == sig.EXPIRED_SIGNATURE


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Audiohook-Session-Id": "session-2"}, sig.BAD_SIGNATURE),  # tampered header
        ({"Audiohook-Organization-Id": "org-2"}, sig.BAD_SIGNATURE),
        ({"X-API-KEY": "b3RoZXIta2V5"}, sig.UNKNOWN_API_KEY),
        ({"X-API-KEY": ""}, sig.MISSING_API_KEY),
        ({"Audiohook-Correlation-Id": ""}, sig.MISSING_HEADERS),
        ({"Signature": "sig1=:AAAA:"}, sig.BAD_SIGNATURE),
        ({"Signature": "sig1=not-a-byte-sequence"}, sig.MALFORMED_SIGNATURE),
        ({"Signature-Input": 'sig1=("@authority");keyid="x"'}, sig.MALFORMED_SIGNATURE),
        ({"Signature-Input": "sig1=(((("}, sig.MALFORMED_SIGNATURE),
    ],
)
def test_tampered_or_malformed(change: dict[str, str], reason: str) -> None:
    assert verify(fresh(NOW), NOW + 1) is None
    assert verify(fresh(NOW, **change), NOW + 1) == reason


def test_wrong_secret_is_a_bad_signature() -> None:
    other = base64.b64encode(b"another secret, also 32 bytes!!!").decode()
    headers = signed_headers(URL, API_KEY, other, "org-1", "session-1", now=NOW)
    assert verify(headers, NOW + 1) == sig.BAD_SIGNATURE


def test_other_target_or_host_is_a_bad_signature() -> None:
    headers = fresh(NOW)
    verifier = sig.Verifier(API_KEY, SECRET)
    assert verifier.verify(headers, "/audiohook?x=1", "127.0.0.1:8729", NOW + 1).reason == sig.BAD_SIGNATURE
    assert verifier.verify(headers, "/audiohook", "evil.example:8729", NOW + 1).reason == sig.BAD_SIGNATURE


def test_unsigned_request_needs_an_empty_secret() -> None:
    unsigned = signed_headers(URL, API_KEY, "", "org-1", "session-1", now=NOW)
    assert verify(unsigned, NOW) == sig.MISSING_SIGNATURE
    assert verify(unsigned, NOW, sig.Verifier(API_KEY, "")) is None
    assert verify(signed_headers(URL, "b3RoZXIta2V5", "", "org-1", "s"), NOW, sig.Verifier(API_KEY, "")) == (
        sig.UNKNOWN_API_KEY
    )


def test_bad_credentials_refused_at_configuration() -> None:
    with pytest.raises(ValueError, match="API key"):
        sig.Verifier("has spaces", SECRET)
    with pytest.raises(ValueError, match="base64"):
        sig.Verifier(API_KEY, "not base64!")
