"""The token endpoint behaves like the real platform's client-credentials grant."""

from __future__ import annotations

import httpx
from sim_helpers import SimFactory, basic, request_token


async def test_valid_client_gets_a_bearer_token_with_its_lifetime(make_sim: SimFactory) -> None:
    sim = await make_sim(token_lifetime_seconds=900)
    first = await request_token(sim)
    second = await request_token(sim)
    assert first.status_code == 200
    body = first.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert len(body["access_token"]) >= 32
    assert body["access_token"] != second.json()["access_token"]
    assert first.headers["Cache-Control"] == "no-store"
    assert (sim.tokens_issued, sim.token_requests) == (2, 2)


async def test_wrong_secret_unknown_client_or_no_credentials_is_invalid_client(make_sim: SimFactory) -> None:
    sim = await make_sim()
    attempts = [
        {"Authorization": basic(secret="wrong")},
        {"Authorization": basic(client_id="someone-else")},
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "Bearer demo-secret"},
        {},
    ]
    for headers in attempts:
        response = await request_token(sim, headers=headers)
        assert response.status_code == 401, headers
        assert response.json() == {"error": "invalid_client", "error_description": "authentication failed"}
    assert sim.tokens_issued == 0


async def test_grant_type_must_be_client_credentials_in_a_form_body(make_sim: SimFactory) -> None:
    sim = await make_sim()
    wrong = await request_token(sim, data={"grant_type": "password"})
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "unsupported_grant_type"
    # The design document's JSON body is not what the platform accepts.
    as_json = await request_token(sim, data=None, json={"grant_type": "client_credentials"})
    assert as_json.status_code == 400
    assert as_json.json()["error"] == "invalid_request"
    assert sim.tokens_issued == 0


async def test_injected_429_carries_retry_after_then_service_resumes(make_sim: SimFactory) -> None:
    sim = await make_sim()
    sim.fail_token_requests(2, retry_after=7)
    for _ in range(2):
        limited = await request_token(sim)
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "7"
    assert (await request_token(sim)).status_code == 200
    assert (sim.token_requests, sim.tokens_issued) == (3, 1)


async def test_default_retry_after_and_503_without_it(make_sim: SimFactory) -> None:
    sim = await make_sim(retry_after_seconds=3)
    sim.fail_token_requests(1)
    sim.fail_token_requests(1, status=503)
    limited = await request_token(sim)
    unavailable = await request_token(sim)
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "3")
    assert unavailable.status_code == 503
    assert "Retry-After" not in unavailable.headers


async def test_every_nth_token_request_is_rate_limited(make_sim: SimFactory) -> None:
    sim = await make_sim(token_429_every_n=3, retry_after_seconds=1)
    statuses = [(await request_token(sim)).status_code for _ in range(6)]
    assert statuses == [200, 200, 429, 200, 200, 429]


async def test_only_post_is_served(make_sim: SimFactory) -> None:
    sim = await make_sim()
    async with httpx.AsyncClient(base_url=sim.base_url, trust_env=False) as client:
        assert (await client.get("/oauth/token")).status_code == 405
