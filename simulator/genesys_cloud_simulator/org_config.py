"""The simulated org's configuration: the REST reads `audit` makes, with the design document's traps.

Bodies follow the official SDK's models (PureCloudPlatformClientV2: TranscriptionSettings, Queue /
QueueEntityListing, SpeechTextAnalyticsSettingsResponse, ProgramsEntityListing,
TopicsDefinitionsProgramsMappingsEntityListing, ProgramTranscriptionEngines, ProgramProcessingSettings,
SupportedDialectsEntityListing, EntityListing, PolicyEntityListing, FlowEntityListing,
TrunkBaseEntityListing); the tests deserialize every answer with the SDK's own API classes.

The org is the chosen scenarios' queues (all five, q-billing, q-support, q-fr, q-payments, q-legacy,
without scenarios or with `demo`), healthy unless a trap is switched on by `SimulatorConfig.org_traps`
(`simulate --org-trap`) or implied by a scenario (SCENARIO_TRAPS):

- `no-transcription`: q-legacy does not enable transcription (org mode EnabledQueueFlow);
- `legacy-policy`: q-legacy is in no program (no default program); a retention policy still records it;
- `sentiment-off`: the Legacy desk program has sentiment analysis off;
- `dialect-mismatch`: q-fr speaks fr-FR, its program transcribes en-US only;
- `masking`: PCI and PII redaction on, and a secure call flow exists;
- `trunk-recording-off`: the external carrier trunk does not record.

`SimulatorConfig.forbidden_permissions` lists permissions the OAuth client lacks: every read that needs
one answers 403 with the platform's missing-permissions body.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from genesys_cloud_simulator.config import SimulatorConfig
from genesys_cloud_simulator.oauth import TokenStore

ORG_TRAPS: dict[str, str] = {
    "no-transcription": "q-legacy does not enable voice transcription",
    "legacy-policy": "q-legacy is in no analytics program; a legacy retention policy still records it",
    "sentiment-off": "the Legacy desk program has sentiment analysis off",
    "dialect-mismatch": "q-fr speaks fr-FR but its program transcribes en-US only",
    "masking": "PCI and PII redaction on; a secure call flow exists",
    "trunk-recording-off": "the external carrier trunk does not record calls",
}
# The queues each call scenario's agents take calls in.
SCENARIO_QUEUES: dict[str, tuple[str, ...]] = {
    "steady": ("q-billing", "q-support"),
    "sour": ("q-billing",),
    "flapping": ("q-support",),
    "late-final": ("q-support",),
    "zero": ("q-fr",),
    "masking": ("q-payments",),
    "missing-field": ("q-support",),
    "no-sentiment": ("q-legacy",),
}
# Which traps a call scenario implies, so the audit sees the configuration behind each call symptom.
SCENARIO_TRAPS: dict[str, tuple[str, ...]] = {
    "zero": ("dialect-mismatch",),
    "masking": ("masking",),
    "no-sentiment": ("legacy-policy",),
}

STA = "/api/v2/speechandtextanalytics"
DATE = "2026-01-05T09:00:00.000Z"
DIVISION = {"id": "div-home", "name": "Home", "selfUri": "/api/v2/authorization/divisions/div-home"}
QUEUES = ("q-billing", "q-support", "q-fr", "q-payments", "q-legacy")
ENGINE_DIALECTS = {
    "Genesys": ["en-US", "en-GB", "en-AU", "fr-FR", "fr-CA", "de-DE", "es-ES", "es-US", "nl-NL"],
    "GenesysExtended": ["pt-BR", "it-IT", "ja-JP"],
}
SENTIMENT_DIALECTS = ["en-US", "en-GB", "en-AU", "fr-FR", "fr-CA", "de-DE", "es-ES", "es-US"]
# program id -> (name, queues)
PROGRAMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "prog-care": ("Customer care", ("q-billing", "q-support")),
    "prog-fr": ("French desk", ("q-fr",)),
    "prog-payments": ("Payments", ("q-payments",)),
    "prog-legacy": ("Legacy desk", ("q-legacy",)),
}
# (method, path pattern) reads and the permission each needs (shared/org-audit-notes.md).
PERMISSIONS = {
    "transcription": "routing:transcriptionSettings:view",
    "queues": "routing:queue:view",
    "sta_settings": "speechAndTextAnalytics:settings:view",
    "programs": "speechAndTextAnalytics:program:view",
    "sentiment_dialects": "speechAndTextAnalytics:settings:view",
    "policies": "recording:retentionPolicy:view",
    "flows": "architect:flow:view",
    "trunks": "telephony:plugin:all",
}


def queue_name(queue_id: str) -> str:
    """q-billing -> Billing (the name the notifications endpoint has always given), q-fr -> French."""
    if queue_id == "q-fr":
        return "French"
    return queue_id.removeprefix("q-").replace("-", " ").title() or queue_id


def _ref(kind: str, id_: str, name: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"id": id_, "selfUri": f"/api/v2/{kind}/{id_}"}
    if name:
        out["name"] = name
    return out


class OrgConfigEndpoint:
    """GET-only configuration endpoints of one simulated org; `traps` is live (tests may edit it)."""

    def __init__(self, config: SimulatorConfig, tokens: TokenStore) -> None:
        self.config = config
        self._tokens = tokens
        traps = set(config.org_traps)
        for scenario in config.scenarios:
            for part in SCENARIO_TRAPS_FOR.get(scenario, (scenario,)):
                traps.update(SCENARIO_TRAPS.get(part, ()))
        self.traps = traps
        wanted = {q for name in config.scenarios for q in SCENARIO_QUEUES.get(name, QUEUES)}
        self.queues = tuple(q for q in QUEUES if q in wanted) if wanted else QUEUES
        self.requests: list[str] = []

    def add_routes(self, app: web.Application) -> None:
        routes: list[tuple[str, Callable[[web.Request], Any]]] = [
            ("/api/v2/routing/settings/transcription", self._transcription),
            ("/api/v2/routing/queues", self._queues),
            (f"{STA}/settings", self._sta_settings),
            (f"{STA}/programs", self._programs),
            (f"{STA}/programs/mappings", self._mappings),
            (f"{STA}/programs/transcriptionengines/dialects", self._dialects),
            (f"{STA}/programs/{{id}}/transcriptionengines", self._engines),
            (f"{STA}/programs/{{id}}/settings/processing", self._processing),
            (f"{STA}/sentiment/dialects", self._sentiment_dialects),
            ("/api/v2/recording/mediaretentionpolicies", self._policies),
            ("/api/v2/flows", self._flows),
            ("/api/v2/telephony/providers/edges/trunkbasesettings", self._trunks),
        ]
        for path, handler in routes:
            app.router.add_get(path, self._guarded(handler), allow_head=False)

    # -- plumbing ---------------------------------------------------------------------------------
    def _guarded(self, handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            if not self._authorised(request):
                return web.json_response(
                    {"message": "Invalid or expired access token", "code": "bad.credentials", "status": 401},
                    status=401,
                )
            self.requests.append(request.path_qs)
            result: web.StreamResponse = await handler(request)
            return result

        return wrapper

    def _authorised(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and bool(token.strip()) and self._tokens.is_valid(token.strip())

    def forbidden(self, read: str) -> web.Response | None:
        permission = PERMISSIONS.get(read, "")
        if permission and permission in self.config.forbidden_permissions:
            return missing_permission(permission)
        return None

    def _page(self, request: web.Request, entities: list[dict[str, Any]]) -> dict[str, Any]:
        """pageNumber/pageSize paging as the platform's *EntityListing answers carry it."""
        try:
            size = max(1, min(int(request.query.get("pageSize", "25")), self.config.org_max_page_size))
            number = max(1, int(request.query.get("pageNumber", "1")))
        except ValueError:
            size, number = 25, 1
        count = max(1, math.ceil(len(entities) / size))
        base = request.path
        body: dict[str, Any] = {
            "entities": entities[(number - 1) * size : number * size],
            "pageSize": size,
            "pageNumber": number,
            "total": len(entities),
            "pageCount": count,
            "firstUri": f"{base}?pageSize={size}&pageNumber=1",
            "lastUri": f"{base}?pageSize={size}&pageNumber={count}",
            "selfUri": f"{base}?pageSize={size}&pageNumber={number}",
        }
        if number < count:
            extra = "".join(f"&{k}={v}" for k, v in request.query.items() if k not in ("pageSize", "pageNumber"))
            body["nextUri"] = f"{base}?pageSize={size}&pageNumber={number + 1}{extra}"
        if number > 1:
            body["previousUri"] = f"{base}?pageSize={size}&pageNumber={number - 1}"
        return body

    def _token_page(self, request: web.Request, entities: list[dict[str, Any]]) -> dict[str, Any]:
        """The speech and text analytics listings page with an opaque `nextPage` token instead."""
        try:
            size = max(1, min(int(request.query.get("pageSize", "25")), self.config.org_max_page_size))
            start = int(request.query.get("nextPage", "0") or "0")
        except ValueError:
            size, start = 25, 0
        body: dict[str, Any] = {
            "entities": entities[start : start + size],
            "pageSize": size,
            "total": len(entities),
            "pageCount": max(1, math.ceil(len(entities) / size)),
            "selfUri": request.path_qs,
        }
        if start + size < len(entities):
            body["nextUri"] = f"{request.path}?pageSize={size}&nextPage={start + size}"
        return body

    # -- the model --------------------------------------------------------------------------------
    def queue(self, queue_id: str) -> dict[str, Any]:
        """A `Queue` body; ids outside the org get a healthy queue so name look-ups keep working."""
        language = "fr-FR" if queue_id == "q-fr" else "en-US"
        flow_id = f"flow-inqueue-{queue_id}"
        body: dict[str, Any] = {
            "id": queue_id,
            "name": queue_name(queue_id),
            "division": DIVISION,
            "dateCreated": DATE,
            "dateModified": DATE,
            "memberCount": 4,
            "mediaSettings": {
                "call": {"alertingTimeoutSeconds": 8, "serviceLevel": {"percentage": 0.8, "durationMs": 20000}}
            },
            "queueFlow": _ref("flows", flow_id, f"In-queue {queue_name(queue_id)}"),
            "defaultMediaLanguage": language,
            "enableTranscription": not (queue_id == "q-legacy" and "no-transcription" in self.traps),
            "enableAudioMonitoring": False,
            "suppressInQueueCallRecording": queue_id == "q-payments",
            "scoringMethod": "TimestampAndPriority",
            "selfUri": f"/api/v2/routing/queues/{queue_id}",
        }
        return body

    def programs(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        out = dict(PROGRAMS)
        if "legacy-policy" in self.traps:
            out["prog-legacy"] = ("Legacy desk", ())
        return out

    # -- handlers -----------------------------------------------------------------------------------
    async def _transcription(self, request: web.Request) -> web.Response:
        if (denied := self.forbidden("transcription")) is not None:
            return denied
        masking = "masking" in self.traps
        return web.json_response(
            {
                "transcription": "EnabledQueueFlow",
                "transcriptionConfidenceThreshold": 50,
                "lowLatencyTranscriptionEnabled": True,
                "contentSearchEnabled": False,
                "pciDssRedactionEnabled": masking,
                "piiRedactionEnabled": masking,
            }
        )

    async def _queues(self, request: web.Request) -> web.Response:
        if (denied := self.forbidden("queues")) is not None:
            return denied
        return web.json_response(self._page(request, [self.queue(q) for q in self.queues]))

    async def _sta_settings(self, request: web.Request) -> web.Response:
        if (denied := self.forbidden("sta_settings")) is not None:
            return denied
        return web.json_response(
            {"expectedDialects": ["en-US", "fr-FR"], "textAnalyticsEnabled": True, "agentEmpathyEnabled": True}
        )

    async def _programs(self, request: web.Request) -> web.Response:
        if (denied := self.forbidden("programs")) is not None:
            return denied
        entities = [
            {
                "id": pid,
                "name": name,
                "description": f"{name} program",
                "published": True,
                "topicsCount": 3,
                "tags": [],
                "dateModified": DATE,
                "selfUri": f"{STA}/programs/{pid}",
            }
            for pid, (name, _queues) in self.programs().items()
        ]
        return web.json_response(self._token_page(request, entities))

    async def _mappings(self, request: web.Request) -> web.Response:
        if (denied := self.forbidden("programs")) is not None:
            return denied
        entities = [
            {
                "program": {"id": pid, "name": name, "selfUri": f"{STA}/programs/{pid}"},
                "queues": [_ref("routing/queues", q) for q in queues],
                "flows": [],
                "dateModified": DATE,
            }
            for pid, (name, queues) in self.programs().items()
        ]
        return web.json_response(self._token_page(request, entities))

    async def _dialects(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"entities": [{"engine": engine, "dialects": dialects} for engine, dialects in ENGINE_DIALECTS.items()]}
        )

    def _program_or_404(self, request: web.Request) -> tuple[str, str] | web.Response:
        program_id = request.match_info["id"]
        program = self.programs().get(program_id)
        if program is None:
            return web.json_response(
                {"message": f"program {program_id} not found", "code": "not.found", "status": 404}, status=404
            )
        return program_id, program[0]

    async def _engines(self, request: web.Request) -> web.Response:
        if (denied := self.forbidden("programs")) is not None:
            return denied
        found = self._program_or_404(request)
        if isinstance(found, web.Response):
            return found
        program_id, name = found
        dialects = ["fr-FR"] if program_id == "prog-fr" else ["en-US"]
        if program_id == "prog-fr" and "dialect-mismatch" in self.traps:
            dialects = ["en-US"]
        return web.json_response(
            {
                "id": program_id,
                "program": {"id": program_id, "name": name, "selfUri": f"{STA}/programs/{program_id}"},
                "transcriptionEngines": [{"engine": "Genesys", "dialects": dialects}],
                "dateModified": DATE,
                "selfUri": f"{STA}/programs/{program_id}/transcriptionengines",
            }
        )

    async def _processing(self, request: web.Request) -> web.Response:
        if (denied := self.forbidden("programs")) is not None:
            return denied
        found = self._program_or_404(request)
        if isinstance(found, web.Response):
            return found
        program_id, name = found
        return web.json_response(
            {
                "program": {"id": program_id, "name": name, "selfUri": f"{STA}/programs/{program_id}"},
                "sentimentAnalysisEnabled": not (program_id == "prog-legacy" and "sentiment-off" in self.traps),
                "agentEmpathyAnalysisEnabled": True,
            }
        )

    async def _sentiment_dialects(self, request: web.Request) -> web.Response:
        if (denied := self.forbidden("sentiment_dialects")) is not None:
            return denied
        # The SDK types the items as `object` (shape unconfirmed): the simulator's choice is {dialect}.
        return web.json_response({"entities": [{"dialect": d} for d in SENTIMENT_DIALECTS]})

    async def _policies(self, request: web.Request) -> web.Response:
        if (denied := self.forbidden("policies")) is not None:
            return denied
        policy = {
            "id": "policy-legacy",
            "name": "Legacy call recording",
            "description": "Keeps the legacy desk's recordings for a year",
            "order": 1,
            "enabled": True,
            "createdDate": DATE,
            "modifiedDate": DATE,
            "mediaPolicies": {
                "callPolicy": {
                    "conditions": {
                        "forQueues": [
                            {"id": "q-legacy", "name": "Legacy", "selfUri": "/api/v2/routing/queues/q-legacy"}
                        ],
                        "directions": ["INBOUND"],
                    },
                    "actions": {
                        "retainRecording": True,
                        "deleteRecording": False,
                        "alwaysDelete": False,
                        "retentionDuration": {"archiveRetention": {"days": 365, "storageMedium": "CLOUDARCHIVE"}},
                    },
                }
            },
            "selfUri": "/api/v2/recording/mediaretentionpolicies/policy-legacy",
        }
        return web.json_response(self._page(request, [policy]))

    async def _flows(self, request: web.Request) -> web.Response:
        if (denied := self.forbidden("flows")) is not None:
            return denied
        wanted = {t.strip().upper() for t in request.query.getall("type", []) for t in t.split(",")}
        flows: list[dict[str, Any]] = []
        for queue_id in self.queues:
            flows.append(
                {
                    "id": f"flow-inqueue-{queue_id}",
                    "name": f"In-queue {queue_name(queue_id)}",
                    "type": "INQUEUECALL",
                    "active": True,
                    "system": False,
                    "deleted": False,
                    "supportedLanguages": [{"language": "fr-fr" if queue_id == "q-fr" else "en-us", "isDefault": True}],
                    "selfUri": f"/api/v2/flows/flow-inqueue-{queue_id}",
                }
            )
        if "masking" in self.traps:
            flows.append(
                {
                    "id": "flow-secure-card",
                    "name": "Card capture (secure)",
                    "type": "SECURECALL",
                    "active": True,
                    "system": False,
                    "deleted": False,
                    "supportedLanguages": [{"language": "en-us", "isDefault": True}],
                    "selfUri": "/api/v2/flows/flow-secure-card",
                }
            )
        if wanted:
            flows = [f for f in flows if f["type"] in wanted]
        return web.json_response(self._page(request, flows))

    async def _trunks(self, request: web.Request) -> web.Response:
        if (denied := self.forbidden("trunks")) is not None:
            return denied
        recording = "trunk-recording-off" not in self.traps
        trunk = {
            "id": "trunk-carrier",
            "name": "Carrier SIP trunk",
            "state": "active",
            "trunkType": "EXTERNAL",
            "managed": False,
            "trunkMetabase": {"id": "external_sip_pcv_byoc_carrier.json", "name": "Generic BYOC Carrier"},
            "properties": {
                "trunk_recording_enabled": {"type": "boolean", "value": {"default": True, "instance": recording}}
            },
            "dateCreated": DATE,
            "selfUri": "/api/v2/telephony/providers/edges/trunkbasesettings/trunk-carrier",
        }
        trunks = [trunk]
        wanted = request.query.get("recordingEnabled")
        if wanted is not None:
            trunks = [t for t in trunks if (wanted.lower() == "true") == recording]
        return web.json_response(self._page(request, trunks))


# `demo` expands to every part; other scenarios stand for themselves.
SCENARIO_TRAPS_FOR: dict[str, Sequence[str]] = {"demo": tuple(SCENARIO_TRAPS)}


def missing_permission(permission: str) -> web.Response:
    """The platform's 403 body shape (code missing.permissions, messageParams)."""
    return web.Response(
        status=403,
        content_type="application/json",
        text=json.dumps(
            {
                "status": 403,
                "code": "missing.permissions",
                "message": f"You are missing the following permission(s): {permission}",
                "messageParams": {"missingPermissions": permission},
            }
        ),
    )
