"""The analytics WebSocket as a `websockets` client sees it, over real loopback sockets."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime

import httpx
import pytest
from genesys_cloud_simulator import SimulatedGenesysCloud, SimulatorConfig, serve_forever
from genesys_cloud_simulator.subscription import parse_subscription, shape_event
from sim_helpers import SimFactory, conversation, open_socket, receive, request_token, subscribe
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from websockets.protocol import State

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ALL_FIELDS = ["sentiment.score", "sentiment.label", "state"]


async def wait_until(predicate: object, timeout: float = 2.0) -> None:
    assert callable(predicate)
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def assert_silent(ws: object, seconds: float = 0.2) -> None:
    with pytest.raises(TimeoutError):
        await receive(ws, timeout=seconds)  # type: ignore[arg-type]


@pytest.mark.parametrize("token", [None, "not-a-token"])
async def test_missing_or_unknown_token_is_refused_before_the_upgrade(
    sim: SimulatedGenesysCloud, token: str | None
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with open_socket(sim, token):
            pass
    assert refused.value.response.status_code == 401
    assert (sim.connections_accepted, sim.upgrades_refused) == (0, 1)


async def test_expired_token_is_refused_before_the_upgrade(make_sim: SimFactory) -> None:
    sim = await make_sim(token_lifetime_seconds=0.1)
    token = (await request_token(sim)).json()["access_token"]
    await asyncio.sleep(0.15)
    with pytest.raises(InvalidStatus) as refused:
        async with open_socket(sim, token):
            pass
    assert refused.value.response.status_code == 401


async def test_subscribe_is_acknowledged_and_recorded(sim: SimulatedGenesysCloud) -> None:
    token = (await request_token(sim)).json()["access_token"]
    async with open_socket(sim, token) as ws:
        ack = await subscribe(
            ws,
            {"type": "conversation", "filters": {"queueId": "q1"}, "fields": ALL_FIELDS},
            {"type": "conversation", "filters": {"agentId": "a9"}, "fields": ALL_FIELDS},
            heartbeat=30,
        )
        assert ack == {"type": "subscribed", "events": 2, "heartbeat": 30}
        assert sim.open_sockets == 1
        assert sim.connections_accepted == 1
    assert sim.subscribe_messages[0]["action"] == "subscribe"
    assert len(sim.subscribe_messages[0]["events"]) == 2
    await wait_until(lambda: sim.open_sockets == 0)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            {"action": "subscribe", "events": [{"type": "conversation"}], "heartbeat": 5},
            "heartbeat must be at least 10 seconds",
        ),
        ({"action": "subscribe", "events": [], "heartbeat": 30}, "events must be a non-empty list"),
        ({"action": "listen", "events": [{"type": "conversation"}]}, "action must be 'subscribe'"),
        ({"action": "subscribe", "events": [{"type": "user"}]}, "unsupported event type 'user'"),
        (
            {"action": "subscribe", "events": [{"type": "conversation", "filters": {"skill": "x"}}]},
            "unknown filter 'skill'",
        ),
        ("not json at all", "expected a JSON object"),
    ],
)
async def test_bad_subscriptions_get_an_error_and_no_events(make_sim: SimFactory, message: object, reason: str) -> None:
    sim = await make_sim(min_heartbeat_seconds=10)
    async with open_socket(sim, sim.issue_token()) as ws:
        await ws.send(message if isinstance(message, str) else json.dumps(message))
        assert await receive(ws) == {"type": "error", "code": "invalid_subscription", "message": reason}
        assert sim.publish(conversation()) == 0
        await assert_silent(ws)


async def test_a_refused_socket_may_subscribe_again(make_sim: SimFactory) -> None:
    sim = await make_sim(min_heartbeat_seconds=10)
    async with open_socket(sim, sim.issue_token()) as ws:
        assert (await subscribe(ws, heartbeat=1))["type"] == "error"
        assert (await subscribe(ws, heartbeat=10))["type"] == "subscribed"
        assert sim.publish(conversation()) == 1
        assert (await receive(ws))["type"] == "conversation"


async def test_heartbeats_follow_the_requested_cadence(sim: SimulatedGenesysCloud) -> None:
    async with open_socket(sim, sim.issue_token()) as ws:
        await subscribe(ws, heartbeat=0.1)
        loop = asyncio.get_running_loop()
        start = loop.time()
        arrivals = []
        for _ in range(4):
            beat = await receive(ws, timeout=1.0)
            assert beat["type"] == "heartbeat"
            assert ISO_MS.match(beat["timestamp"])
            arrivals.append(loop.time() - start)
        assert 0.35 <= arrivals[-1] <= 0.7


async def test_events_carry_ids_and_a_fresh_millisecond_event_time(sim: SimulatedGenesysCloud) -> None:
    async with open_socket(sim, sim.issue_token()) as ws:
        await subscribe(ws)
        assert sim.publish(conversation()) == 1
        event = await receive(ws)
        assert ISO_MS.match(event["eventTime"])
        age = datetime.now().astimezone() - datetime.fromisoformat(event["eventTime"])
        assert abs(age.total_seconds()) < 2
        assert event == {
            "type": "conversation",
            "eventTime": event["eventTime"],
            "conversationId": "c-1",
            "agentId": "a1",
            "queueId": "q1",
            "state": "connected",
            "sentiment": {"score": -0.62, "label": "negative"},
        }
        given = {**conversation(), "type": "conversation", "eventTime": "2026-11-26T19:00:31.250Z"}
        sim.publish(given)
        assert (await receive(ws))["eventTime"] == "2026-11-26T19:00:31.250Z"


@pytest.mark.parametrize(
    ("fields", "expected_state", "expected_sentiment"),
    [
        (["state"], "connected", None),
        (["sentiment.label"], None, {"label": "negative"}),
        (["sentiment.score"], None, {"score": -0.62}),
        (["sentiment"], None, None),  # not a field: the field-selection trap
        ([], None, None),
    ],
)
async def test_fields_that_were_not_requested_are_omitted(
    sim: SimulatedGenesysCloud,
    fields: list[str],
    expected_state: str | None,
    expected_sentiment: dict[str, object] | None,
) -> None:
    async with open_socket(sim, sim.issue_token()) as ws:
        await subscribe(ws, {"type": "conversation", "fields": fields})
        sim.publish(conversation())
        event = await receive(ws)
        assert event.get("state") == expected_state
        assert event.get("sentiment") == expected_sentiment
        assert ("state" in event) == (expected_state is not None)
        assert ("sentiment" in event) == (expected_sentiment is not None)
        assert event["agentId"] == "a1"


async def test_null_score_is_sent_as_null_when_requested(sim: SimulatedGenesysCloud) -> None:
    async with open_socket(sim, sim.issue_token()) as ws:
        await subscribe(ws, {"type": "conversation", "fields": ["sentiment.score", "state"]})
        sim.publish(conversation(score=None, label=None))
        assert (await receive(ws))["sentiment"] == {"score": None}


async def test_filters_select_by_queue_and_agent_and_entries_combine(sim: SimulatedGenesysCloud) -> None:
    token = sim.issue_token()
    async with (
        open_socket(sim, token) as by_queue,
        open_socket(sim, token) as by_either,
        open_socket(sim, token) as everything,
    ):
        await subscribe(by_queue, {"type": "conversation", "filters": {"queueId": "q1"}, "fields": ["state"]})
        await subscribe(
            by_either,
            {"type": "conversation", "filters": {"queueId": "q2", "agentId": "a2"}, "fields": ["state"]},
            {"type": "conversation", "filters": {"agentId": "a3"}, "fields": ["sentiment.score"]},
        )
        await subscribe(everything, {"type": "conversation", "fields": ["state"]})

        assert sim.publish(conversation(agent="a1", queue="q1")) == 2  # by_queue + everything
        assert sim.publish(conversation(agent="a2", queue="q1")) == 2  # a2 matches only with q2
        assert sim.publish(conversation(agent="a2", queue="q2")) == 2  # by_either + everything
        assert sim.publish(conversation(agent="a3", queue="q9")) == 2  # by_either (2nd entry) + everything

        assert [(await receive(by_queue))["agentId"] for _ in range(2)] == ["a1", "a2"]
        first, second = await receive(by_either), await receive(by_either)
        assert (first["agentId"], first["state"], "sentiment" in first) == ("a2", "connected", False)
        assert (second["agentId"], "state" in second, second["sentiment"]) == ("a3", False, {"score": -0.62})
        assert [(await receive(everything))["agentId"] for _ in range(4)] == ["a1", "a2", "a2", "a3"]
        await assert_silent(by_queue, 0.1)


async def test_after_token_expiry_events_stop_silently_but_heartbeats_go_on(sim: SimulatedGenesysCloud) -> None:
    token = (await request_token(sim)).json()["access_token"]
    async with open_socket(sim, token) as ws:
        await subscribe(ws, heartbeat=0.1)
        assert sim.publish(conversation()) == 1
        assert (await receive(ws))["type"] == "conversation"

        sim.expire_tokens()
        assert sim.publish(conversation()) == 0
        kinds = {(await receive(ws, timeout=1.0))["type"] for _ in range(3)}
        assert kinds == {"heartbeat"}
        assert ws.state is State.OPEN
        assert sim.open_sockets == 1

    with pytest.raises(InvalidStatus):
        async with open_socket(sim, token):
            pass


async def test_natural_token_expiry_also_silences_the_socket(make_sim: SimFactory) -> None:
    sim = await make_sim(token_lifetime_seconds=0.3)
    async with open_socket(sim, sim.issue_token()) as ws:
        await subscribe(ws)
        assert sim.publish(conversation()) == 1
        await asyncio.sleep(0.35)
        assert sim.publish(conversation()) == 0
        assert (await receive(ws))["type"] == "conversation"  # only the first one
        await assert_silent(ws)
        assert ws.state is State.OPEN


async def test_close_streams_sends_1001_after_pending_events(sim: SimulatedGenesysCloud) -> None:
    async with open_socket(sim, sim.issue_token()) as ws:
        await subscribe(ws)
        sim.publish(conversation())
        await sim.close_streams()
        assert (await receive(ws))["type"] == "conversation"
        with pytest.raises(ConnectionClosedOK) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "maintenance")
    assert sim.open_sockets == 0


async def test_drop_streams_is_an_abnormal_closure_1006(sim: SimulatedGenesysCloud) -> None:
    async with open_socket(sim, sim.issue_token()) as ws:
        await subscribe(ws)
        await sim.drop_streams()
        with pytest.raises(ConnectionClosedError) as dropped:
            await asyncio.wait_for(ws.recv(), 2)
        assert dropped.value.rcvd is None
        assert ws.close_code == 1006
    assert sim.open_sockets == 0


async def test_periodic_faults_close_and_drop_on_their_own(make_sim: SimFactory) -> None:
    closing = await make_sim(close_1001_every_seconds=0.2)
    dropping = await make_sim(drop_1006_every_seconds=0.2)
    async with open_socket(closing, closing.issue_token()) as a, open_socket(dropping, dropping.issue_token()) as b:
        await subscribe(a)
        await subscribe(b)
        with pytest.raises(ConnectionClosedOK):
            await asyncio.wait_for(a.recv(), 2)
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(b.recv(), 2)
        assert (a.close_code, b.close_code) == (1001, 1006)


async def test_sockets_without_heartbeat_are_closed_when_idle(make_sim: SimFactory) -> None:
    sim = await make_sim(idle_close_seconds=0.3)
    async with open_socket(sim, sim.issue_token()) as quiet, open_socket(sim, sim.issue_token()) as beating:
        assert (await subscribe(quiet, heartbeat=None))["heartbeat"] is None
        await subscribe(beating, heartbeat=0.1)
        with pytest.raises(ConnectionClosedOK):
            await asyncio.wait_for(quiet.recv(), 2)
        assert quiet.close_code == 1001
        assert beating.state is State.OPEN
        assert (await receive(beating))["type"] == "heartbeat"


async def test_scenarios_are_played_in_real_time_and_can_pause(make_sim: SimFactory) -> None:
    sim = await make_sim(scenarios=["late-final"], speed=50.0)
    async with open_socket(sim, sim.issue_token()) as ws:
        await subscribe(ws)
        first = await receive(ws, timeout=2.0)
        assert (first["agentId"], first["queueId"], first["state"]) == ("agent-late", "q-support", "alerting")
        assert ISO_MS.match(first["eventTime"])
        states = []
        while "ended" not in states:
            event = await receive(ws, timeout=3.0)
            states.append(event.get("state"))
        final = await receive(ws, timeout=2.0)
        assert final["sentiment"] == {"score": -0.9, "label": "negative"}
        assert final["conversationId"] == first["conversationId"]

        sim.pause_scenarios()
        frozen = sim.scenario_elapsed
        await asyncio.sleep(0.3)
        assert sim.scenario_elapsed == frozen
        sim.resume_scenarios()
        await wait_until(lambda: sim.scenario_elapsed > frozen)


async def test_stop_closes_open_sockets_promptly(make_sim: SimFactory) -> None:
    sim = await make_sim()
    async with open_socket(sim, sim.issue_token()) as ws:
        await subscribe(ws)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await sim.stop()
        assert loop.time() - start < 2.0
        with pytest.raises(ConnectionClosedOK):
            await ws.recv()
        assert ws.close_code == 1001


async def test_the_simulator_refuses_non_loopback_addresses() -> None:
    with pytest.raises(ValueError, match="loopback"):
        await SimulatedGenesysCloud().start(host="0.0.0.0")


async def test_serve_forever_runs_until_cancelled() -> None:
    ready: asyncio.Queue[SimulatedGenesysCloud] = asyncio.Queue()
    task = asyncio.create_task(serve_forever(SimulatorConfig(), port=0, on_ready=ready.put_nowait))
    sim = await asyncio.wait_for(ready.get(), 2)
    assert (await request_token(sim)).status_code == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(httpx.ConnectError):
        await request_token(sim)


def test_an_event_matching_several_entries_gets_the_union_of_their_fields() -> None:
    subscription = parse_subscription(
        {
            "action": "subscribe",
            "heartbeat": 30,
            "events": [
                {"type": "conversation", "filters": {"queueId": "q1"}, "fields": ["state"]},
                {"type": "conversation", "filters": {"agentId": "a1"}, "fields": ["sentiment.label"]},
            ],
        },
        min_heartbeat=10,
    )
    stamped = {"type": "conversation", "eventTime": "2026-11-26T19:00:31.250Z", **conversation()}
    shaped = shape_event(stamped, subscription)
    assert shaped is not None
    assert (shaped["state"], shaped["sentiment"]) == ("connected", {"label": "negative"})
    assert shape_event({**stamped, "agentId": "a2", "queueId": "q2"}, subscription) is None
