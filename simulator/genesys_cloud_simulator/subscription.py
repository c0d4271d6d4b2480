"""Subscribe-message validation and per-socket event shaping (pure functions).

Kept apart from the socket handling so the protocol rules (filters, field
selection, heartbeat floor) can be read and tested without a network. The rules
follow /work/shared/analytics-websocket-protocol.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from genesys_cloud_simulator.scenarios import CallEvent

FILTER_KEYS = frozenset({"queueId", "agentId"})
# The only optional parts of an event; anything else (ids, eventTime, type) is always sent.
SELECTABLE_FIELDS = frozenset({"sentiment.score", "sentiment.label", "state"})


class SubscriptionError(ValueError):
    """The subscribe message is refused; the text goes to the client as the error message."""


@dataclass(slots=True, frozen=True)
class SubscriptionEntry:
    filters: tuple[tuple[str, str], ...]
    fields: frozenset[str]

    def matches(self, event: Mapping[str, Any]) -> bool:
        return all(event.get(key) == value for key, value in self.filters)


@dataclass(slots=True, frozen=True)
class Subscription:
    entries: tuple[SubscriptionEntry, ...]
    heartbeat: float | None  # None: the client asked for no heartbeat

    def fields_for(self, event: Mapping[str, Any]) -> frozenset[str] | None:
        """Fields requested by every entry the event matches (union), or None if none matches."""
        matched = [entry.fields for entry in self.entries if entry.matches(event)]
        return frozenset().union(*matched) if matched else None

    def ack(self) -> dict[str, Any]:
        heartbeat: float | int | None = self.heartbeat
        if self.heartbeat is not None and self.heartbeat.is_integer():
            heartbeat = int(self.heartbeat)
        return {"type": "subscribed", "events": len(self.entries), "heartbeat": heartbeat}


def _seconds(value: float) -> str:
    return f"{value:g}"


def parse_subscription(message: object, min_heartbeat: float) -> Subscription:
    """Validate a decoded subscribe message; raise SubscriptionError with a client-facing reason."""
    if not isinstance(message, dict):
        raise SubscriptionError("expected a JSON object")
    if message.get("action") != "subscribe":
        raise SubscriptionError("action must be 'subscribe'")
    events = message.get("events")
    if not isinstance(events, list) or not events:
        raise SubscriptionError("events must be a non-empty list")

    entries = []
    for raw in events:
        if not isinstance(raw, dict):
            raise SubscriptionError("each events entry must be an object")
        if raw.get("type") != "conversation":
            raise SubscriptionError(f"unsupported event type {raw.get('type')!r}")
        filters = raw.get("filters", {})
        if filters is None:
            filters = {}
        if not isinstance(filters, dict):
            raise SubscriptionError("filters must be an object")
        for key, value in filters.items():
            if key not in FILTER_KEYS:
                raise SubscriptionError(f"unknown filter {key!r}")
            if not isinstance(value, str):
                raise SubscriptionError(f"filter {key!r} must be a string")
        fields = raw.get("fields", [])
        if fields is None:
            fields = []
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise SubscriptionError("fields must be a list of strings")
        # Unknown field names are ignored, not refused: that is how a mistyped field
        # silently loses data on the platform (the document's field-selection trap).
        entries.append(
            SubscriptionEntry(
                filters=tuple(sorted(filters.items())),
                fields=frozenset(fields) & SELECTABLE_FIELDS,
            )
        )

    heartbeat = message.get("heartbeat")
    if heartbeat is not None:
        is_number = isinstance(heartbeat, int | float) and not isinstance(heartbeat, bool)
        if not is_number or not math.isfinite(heartbeat):
            raise SubscriptionError("heartbeat must be a number of seconds")
        if heartbeat < min_heartbeat or heartbeat <= 0:
            raise SubscriptionError(f"heartbeat must be at least {_seconds(min_heartbeat)} seconds")
        heartbeat = float(heartbeat)
    return Subscription(tuple(entries), heartbeat)


def shape_event(event: Mapping[str, Any], subscription: Subscription) -> dict[str, Any] | None:
    """The event as this subscriber sees it, or None when its filters exclude it.

    `event` must already carry `type` and `eventTime`.
    """
    fields = subscription.fields_for(event)
    if fields is None:
        return None
    out: dict[str, Any] = {"type": event["type"], "eventTime": event["eventTime"]}
    for key, value in event.items():
        if key in out:
            continue
        if key == "state":
            if "state" in fields:
                out[key] = value
        elif key == "sentiment":
            if isinstance(value, Mapping):
                kept = {k: v for k, v in value.items() if f"sentiment.{k}" in fields}
                if kept:
                    out[key] = kept
        else:
            out[key] = value
    return out


def wire_event(event: CallEvent) -> dict[str, Any]:
    """A scenario event as an analytics-websocket conversation event, before shaping and stamping."""
    out: dict[str, Any] = {
        "conversationId": event.conversation_id,
        "agentId": event.agent_id,
        "queueId": event.queue_id,
    }
    if event.state is not None:
        out["state"] = event.state
    if event.sentiment:
        out["sentiment"] = {"score": event.score, "label": event.label}
    return out


def utc_timestamp(now: datetime | None = None) -> str:
    """ISO 8601 UTC with milliseconds and a Z suffix, the protocol's eventTime/timestamp format."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
