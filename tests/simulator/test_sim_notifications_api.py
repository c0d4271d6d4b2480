"""The simulator's Notifications REST API as the official SDK (PureCloudPlatformClientV2) documents it.

Each answer is requested through the SDK's own NotificationsApi method (its path, its query parameters),
then the raw JSON is checked against the SDK model (tests/sdk_models.py: every key a field, every enum
known, no null anywhere: the platform omits unset fields).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import PureCloudPlatformClientV2 as sdk
import pytest
from genesys_cloud_simulator import SimulatedGenesysCloud
from genesys_cloud_simulator.topics import compact
from sim_helpers import SimFactory

from tests.sdk_models import problems

CHANNELS = "/api/v2/notifications/channels"
USERS = "v2.users.a1.conversations"
QUEUES = "v2.routing.queues.q1.conversations"
TRANSCRIPT = "v2.conversations.c1.transcription"
POSTCALL = "v2.speechandtextanalytics.conversation.c1.sentiment"


async def notifications_api(sim: SimulatedGenesysCloud) -> tuple[sdk.NotificationsApi, str]:
    client = sdk.ApiClient(host=sim.base_url)
    await asyncio.to_thread(client.get_client_credentials_token, sim.config.client_id, sim.config.client_secret)
    return sdk.NotificationsApi(client), client.access_token


async def raw(sim: SimulatedGenesysCloud, token: str, method: str, path: str, body: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=sim.base_url, trust_env=False) as http:
        return await http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})


def subscribe(api: sdk.NotificationsApi, channel: str, topics: list[str], **kwargs: Any) -> Any:
    body = []
    for topic in topics:
        item = sdk.ChannelTopic()
        item.id = topic
        body.append(item)
    return api.post_notifications_channel_subscriptions(channel, body, **kwargs)


async def test_a_refused_topic_without_ignore_errors_fails_the_request_with_an_error_body(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim(forbidden_permissions=("conversation:transcription:view",))
    api, token = await notifications_api(sim)
    channel = (await asyncio.to_thread(api.post_notifications_channels)).id
    with pytest.raises(sdk.rest.ApiException) as error:
        await asyncio.to_thread(subscribe, api, channel, [USERS, TRANSCRIPT])
    assert error.value.status == 400
    path = f"{CHANNELS}/{channel}/subscriptions"
    answer = await raw(sim, token, "POST", path, [{"id": USERS}, {"id": TRANSCRIPT}])
    assert answer.status_code == 400
    body = answer.json()
    assert problems(body, "ErrorBody") == [], body
    assert body["status"] == 400 and body["code"] == "missing.permissions"
    assert body["messageParams"] == {"missingPermissions": "conversation:transcription:view"}
    # The whole request failed: not even the permitted topic was added.
    listing = await asyncio.to_thread(api.get_notifications_channel_subscriptions, channel)
    assert listing.entities == []


async def test_with_ignore_errors_the_listing_carries_each_refusal(make_sim: SimFactory) -> None:
    sim = await make_sim(forbidden_topics=("v2.speechandtextanalytics.*",), current_user_topics=("v2.routing.*",))
    api, token = await notifications_api(sim)
    channel = (await asyncio.to_thread(api.post_notifications_channels)).id
    topics = [USERS, QUEUES, TRANSCRIPT, POSTCALL, "v2.nope"]
    listing = await asyncio.to_thread(subscribe, api, channel, topics, ignore_errors=True)
    by_id = {t.id: t for t in listing.entities}
    assert [t.id for t in listing.entities] == topics
    assert by_id[USERS].state == by_id[TRANSCRIPT].state == "Permitted"
    assert by_id[USERS].rejection_reason is None and by_id[USERS].missing_permissions is None
    assert by_id[POSTCALL].state == "Rejected"
    assert by_id[POSTCALL].missing_permissions == ["speechAndTextAnalytics:data:view"]
    assert by_id[QUEUES].state == "Rejected" and "current user" in by_id[QUEUES].rejection_reason
    assert by_id["v2.nope"].rejection_reason == "Topic not found"
    answer = await raw(sim, token, "POST", f"{CHANNELS}/{channel}/subscriptions?ignoreErrors=true", [{"id": USERS}])
    assert problems(answer.json(), "ChannelTopicEntityListing") == []
    assert answer.json() == {"entities": [{"id": USERS, "state": "Permitted"}]}  # unset fields left out
    current = await asyncio.to_thread(api.get_notifications_channel_subscriptions, channel)
    assert sorted(t.id for t in current.entities) == [TRANSCRIPT, USERS]
    assert {t.state for t in current.entities} == {"Permitted"}
    body = (await raw(sim, token, "GET", f"{CHANNELS}/{channel}/subscriptions")).json()
    assert problems(body, "ChannelTopicEntityListing") == [], body


async def test_get_channels_lists_this_tokens_channels_or_every_channel_of_the_client(make_sim: SimFactory) -> None:
    sim = await make_sim()
    api, token = await notifications_api(sim)
    mine = await asyncio.to_thread(api.post_notifications_channels)
    other_token = sim.issue_token()
    other = (await raw(sim, other_token, "POST", CHANNELS)).json()
    listing = await asyncio.to_thread(api.get_notifications_channels)
    assert [(c.id, c.connect_uri) for c in listing.entities] == [(mine.id, mine.connect_uri)]
    assert listing.entities[0].expires is not None
    everyone = await asyncio.to_thread(api.get_notifications_channels, includechannels="oauthclient")
    assert [c.id for c in everyone.entities] == [mine.id, None]  # another token's channel: shown, id withheld
    assert everyone.entities[1].expires is not None
    for query in ("", "?includechannels=token", "?includechannels=oauthclient"):
        body = (await raw(sim, token, "GET", CHANNELS + query)).json()
        assert problems(body, "ChannelEntityListing") == [], (query, body)
    assert other["id"] not in str((await raw(sim, token, "GET", CHANNELS + "?includechannels=oauthclient")).json())
    bad = await raw(sim, token, "GET", CHANNELS + "?includechannels=everyone")
    assert bad.status_code == 400 and problems(bad.json(), "ErrorBody") == []


async def test_availabletopics_says_what_each_topic_requires(make_sim: SimFactory) -> None:
    sim = await make_sim(current_user_topics=("v2.conversations.*.transcription",))
    api, token = await notifications_api(sim)
    listing = await asyncio.to_thread(api.get_notifications_availabletopics, expand=["requiresPermissions"])
    topics = {t.id: t for t in listing.entities}
    assert set(topics) == {
        "v2.users.{id}.conversations",
        "v2.routing.queues.{id}.conversations",
        "v2.conversations.{id}.transcription",
        "v2.speechandtextanalytics.conversation.{id}.sentiment",
    }
    transcript = topics["v2.conversations.{id}.transcription"]
    assert transcript.requires_current_user is True
    assert transcript.requires_permissions == ["conversation:transcription:view"]
    users = topics["v2.users.{id}.conversations"]
    assert users.requires_current_user is False and users.requires_current_user_or_permission is True
    assert topics["v2.speechandtextanalytics.conversation.{id}.sentiment"].requires_permissions == [
        "speechAndTextAnalytics:data:view"
    ]
    for query in ("", "?expand=requiresPermissions", "?expand=requiresPermissions&expand=description"):
        body = (await raw(sim, token, "GET", "/api/v2/notifications/availabletopics" + query)).json()
        assert problems(body, "AvailableTopicEntityListing") == [], (query, body)
        assert ("requiresPermissions" in body["entities"][0]) == ("requiresPermissions" in query)
        assert all(isinstance(t["requiresCurrentUser"], bool) for t in body["entities"])


async def test_no_rest_answer_of_the_notifications_api_carries_a_null(make_sim: SimFactory) -> None:
    sim = await make_sim(forbidden_topics=("v2.speechandtextanalytics.*",))
    _api, token = await notifications_api(sim)
    channel = (await raw(sim, token, "POST", CHANNELS)).json()
    assert problems(channel, "Channel") == []
    subs = f"{CHANNELS}/{channel['id']}/subscriptions"
    answers = [
        await raw(sim, token, "PUT", subs + "?ignoreErrors=true", [{"id": USERS}, {"id": POSTCALL}]),
        await raw(sim, token, "POST", subs, [{"id": POSTCALL}]),
        await raw(sim, token, "POST", subs, {"not": "a list"}),
        await raw(sim, token, "GET", subs),
        await raw(sim, token, "GET", CHANNELS),
        await raw(sim, token, "GET", "/api/v2/notifications/availabletopics?expand=requiresPermissions,description"),
        await raw(sim, token, "GET", f"{CHANNELS}/streaming-0-gone/subscriptions"),
        await raw(sim, token, "GET", "/api/v2/users/a1"),
        await raw(sim, "not-a-token", "GET", CHANNELS),
    ]
    for answer in answers:
        body = answer.json()
        assert compact(body) == body, (answer.request.url, body)


def test_compact_drops_nulls_at_any_depth_and_keeps_falsy_values() -> None:
    body = {"a": None, "b": [{"c": None, "d": 0, "e": False, "f": ""}], "g": {"h": None, "i": []}}
    assert compact(body) == {"b": [{"d": 0, "e": False, "f": ""}], "g": {"i": []}}
