"""The simulator's Notifications API, driven like a client would (httpx + websockets on loopback)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from genesys_cloud_simulator import SimulatedGenesysCloud
from websockets.asyncio.client import connect

from tests.conftest import SimFactory

CHANNELS = "/api/v2/notifications/channels"


async def client(sim: SimulatedGenesysCloud) -> httpx.AsyncClient:
    token = sim.issue_token()
    return httpx.AsyncClient(base_url=sim.base_url, trust_env=False, headers={"Authorization": f"Bearer {token}"})


async def recv(ws: Any, timeout: float = 2.0) -> dict[str, Any]:
    message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    assert isinstance(message, dict)
    return message


async def test_channels_subscriptions_and_a_socket(start_sim: SimFactory) -> None:
    sim = await start_sim(notifications_heartbeat_seconds=0.1)
    async with await client(sim) as http:
        assert (await httpx.AsyncClient(base_url=sim.base_url, trust_env=False).post(CHANNELS)).status_code == 401
        channel = (await http.post(CHANNELS)).json()
        assert set(channel) == {"connectUri", "id", "expires"}
        assert (await http.head(f"{CHANNELS}/{channel['id']}")).status_code == 200
        answer = await http.put(f"{CHANNELS}/{channel['id']}/subscriptions", json=[{"id": "v2.users.u1.conversations"}])
        assert answer.json() == {"entities": [{"id": "v2.users.u1.conversations", "state": "Permitted"}]}
        async with connect(channel["connectUri"], proxy=None) as ws:
            assert (await recv(ws))["eventBody"] == {"message": "WebSocket Heartbeat"}
            await ws.send(json.dumps({"message": "ping"}))
            while (message := await recv(ws))["eventBody"]["message"] != "pong":
                pass
            assert message["topicName"] == "channel.metadata"
            assert sim.notifications.publish("v2.users.u1.conversations", {"id": "c1", "participants": []}) == 1
            while (message := await recv(ws))["topicName"] == "channel.metadata":
                pass
            assert message["eventBody"]["id"] == "c1" and "CorrelationId" in message["metadata"]
            sim.notifications.socket_closing(close_after=0.2)
            while (message := await recv(ws))["topicName"] == "channel.metadata":
                pass
            assert message["topicName"] == "v2.system.socket_closing"
            await asyncio.wait_for(ws.wait_closed(), 2)
            assert ws.close_code == 1001
        topics = await http.get("/api/v2/notifications/availabletopics")
        assert any("sentiment" in t["id"] for t in topics.json()["entities"])


async def test_the_21st_channel_evicts_the_oldest_unused(start_sim: SimFactory) -> None:
    sim = await start_sim()
    async with await client(sim) as http:
        ids = [(await http.post(CHANNELS)).json()["id"] for _ in range(21)]
        assert (await http.head(f"{CHANNELS}/{ids[0]}")).status_code == 404
        assert (await http.head(f"{CHANNELS}/{ids[1]}")).status_code == 200
        assert sim.notifications.channels_evicted == 1 and len(sim.notifications.channels) == 20


async def test_topic_limit_and_rejection_with_missing_permissions(start_sim: SimFactory) -> None:
    sim = await start_sim(forbidden_topics=("v2.speechandtextanalytics.*",))
    async with await client(sim) as http:
        channel = (await http.post(CHANNELS)).json()["id"]
        path = f"{CHANNELS}/{channel}/subscriptions"
        full = [{"id": f"v2.users.u{i}.conversations"} for i in range(1000)]
        assert (await http.put(path, json=full)).status_code == 200
        assert (await http.post(path, json=[{"id": "v2.users.extra.conversations"}])).status_code == 400
        await http.put(path, json=[])
        refused = [{"id": "v2.speechandtextanalytics.conversation.c1.sentiment"}, {"id": "v2.nope"}]
        # Without ignoreErrors (as the SDK documents) one refused topic fails the request with an error.
        error = await http.post(path, json=refused)
        assert error.status_code == 400 and error.json()["code"] == "missing.permissions"
        assert "speechAndTextAnalytics:data:view" in error.json()["messageParams"]["missingPermissions"]
        answer = (await http.post(path + "?ignoreErrors=true", json=refused)).json()["entities"]
        assert answer[0]["state"] == "Rejected"
        assert answer[0]["missingPermissions"] == ["speechAndTextAnalytics:data:view"]
        assert answer[1]["rejectionReason"] == "Topic not found"
        assert (await http.get(path)).json() == {"entities": []}


async def test_channel_expiry_closes_the_socket(start_sim: SimFactory) -> None:
    sim = await start_sim(channel_lifetime_seconds=0.5)
    async with await client(sim) as http:
        channel = (await http.post(CHANNELS)).json()
        async with connect(channel["connectUri"], proxy=None) as ws:
            await asyncio.wait_for(ws.wait_closed(), 3)
        assert (await http.head(f"{CHANNELS}/{channel['id']}")).status_code == 404


async def _subscribed_channel(sim: SimulatedGenesysCloud, token: str) -> dict[str, Any]:
    async with httpx.AsyncClient(
        base_url=sim.base_url, trust_env=False, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        channel: dict[str, Any] = (await http.post(CHANNELS)).json()
        await http.put(f"{CHANNELS}/{channel['id']}/subscriptions", json=[{"id": "v2.users.u1.conversations"}])
    return channel


async def test_a_channel_dies_with_its_token_at_the_next_event_not_silently(start_sim: SimFactory) -> None:
    """The platform notes: a channel dies on token expiry. Deleted, its socket closed with 1000, counted."""
    sim = await start_sim(notifications_heartbeat_seconds=3600, channel_lifetime_seconds=3600)
    channel = await _subscribed_channel(sim, sim.issue_token())
    async with connect(channel["connectUri"], proxy=None) as ws:
        assert sim.notifications.publish("v2.users.u1.conversations", {"id": "c1", "participants": []}) == 1
        assert (await recv(ws))["eventBody"]["id"] == "c1"
        sim.expire_tokens()
        assert sim.notifications.publish("v2.users.u1.conversations", {"id": "c2", "participants": []}) == 0
        assert sim.notifications.channels_token_expired == 1
        await asyncio.wait_for(ws.wait_closed(), 3)  # told, not left open and silent
        assert ws.close_code == 1000
    async with await client(sim) as http:
        assert (await http.head(f"{CHANNELS}/{channel['id']}")).status_code == 404
    assert sim.notifications.channels_token_expired == 1


async def test_a_channel_dies_with_its_token_even_when_no_event_comes(start_sim: SimFactory) -> None:
    sim = await start_sim(token_lifetime_seconds=2.0, notifications_heartbeat_seconds=3600)
    channel = await _subscribed_channel(sim, sim.issue_token())
    async with connect(channel["connectUri"], proxy=None) as ws:
        await asyncio.wait_for(ws.wait_closed(), 15)  # the expiry sweep (every second at most) finds it
        assert ws.close_code == 1000
    assert sim.notifications.channels_token_expired == 1 and channel["id"] not in sim.notifications.channels
