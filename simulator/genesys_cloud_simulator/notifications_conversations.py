"""Scenario `CallEvent`s as Notifications API topic messages, in the SDK models' shape (pure).

A conversation has a customer, an ACD participant (the queue) and one agent participant per
agent who took it (a transfer adds one). State transitions go to `v2.users.{agent}.conversations`
of every agent in the conversation and to `v2.routing.queues.{queue}.conversations`; scores go to
`v2.speechandtextanalytics.conversation.{id}.sentiment`.

Nulls: these notification bodies keep `null` for unset fields (`endTime`, `disconnectType`, `wrapup`...),
as the conversation example in shared/genesys-platform-notes.md shows them; whether the notification
service sends nulls or omits the keys is not documented, so the two surfaces differ on purpose: REST
answers omit unset fields (topics.compact, as the SDK's serialiser does) and transcripts omit them (the
SDK-deserialised examples), while conversation events carry nulls. The exporter must read both ways
(tests/test_absent_or_null.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from genesys_cloud_simulator.scenarios import CallEvent

Message = tuple[str, dict[str, Any]]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class _Leg:
    participant_id: str
    agent_id: str
    queue_id: str
    state: str = "alerting"
    disconnect_type: str | None = None
    acw: str = "pending"
    connected_time: str | None = None
    end_time: str | None = None


@dataclass(slots=True)
class _Conversation:
    conversation_id: str
    queue_id: str
    legs: list[_Leg] = field(default_factory=list)
    customer_state: str = "connected"
    acd_state: str = "connected"
    first_score: float | None = None

    def current(self) -> _Leg:
        return self.legs[-1]

    def body(self) -> dict[str, Any]:
        cid = self.conversation_id
        participants: list[dict[str, Any]] = [
            {
                "id": f"{cid}-customer",
                "purpose": "customer",
                "address": "tel:+15550100",
                "calls": [{"id": f"{cid}-s0", "state": self.customer_state, "direction": "inbound"}],
            },
            {
                "id": f"{cid}-acd",
                "purpose": "acd",
                "queueId": self.queue_id,
                "calls": [
                    {
                        "id": f"{cid}-s1",
                        "state": self.acd_state,
                        "disconnectType": "transfer" if self.acd_state == "disconnected" else None,
                    }
                ],
            },
        ]
        for n, leg in enumerate(self.legs):
            over = leg.state == "disconnected"
            participants.append(
                {
                    "id": leg.participant_id,
                    "purpose": "agent",
                    "userId": leg.agent_id,
                    "queueId": leg.queue_id,
                    "name": f"Agent {leg.agent_id}",
                    "connectedTime": leg.connected_time,
                    "endTime": leg.end_time,
                    "wrapupRequired": True,
                    "startAcwTime": leg.end_time if over else None,
                    "endAcwTime": leg.end_time if over and leg.acw == "complete" else None,
                    "wrapup": {"code": "resolved"} if over and leg.acw == "complete" else None,
                    "calls": [
                        {
                            "id": f"{cid}-a{n}",
                            "state": leg.state,
                            "direction": "inbound",
                            "connectedTime": leg.connected_time,
                            "disconnectedTime": leg.end_time,
                            "disconnectType": leg.disconnect_type,
                            "afterCallWork": {
                                "state": leg.acw if over else "pending",
                                "startTime": leg.end_time,
                                "endTime": None,
                            },
                        }
                    ],
                }
            )
        return {"id": cid, "participants": participants}


class ConversationBook:
    """Live conversations; turns scenario events and transfers into topic messages."""

    def __init__(self, scale: float = 1.0, live_sentiment: bool = True) -> None:
        self.scale = scale  # 100.0 for percent-scale scores
        self.live_sentiment = live_sentiment  # False: the sentiment topic speaks post-call only (transcripts.py)
        self.live: dict[str, _Conversation] = {}

    def _messages(self, conv: _Conversation) -> list[Message]:
        body = conv.body()
        agents = dict.fromkeys(leg.agent_id for leg in conv.legs)
        queues = dict.fromkeys([conv.queue_id, *(leg.queue_id for leg in conv.legs)])
        out: list[Message] = [(f"v2.users.{a}.conversations", copy.deepcopy(body)) for a in agents]
        out += [(f"v2.routing.queues.{q}.conversations", copy.deepcopy(body)) for q in queues]
        return out

    def apply(self, event: CallEvent) -> list[Message]:
        if event.transition and event.state is not None:
            return self._transition(event)
        if event.transition or not self.live_sentiment:
            return []
        return [self._sentiment(event)]

    def _transition(self, event: CallEvent) -> list[Message]:
        conv = self.live.get(event.conversation_id)
        if conv is None:
            conv = _Conversation(event.conversation_id, event.queue_id)
            conv.legs.append(_Leg(f"{event.conversation_id}-p0", event.agent_id, event.queue_id))
            self.live[conv.conversation_id] = conv
        leg = conv.current()  # after a transfer the scenario's script goes on with the new agent
        state = event.state
        if state == "connected":
            leg.state, leg.connected_time = "connected", leg.connected_time or _now()
            conv.acd_state = "disconnected"
        elif state in ("wrapup", "ended", "disconnected", "terminated"):
            if leg.state != "disconnected":
                leg.state, leg.disconnect_type, leg.end_time = "disconnected", "peer", _now()
                leg.acw = "pending" if state == "wrapup" else "notApplicable"
            elif state == "ended" and leg.acw == "pending":
                leg.acw = "complete"
            conv.customer_state = conv.acd_state = "disconnected"
        else:
            leg.state = str(state)
        messages = self._messages(conv)
        if state in ("ended", "terminated"):
            del self.live[conv.conversation_id]
        return messages

    def transfer(self, conversation_id: str, to_agent: str, to_queue: str | None = None) -> list[Message]:
        """Blind transfer of a connected call: the current agent leaves, `to_agent` answers."""
        conv = self.live[conversation_id]
        old = conv.current()
        old.state, old.disconnect_type, old.end_time, old.acw = "disconnected", "transfer", _now(), "skipped"
        queue = to_queue or old.queue_id
        conv.legs.append(_Leg(f"{conversation_id}-p{len(conv.legs)}", to_agent, queue, "alerting"))
        alerting = self._messages(conv)
        conv.current().state, conv.current().connected_time = "connected", _now()
        return alerting + self._messages(conv)

    def _sentiment(self, event: CallEvent) -> Message:
        body: dict[str, Any] = {
            "conversationId": event.conversation_id,
            "queueIds": [event.queue_id],
            "divisionIds": ["d-home"],
            "flowIds": [],
        }
        if event.sentiment:
            if event.score is None:
                body["sentimentOverallScore"] = None
            else:
                conv = self.live.get(event.conversation_id)
                first = event.score
                if conv is not None:
                    if conv.first_score is None:
                        conv.first_score = event.score
                    first = conv.first_score
                trend = max(-1.0, min(1.0, event.score - first))
                body["sentimentOverallScore"] = round(event.score * self.scale, 4)
                body["sentimentTrendScore"] = round(trend * self.scale, 4)
        return f"v2.speechandtextanalytics.conversation.{event.conversation_id}.sentiment", body
