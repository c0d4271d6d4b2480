"""Client-side helpers for the simulator tests (named uniquely: tests/ has no packages)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from genesys_cloud_simulator import SimulatedGenesysCloud
from websockets.asyncio.client import ClientConnection, connect

SimFactory = Callable[..., Awaitable[SimulatedGenesysCloud]]


def basic(client_id: str = "demo-client", secret: str = "demo-secret") -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


async def request_token(sim: SimulatedGenesysCloud, **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("headers", {"Authorization": basic()})
    kwargs.setdefault("data", {"grant_type": "client_credentials"})
    async with httpx.AsyncClient(base_url=sim.base_url, trust_env=False) as client:
        return await client.post("/oauth/token", **kwargs)


def open_socket(sim: SimulatedGenesysCloud, token: str | None) -> connect:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else None
    return connect(sim.websocket_url, additional_headers=headers, proxy=None, open_timeout=2)


async def receive(ws: ClientConnection, timeout: float = 2.0) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    message = json.loads(raw)
    assert isinstance(message, dict)
    return message


async def subscribe(ws: ClientConnection, *entries: dict[str, Any], heartbeat: float | None = 30) -> dict[str, Any]:
    if not entries:
        entries = ({"type": "conversation", "fields": ["sentiment.score", "sentiment.label", "state"]},)
    message: dict[str, Any] = {"action": "subscribe", "events": list(entries)}
    if heartbeat is not None:
        message["heartbeat"] = heartbeat
    await ws.send(json.dumps(message))
    return await receive(ws)


def conversation(
    agent: str = "a1",
    queue: str = "q1",
    state: str | None = "connected",
    score: float | None = -0.62,
    label: str | None = "negative",
) -> dict[str, Any]:
    event: dict[str, Any] = {"conversationId": "c-1", "agentId": agent, "queueId": queue}
    if state is not None:
        event["state"] = state
    event["sentiment"] = {"score": score, "label": label}
    return event
