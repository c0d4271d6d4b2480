"""Agent and queue names (names.py) and the privacy modes (identity.py), pure and against the simulator."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import httpx
import pytest
from genesys_cloud_simulator import SimulatorConfig
from prometheus_client.parser import text_string_to_metric_families

from genesys_sentiment_exporter.cli import main
from genesys_sentiment_exporter.config import Settings
from genesys_sentiment_exporter.identity import AgentIdentity, read_key
from genesys_sentiment_exporter.names import NameBudget, NameCache
from tests.live_helpers import say, wait_for
from tests.test_notifications_live import connect_call, live, move, scrape

KEY = b"0123456789abcdef-not-a-real-key"


# -- identity ---------------------------------------------------------------------------------------
def test_pseudonym_is_a_keyed_hash_stable_across_instances_and_keys_differ() -> None:
    first, again = AgentIdentity("pseudonymous", KEY), AgentIdentity("pseudonymous", KEY)
    other = AgentIdentity("pseudonymous", KEY + b"2")
    user = "5d3f1c2e-aaaa-bbbb-cccc-1234567890ab"
    pseudonym = first.label(user)
    assert pseudonym == again.label(user), "a restart (same key) must give the same pseudonym"
    assert pseudonym != other.label(user)
    assert pseudonym != first.label(user.replace("a", "b"))
    expected = hmac.new(KEY, user.encode(), hashlib.sha256).hexdigest()[:20]
    assert pseudonym == "p-" + expected  # whoever holds the key can re-identify; nobody else
    assert user not in pseudonym and "5d3f" not in pseudonym
    assert "0123456789abcdef" not in repr(first)
    assert AgentIdentity("plain").label(user) == user


def test_key_file_must_be_long_enough_and_readable(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("tiny\n")
    with pytest.raises(ValueError, match="at least 16 bytes") as err:
        read_key(short)
    assert "tiny" not in str(err.value)
    with pytest.raises(ValueError, match="cannot read"):
        read_key(tmp_path / "absent")
    good = tmp_path / "key"
    good.write_bytes(KEY + b"\n")
    assert read_key(good) == KEY


def test_pseudonymous_without_key_file_is_a_one_line_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        ["run", "--region", "eu-west-1", "--client-id", "x", "--queue-id", "q", "--agent-identity", "pseudonymous"]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert len(err.strip().splitlines()) == 1
    assert "--agent-identity-key-file" in err


def test_ui_url_defaults_to_the_regions_web_app() -> None:
    assert Settings(region="eu-west-1").resolved_ui_url() == "https://apps.mypurecloud.ie"
    assert Settings(region="ap-northeast-2").resolved_ui_url() == "https://apps.apne2.pure.cloud"
    assert Settings().resolved_ui_url() == ""
    with pytest.raises(ValueError, match="https base URL"):
        Settings(ui_url="http://apps.example")


# -- name cache ---------------------------------------------------------------------------------------
def test_name_cache_asks_once_remembers_expires_and_forgets_unused() -> None:
    cache = NameCache(ttl=100.0)
    assert cache.wanted("agent", ["a1", "a2"], now=0.0) == ["a1", "a2"]
    assert cache.wanted("agent", ["a1", "a2"], now=1.0) == [], "pending look-ups are not repeated"
    cache.resolved("agent", "a1", "Jane Doe", now=2.0)
    cache.resolved("agent", "a2", None, now=2.0)  # 404: no name, not asked again before the ttl
    assert cache.name("agent", "a1") == "Jane Doe" and cache.name("agent", "a2") == ""
    assert cache.wanted("agent", ["a1", "a2"], now=50.0) == []
    assert cache.wanted("agent", ["a1", "a2"], now=103.0) == ["a1", "a2"]
    cache.resolved("agent", "a1", "Jane Doe", now=103.0)
    cache.forget_unused("agent", {"a1"})
    assert ("agent", "a1") in cache.entries
    assert ("agent", "a2") in cache.entries, "a pending look-up is kept until it answers"
    cache.resolved("agent", "a2", None, now=104.0)
    cache.forget_unused("agent", {"a1"})
    assert ("agent", "a2") not in cache.entries
    cache.denied.add("queue")
    assert cache.wanted("queue", ["q1"], now=200.0) == []


def test_name_cache_is_bounded() -> None:
    cache = NameCache(max_entries=3)
    assert len(cache.wanted("agent", [f"a{i}" for i in range(10)], now=0.0)) == 3


def test_name_budget_is_a_rate_not_a_burst() -> None:
    budget = NameBudget(per_minute=60.0)
    assert budget.wait(0.0) == 0.0
    assert budget.wait(0.0) == pytest.approx(1.0)
    assert budget.wait(1.0) == 0.0


# -- against the simulator ------------------------------------------------------------------------
def _families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


async def test_agent_and_queue_names_are_exported_by_default_with_the_ui_url() -> None:
    async with live(queue_id=["q-billing"], ui_url="https://apps.mypurecloud.ie") as (sim, exporter, _src):
        await connect_call(sim, "c1", "agent-sour", "q-billing")
        names = exporter.names
        assert names is not None
        await wait_for(lambda: names.cache.name("queue", "q-billing") == "Billing", what="queue name")
        await wait_for(lambda: names.cache.name("agent", "agent-sour") != "", what="agent name")
        text = await scrape(exporter)
        assert 'genesys_agent_info{agent_id="agent-sour",agent_name="Agent agent-sour"} 1.0' in text
        assert 'genesys_queue_info{queue_id="q-billing",queue_name="Billing"} 1.0' in text
        assert 'genesys_exporter_ui_info{url="https://apps.mypurecloud.ie"} 1.0' in text
        assert 'genesys_exporter_agent_identity_info{mode="plain"} 1.0' in text
        assert 'genesys_name_lookups_total{kind="agent",result="ok"} 1.0' in text
        # Names go through the source's REST client: they count in its budget and its metric.
        assert exporter.names is not None and exporter.names.rest is exporter.source.rest  # type: ignore[attr-defined]


async def test_forbidden_names_stop_after_one_403_and_the_alerts_keep_ids() -> None:
    config = SimulatorConfig(forbidden_names=("users", "queues"))
    async with live(config, queue_id=["q1"]) as (sim, exporter, _src):
        await connect_call(sim, "c1", "a1")
        await connect_call(sim, "c2", "a2")
        say(sim, "c1", -0.4)
        names = exporter.names
        assert names is not None
        await wait_for(lambda: {"agent", "queue"} <= names.cache.denied, what="403 noticed")
        text = await scrape(exporter)
        assert "genesys_agent_info{" not in text and "genesys_queue_info{" not in text
        assert 'genesys_name_lookups_total{kind="agent",result="forbidden"} 1.0' in text
        assert 'genesys_name_lookups_total{kind="queue",result="forbidden"} 1.0' in text
        assert 'genesys_agent_sentiment_score{agent_id="a1",queue_id="q1",party="customer"} -0.4' in text


async def test_pseudonymous_mode_exports_pseudonyms_and_no_agent_names(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY)
    async with live(queue_id=["q1"], agent_identity="pseudonymous", agent_identity_key_file=key_file) as (
        sim,
        exporter,
        _src,
    ):
        await connect_call(sim, "c1", "a1")
        say(sim, "c1", -0.6)
        await wait_for(lambda: exporter.ingest.messages["reading"] == 1, what="reading")
        names = exporter.names
        assert names is not None
        await wait_for(lambda: names.cache.name("queue", "q1") != "", what="queue name")
        text = await scrape(exporter)
        pseudonym = AgentIdentity("pseudonymous", KEY).label("a1")
        assert f'genesys_agent_sentiment_score{{agent_id="{pseudonym}",queue_id="q1",party="customer"}} -0.6' in text
        assert 'agent_id="a1"' not in text
        assert "genesys_agent_info" not in text, "a name next to a pseudonym would undo it"
        assert 'genesys_queue_info{queue_id="q1",queue_name="Q1"} 1.0' in text
        assert 'genesys_exporter_agent_identity_info{mode="pseudonymous"} 1.0' in text
        assert ("agent", "a1") not in names.cache.entries, "agent names are not even fetched"


async def test_none_mode_exports_per_queue_aggregates_only() -> None:
    async with live(queue_id=["q1"], agent_identity="none", window_size=2) as (sim, exporter, _src):
        await connect_call(sim, "c1", "a1")
        await connect_call(sim, "c2", "a2")
        await connect_call(sim, "c3", "a3")
        for conv, _agent, values in (("c1", "a1", (-0.8, -0.6)), ("c2", "a2", (0.2, 0.4)), ("c3", "a3", (0.0, 0.0))):
            for value in values:
                say(sim, conv, value)
        await wait_for(lambda: exporter.ingest.messages["reading"] == 6, what="readings")
        sim.notifications.publish_call(move("c4", "a4", "connected"))
        await wait_for(lambda: len(exporter.tracker.agents) == 4, what="fourth call")
        text = await scrape(exporter)
        for user in ("a1", "a2", "a3", "a4"):
            assert f'"{user}"' not in text
        assert "agent_id=" not in text and "genesys_agent_" not in text
        got = _families(text)
        one = {name: values[0][1] for name, values in got.items() if name.startswith("genesys_queue_")}
        assert one["genesys_queue_conversations_active"] == 4
        assert one["genesys_queue_conversations_scored"] == 3
        assert one["genesys_queue_sentiment_full_windows"] == 3
        assert one["genesys_queue_sentiment_zero_windows"] == 1
        assert one["genesys_queue_sentiment_rolling_average_min"] == pytest.approx(-0.7)
        assert 'genesys_exporter_agent_identity_info{mode="none"} 1.0' in text
        assert "genesys_agent_info" not in text


async def test_conversation_link_redirects_to_the_live_call_in_genesys_cloud(tmp_path: Path) -> None:
    ui = "https://apps.mypurecloud.ie"
    async with live(queue_id=["q1"], ui_url=ui, web_external_url="https://sentiment.example") as (
        sim,
        exporter,
        _src,
    ):
        await connect_call(sim, "c1", "a1")
        await wait_for(lambda: "a1" in exporter.tracker.agents, what="a1 tracked")
        async with httpx.AsyncClient(base_url=exporter.web.url) as http:
            found = await http.get("/-/conversation/a1")
            missing = await http.get("/-/conversation/nobody")
        assert found.status_code == 302
        assert found.headers["Location"] == f"{ui}/directory/#/engage/admin/interactions/c1"
        assert missing.status_code == 404
        text = await scrape(exporter)
        assert 'genesys_exporter_web_info{external_url="https://sentiment.example"} 1.0' in text

    key_file = tmp_path / "key"
    key_file.write_bytes(KEY)
    async with live(queue_id=["q1"], ui_url=ui, agent_identity="pseudonymous", agent_identity_key_file=key_file) as (
        sim,
        exporter,
        _src,
    ):
        await connect_call(sim, "c9", "a1")
        await wait_for(lambda: "a1" in exporter.tracker.agents, what="a1 tracked")
        async with httpx.AsyncClient(base_url=exporter.web.url) as http:
            by_pseudonym = await http.get(f"/-/conversation/{AgentIdentity('pseudonymous', KEY).label('a1')}")
            by_id = await http.get("/-/conversation/a1")
        assert by_pseudonym.status_code == 302
        assert by_pseudonym.headers["Location"].endswith("/interactions/c9")
        assert by_id.status_code == 404, "the real id is not an address in pseudonymous mode"
