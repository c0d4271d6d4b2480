"""The simulated org's configuration answers, read with the official SDK (PureCloudPlatformClientV2).

Each answer is fetched by the SDK's own API method (its path, its query parameters, its token handling)
and deserialized into the SDK's model; then every field of the JSON body must have landed in a model
attribute (the SDK drops unknown fields silently) and no enum may have become `outdated_sdk_version`
(what the SDK does with a value it does not know). That is what "a body the SDK's models deserialize"
means here, and it fails on a misspelt field, a wrong nesting or a wrong enum value.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from typing import Any

import PureCloudPlatformClientV2 as sdk
import pytest
from genesys_cloud_simulator import SimulatedGenesysCloud
from genesys_cloud_simulator.org_config import ORG_TRAPS
from sim_helpers import SimFactory

OUTDATED = "outdated_sdk_version"


def assert_model_holds(model: Any, body: Any, where: str = "$") -> None:
    """Every key of `body` is an attribute of `model` (recursively); no enum fell back to OUTDATED."""
    if isinstance(body, list):
        assert isinstance(model, list) and len(model) == len(body), where
        for index, (m, b) in enumerate(zip(model, body, strict=True)):
            assert_model_holds(m, b, f"{where}[{index}]")
        return
    if not isinstance(body, dict):
        assert model != OUTDATED, f"{where}: {body!r} is not a value the SDK knows"
        return
    if not hasattr(model, "attribute_map"):  # an `object` or dict(str, X) field: kept as is
        assert model is not None, where
        return
    by_json = {json_name: attr for attr, json_name in model.attribute_map.items()}
    for key, value in body.items():
        assert key in by_json, f"{where}.{key}: no such field in {type(model).__name__}"
        assert_model_holds(getattr(model, by_json[key]), value, f"{where}.{key}")


def raw(sim: SimulatedGenesysCloud, token: str, path: str) -> Any:
    request = urllib.request.Request(sim.base_url + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


async def sdk_client(sim: SimulatedGenesysCloud) -> tuple[sdk.ApiClient, str]:
    client = sdk.ApiClient(host=sim.base_url)
    await asyncio.to_thread(client.get_client_credentials_token, sim.config.client_id, sim.config.client_secret)
    return client, client.access_token


def calls(client: sdk.ApiClient) -> dict[str, tuple[Callable[[], Any], str]]:
    """SDK method -> (call, the path it requested) for every read `audit` makes."""
    routing = sdk.RoutingApi(client)
    sta = sdk.SpeechTextAnalyticsApi(client)
    base = "/api/v2/speechandtextanalytics"
    return {
        "transcription": (routing.get_routing_settings_transcription, "/api/v2/routing/settings/transcription"),
        "queues": (lambda: routing.get_routing_queues(page_size=100), "/api/v2/routing/queues?pageSize=100"),
        "queue": (lambda: routing.get_routing_queue("q-fr"), "/api/v2/routing/queues/q-fr"),
        "sta_settings": (sta.get_speechandtextanalytics_settings, f"{base}/settings"),
        "programs": (lambda: sta.get_speechandtextanalytics_programs(page_size=100), f"{base}/programs?pageSize=100"),
        "mappings": (
            lambda: sta.get_speechandtextanalytics_programs_mappings(page_size=100),
            f"{base}/programs/mappings?pageSize=100",
        ),
        "engines": (
            lambda: sta.get_speechandtextanalytics_program_transcriptionengines("prog-fr"),
            f"{base}/programs/prog-fr/transcriptionengines",
        ),
        "processing": (
            lambda: sta.get_speechandtextanalytics_program_settings_processing("prog-legacy"),
            f"{base}/programs/prog-legacy/settings/processing",
        ),
        "dialects": (
            sta.get_speechandtextanalytics_programs_transcriptionengines_dialects,
            f"{base}/programs/transcriptionengines/dialects",
        ),
        "sentiment_dialects": (sta.get_speechandtextanalytics_sentiment_dialects, f"{base}/sentiment/dialects"),
        "policies": (
            lambda: sdk.RecordingApi(client).get_recording_mediaretentionpolicies(page_size=100, enabled=True),
            "/api/v2/recording/mediaretentionpolicies?pageSize=100&enabled=true",
        ),
        "flows": (
            lambda: sdk.ArchitectApi(client).get_flows(type=["inqueuecall", "securecall"], page_size=100),
            "/api/v2/flows?type=inqueuecall,securecall&pageSize=100",
        ),
        "trunks": (
            lambda: sdk.TelephonyProvidersEdgeApi(client).get_telephony_providers_edges_trunkbasesettings(
                recording_enabled=False, expand=["properties"], page_size=100
            ),
            "/api/v2/telephony/providers/edges/trunkbasesettings?recordingEnabled=false&expand=properties&pageSize=100",
        ),
    }


@pytest.mark.parametrize("traps", [(), tuple(ORG_TRAPS)], ids=["clean", "every-trap"])
async def test_every_audit_answer_deserializes_with_the_sdk_models(
    make_sim: SimFactory, traps: tuple[str, ...]
) -> None:
    sim = await make_sim(org_traps=traps)
    client, token = await sdk_client(sim)
    for name, (call, path) in calls(client).items():
        model = await asyncio.to_thread(call)
        body = await asyncio.to_thread(raw, sim, token, path)
        assert_model_holds(model, body, name)
    # The SDK really asked the simulator (not a cache): one request per read, with its own parameters.
    assert any("type=inqueuecall" in r and "securecall" in r for r in sim.org.requests), sim.org.requests
    assert any(
        r.startswith("/api/v2/telephony/providers/edges/trunkbasesettings?") and "recordingEnabled=false" in r
        for r in sim.org.requests
    )


async def test_the_trap_values_are_visible_through_the_sdk(make_sim: SimFactory) -> None:
    sim = await make_sim(org_traps=tuple(ORG_TRAPS))
    client, _token = await sdk_client(sim)
    c = calls(client)
    settings = await asyncio.to_thread(c["transcription"][0])
    assert settings.transcription == "EnabledQueueFlow"
    assert settings.pci_dss_redaction_enabled is True and settings.pii_redaction_enabled is True
    queues = {q.id: q for q in (await asyncio.to_thread(c["queues"][0])).entities}
    assert queues["q-legacy"].enable_transcription is False
    assert queues["q-billing"].enable_transcription is True
    assert queues["q-fr"].default_media_language == "fr-FR"
    engines = await asyncio.to_thread(c["engines"][0])
    assert [e.dialects for e in engines.transcription_engines] == [["en-US"]]
    assert (await asyncio.to_thread(c["processing"][0])).sentiment_analysis_enabled is False
    mappings = (await asyncio.to_thread(c["mappings"][0])).entities
    assert "q-legacy" not in {q.id for m in mappings for q in m.queues}
    flows = (await asyncio.to_thread(c["flows"][0])).entities
    assert "SECURECALL" in {f.type for f in flows}
    trunks = (await asyncio.to_thread(c["trunks"][0])).entities
    assert [t.trunk_type for t in trunks] == ["EXTERNAL"]


async def test_a_missing_permission_is_a_403_the_sdk_raises(make_sim: SimFactory) -> None:
    sim = await make_sim(forbidden_permissions=("speechAndTextAnalytics:program:view",))
    client, _token = await sdk_client(sim)
    with pytest.raises(sdk.rest.ApiException) as error:
        await asyncio.to_thread(calls(client)["mappings"][0])
    assert error.value.status == 403
    assert "speechAndTextAnalytics:program:view" in error.value.body


def test_the_model_check_fails_on_a_misspelt_field_or_an_unknown_enum() -> None:
    """Negative control: the check above can fail."""
    client = sdk.ApiClient()
    deserialize = client._ApiClient__deserialize
    misspelt = {"id": "q", "enableTranscriptions": True}
    with pytest.raises(AssertionError, match="enableTranscriptions"):
        assert_model_holds(deserialize(misspelt, "Queue"), misspelt)
    unknown_enum = {"entities": [{"id": "f", "type": "SECURE_CALL"}]}
    with pytest.raises(AssertionError, match="SECURE_CALL"):
        assert_model_holds(deserialize(unknown_enum, "FlowEntityListing"), unknown_enum)
