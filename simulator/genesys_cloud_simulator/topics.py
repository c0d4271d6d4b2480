"""Which notification topics the simulated org offers, what each needs, and how a request for one is judged.

Pure functions over `SimulatorConfig`, shaped as the official SDK's models (PureCloudPlatformClientV2 269:
`AvailableTopic`, `ChannelTopic`, `ErrorBody`), so `availabletopics`, the subscription answers and `check`
all read the same rules:

- A topic whose required permission is in `config.forbidden_permissions`, or that matches a
  `config.forbidden_topics` pattern, is refused with `missingPermissions` (the client's role lacks them).
- A topic matching a `config.current_user_topics` pattern is flagged `requiresCurrentUser` by
  `availabletopics` and refused: a client-credentials token has no user, so no topic id can be "the
  current user".
- Without `ignoreErrors=true` a request carrying any refused topic fails as a whole with an `ErrorBody`
  (the SDK documents the flag as "optionally prevent throwing of errors for failed permissions checks";
  Genesys' streaming client adds it so that "bulk requests succeed with individual failure results
  instead of failing the entire bulk operation", purecloudlabs/genesys-cloud-streaming-client#318).
  The status the platform uses for that error is not documented; the simulator answers 400.

The permission names are the simulator's reading of the public docs (the transcription topic's
`conversation:transcription:view` is documented; the others are unconfirmed), see docs/real-org.md.

Unset fields are omitted, never sent as null: the SDK's serialiser drops `None` attributes and the
platform's REST answers leave unset fields out. (Conversation *notification* bodies are another surface:
see notifications_conversations.py.)
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from genesys_cloud_simulator.config import SimulatorConfig


@dataclass(frozen=True, slots=True)
class TopicRule:
    template: str  # as `availabletopics` lists it
    pattern: re.Pattern[str]
    permissions: tuple[str, ...]
    parameters: tuple[str, ...]
    description: str
    # Permissions are only needed when the topic's user is not the caller (a user token on its own id).
    current_user_or_permission: bool = False


RULES: tuple[TopicRule, ...] = (
    TopicRule(
        "v2.users.{id}.conversations",
        re.compile(r"^v2\.users\.[^.]+\.conversations$"),
        ("conversation:communication:view",),
        ("userId",),
        "Conversations of a user",
        current_user_or_permission=True,
    ),
    TopicRule(
        "v2.routing.queues.{id}.conversations",
        re.compile(r"^v2\.routing\.queues\.[^.]+\.conversations$"),
        ("routing:queue:view", "conversation:communication:view"),
        ("queueId",),
        "Conversations of a queue",
    ),
    TopicRule(
        "v2.speechandtextanalytics.conversation.{id}.sentiment",
        re.compile(r"^v2\.speechandtextanalytics\.conversation\.[^.]+\.sentiment$"),
        ("speechAndTextAnalytics:data:view",),
        ("conversationId",),
        "Overall sentiment of a conversation, after analysis",
    ),
    TopicRule(
        "v2.conversations.{id}.transcription",
        re.compile(r"^v2\.conversations\.[^.]+\.transcription$"),
        ("conversation:transcription:view",),
        ("conversationId",),
        "Live transcript of a conversation",
    ),
)

MISSING_PERMISSIONS = "The client is missing permissions for this topic"
CURRENT_USER = "The topic requires the current user; this client has none"
NOT_FOUND = "Topic not found"


def rule_for(topic: str) -> TopicRule | None:
    return next((r for r in RULES if r.pattern.match(topic)), None)


def _matches(topic: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(topic, p) for p in patterns)


def requires_current_user(config: SimulatorConfig, topic: str) -> bool:
    return _matches(topic, config.current_user_topics)


def missing_permissions(config: SimulatorConfig, rule: TopicRule, topic: str) -> tuple[str, ...]:
    lacking = tuple(p for p in rule.permissions if p in config.forbidden_permissions)
    if not lacking and _matches(topic, config.forbidden_topics):
        lacking = rule.permissions
    return lacking


def judge(config: SimulatorConfig, topic: str) -> dict[str, Any]:
    """A `ChannelTopic`: Permitted, or Rejected with why."""
    rule = rule_for(topic)
    if rule is None:
        return {"id": topic, "state": "Rejected", "rejectionReason": NOT_FOUND}
    if requires_current_user(config, topic):
        return {"id": topic, "state": "Rejected", "rejectionReason": CURRENT_USER}
    lacking = missing_permissions(config, rule, topic)
    if lacking:
        return {
            "id": topic,
            "state": "Rejected",
            "rejectionReason": MISSING_PERMISSIONS,
            "missingPermissions": list(lacking),
        }
    return {"id": topic, "state": "Permitted"}


def refusal_error(refused: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The `ErrorBody` of a request failed by its refused topics (no `ignoreErrors`)."""
    missing = sorted({p for e in refused for p in e.get("missingPermissions", ())})
    first = refused[0]
    body: dict[str, Any] = {
        "message": f"Subscription to {first['id']} was rejected: {first['rejectionReason']}",
        "code": "missing.permissions" if missing else "bad.request",
        "status": 400,
    }
    if missing:
        body["messageParams"] = {"missingPermissions": ", ".join(missing)}
    return body


def expansions(values: Iterable[str]) -> frozenset[str]:
    """`expand` as the SDK sends it (repeated parameter) or comma-separated."""
    return frozenset(part.strip() for value in values for part in value.split(",") if part.strip())


def available(config: SimulatorConfig, expand: frozenset[str]) -> list[dict[str, Any]]:
    """`AvailableTopic`s: booleans always, permissions and descriptions only when expanded."""
    topics = []
    for rule in RULES:
        current_user = requires_current_user(config, rule.template)
        topic: dict[str, Any] = {"id": rule.template}
        if "description" in expand:
            topic["description"] = rule.description
        if "requiresPermissions" in expand:
            topic["requiresPermissions"] = list(rule.permissions)
            details = [{"type": "requiresPermissions", "permissions": list(rule.permissions), "enforced": True}]
            if current_user:
                details.append({"type": "requiresCurrentUser", "enforced": True})
            topic["permissionDetails"] = details
        topic["requiresCurrentUser"] = current_user
        topic["requiresCurrentUserOrPermission"] = rule.current_user_or_permission and not current_user
        topic["requiresDivisionPermissions"] = False
        topic["requiresAnyValidator"] = False
        topic["enforced"] = True
        topic["visibility"] = "Public"
        topic["topicParameters"] = list(rule.parameters)
        topics.append(topic)
    return topics


def compact(value: Any) -> Any:
    """`value` without null members, at any depth: how the platform's REST answers leave unset fields out."""
    if isinstance(value, dict):
        return {k: compact(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value
