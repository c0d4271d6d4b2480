"""The stack without Docker: configuration rendering, and a live smoke test of the real binaries
(Debian's prometheus and prometheus-alertmanager, the receiver, a fake exporter)."""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stack import Stack, StackError, StackOptions
from stack.launcher import http_get, process_running
from stack.render import RenderError, render_alertmanager_config, render_prometheus_config

from .support import ALERTMANAGER_CONFIG, PROMETHEUS_DIR, REPO, require, run

FAKE_EXPORTER = Path(__file__).resolve().parent / "fake_exporter.py"
ADDRESSES = {"exporter": "127.0.0.1:1001", "alertmanager": "127.0.0.1:1002", "prometheus": "127.0.0.1:1003"}


# ---------------------------------------------------------------------------------------------------
# Rendering: the stack runs the shipped files, only addresses change
# ---------------------------------------------------------------------------------------------------
def test_rendered_prometheus_config_differs_only_in_addresses() -> None:
    original = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    rendered = render_prometheus_config((PROMETHEUS_DIR / "prometheus.yml").read_text(), ADDRESSES, PROMETHEUS_DIR)
    assert rendered["rule_files"] == [str(PROMETHEUS_DIR / p) for p in original["rule_files"]]
    assert rendered["scrape_configs"][0]["static_configs"][0]["targets"] == ["127.0.0.1:1001"]
    assert rendered["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:1002"]

    def strip(config: dict[str, Any]) -> dict[str, Any]:
        config = json.loads(json.dumps(config))
        config.pop("rule_files")
        for section in config["scrape_configs"] + config["alerting"]["alertmanagers"]:
            for static in section["static_configs"]:
                static.pop("targets")
        return config

    assert strip(rendered) == strip(original)


def test_rendering_spreads_replicas_over_targets() -> None:
    """Two exporters and a clustered Alertmanager pair (the HA test): each address becomes a target."""
    replicas = {**ADDRESSES, "exporter": ["127.0.0.1:1001", "127.0.0.1:1011"], "alertmanager": ("a:1", "b:2")}
    rendered = render_prometheus_config((PROMETHEUS_DIR / "prometheus.yml").read_text(), replicas, PROMETHEUS_DIR)
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in rendered["scrape_configs"]}
    assert jobs["genesys-sentiment"] == ["127.0.0.1:1001", "127.0.0.1:1011"]
    assert jobs["alertmanager"] == ["a:1", "b:2"]
    assert jobs["prometheus"] == ["127.0.0.1:1003"]
    assert rendered["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["a:1", "b:2"]


def test_rendering_refuses_a_target_the_stack_does_not_know() -> None:
    text = (PROMETHEUS_DIR / "prometheus.yml").read_text().replace("exporter:8729", "exporter-2:8729")
    with pytest.raises(RenderError, match="exporter-2:8729"):
        render_prometheus_config(text, ADDRESSES, PROMETHEUS_DIR)


def test_rendered_alertmanager_config_differs_only_in_the_pagerduty_url() -> None:
    text = ALERTMANAGER_CONFIG.read_text()
    rendered = yaml.safe_load(render_alertmanager_config(text, "http://127.0.0.1:1/v2/enqueue"))
    original = yaml.safe_load(text)
    assert rendered["global"].pop("pagerduty_url") == "http://127.0.0.1:1/v2/enqueue"
    original["global"].pop("pagerduty_url")
    assert rendered == original


# ---------------------------------------------------------------------------------------------------
# Live smoke test
# ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require("prometheus")
    require("prometheus-alertmanager")
    options = StackOptions(
        run_dir=tmp_path_factory.mktemp("stack"),
        exporter_command=[sys.executable, str(FAKE_EXPORTER)],
    )
    with Stack(options) as running:
        # Posted now so that their group_wait (1 s supervisors, 10 s platform) runs while Prometheus
        # waits for its first scrape (~5 s): the tests below only collect the notifications.
        post_alerts(running, EARLY_ALERTS)
        yield running


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def post_alerts(stack: Stack, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"{stack.alertmanager_url}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def alert(alertname: str, job: str, **labels: str) -> dict[str, Any]:
    annotations = {
        "summary": f"{alertname} for {labels.get('agent_id', job)}",
        "description": "smoke test",
        "rolling_average": "-0.77",
        "below_for": "2m 3s",
        "runbook_url": "https://example.org/runbook.md#x",
        "dashboard_url": "http://localhost:3000/d/genesys-live-sentiment/live-agent-sentiment",
    }
    return {"labels": {"alertname": alertname, "job": job, **labels}, "annotations": annotations}


EARLY_ALERTS = [
    alert(
        "AgentSentimentSustainedNegative",
        "smoke-page",
        agent_id="agent-smoke",
        queue_id="q-billing",
        severity="critical",
        team="supervisors",
        layer="sentiment",
    ),
    alert("GenesysStreamDown", "smoke-platform", severity="critical", team="platform", layer="platform"),
]


def test_prometheus_scrapes_the_exporter_and_evaluates_the_rules(stack: Stack) -> None:
    wait_for(lambda: stack.query('up{job="genesys-sentiment"} == 1'), 20, "the exporter target to be up")

    def evaluated_groups() -> dict[str, Any]:
        status, body = http_get(f"{stack.prometheus_url}/api/v1/rules")
        groups = json.loads(body)["data"]["groups"] if status == 200 else []
        done = [g for g in groups if g["lastEvaluation"] > "2000"]
        return {g["name"]: g for g in done} if len(done) == 4 and len(done) == len(groups) else {}

    groups = wait_for(evaluated_groups, 20, "every rule group to be evaluated")
    assert set(groups) == {
        "genesys-sentiment-recording",
        "genesys-sentiment-agents",
        "genesys-sentiment-queues",
        "genesys-sentiment-platform",
    }
    for group in groups.values():
        assert group["interval"] == 1
        for rule in group["rules"]:
            assert rule["health"] in {"ok", "unknown"}, (rule["name"], rule.get("lastError"))
    (threshold,) = stack.query("global:genesys_sentiment_alert_threshold:value")
    assert float(threshold["value"][1]) == -0.5
    agents = wait_for(
        lambda: stack.query("queue_agent:genesys_agent_sentiment_rolling_average_full_window:max"),
        10,
        "the recording rules to see the agents",
    )
    assert {a["metric"]["agent_id"] for a in agents} == {"agent-calm", "agent-sour"}
    assert all("instance" not in a["metric"] for a in agents)
    # Before the first scrape, absent(up) makes the (never notified) inhibition source fire: it must
    # clear once the healthy fake exporter is scraped.
    wait_for(
        lambda: not stack.query('ALERTS{alertname="GenesysSentimentDataUnavailable", alertstate="firing"}'),
        10,
        "GenesysSentimentDataUnavailable to clear",
    )


def test_prometheus_sends_to_the_stack_alertmanager(stack: Stack) -> None:
    def active() -> list[str]:
        status, body = http_get(f"{stack.prometheus_url}/api/v1/alertmanagers")
        return [a["url"] for a in json.loads(body)["data"]["activeAlertmanagers"]] if status == 200 else []

    urls = wait_for(active, 10, "Prometheus to discover Alertmanager")
    assert any(stack.alertmanager_url in url for url in urls), urls


def test_critical_sentiment_alert_reaches_queue_slack_and_pagerduty(stack: Stack) -> None:

    def smoke(kind: str) -> Callable[[dict[str, Any]], bool]:
        return lambda m: m["kind"] == kind and "agent-smoke" in json.dumps(m["body"])

    slack = stack.wait_for_receiver(smoke("slack"), timeout=15)
    assert slack["channel"] == "cx-billing-supervisors" and slack["status"] == 200
    text = slack["body"]["attachments"][0]["text"]
    assert "*agent-smoke* in *q-billing*" in text and "*-0.77*" in text and "*2m 3s*" in text
    assert "|Agent dashboard>" in text and "|Runbook>" in text
    page = stack.wait_for_receiver(smoke("pagerduty"), timeout=15)
    assert page["status"] == 202
    assert page["body"]["routing_key"] == "demo-contact-centre-routing-key"
    assert page["body"]["event_action"] == "trigger"
    assert page["body"]["payload"]["severity"] == "critical"
    assert len(page["body"]["payload"]["summary"]) <= 1024


def test_platform_alert_reaches_oncall(stack: Stack) -> None:
    slack = stack.wait_for_receiver(
        lambda m: m["kind"] == "slack" and "smoke-platform" in json.dumps(m["body"]), timeout=20
    )
    assert slack["channel"] == "genesys-sentiment-oncall"
    assert "`GenesysStreamDown`" in slack["body"]["attachments"][0]["text"]
    page = stack.wait_for_receiver(
        lambda m: m["kind"] == "pagerduty" and "GenesysStreamDown" in json.dumps(m["body"]), timeout=20
    )
    assert page["body"]["routing_key"] == "demo-platform-routing-key"


def test_unavailable_data_mutes_sentiment_alerts_of_the_same_job_only(stack: Stack) -> None:
    post_alerts(
        stack,
        [alert("GenesysSentimentDataUnavailable", "smoke-blind", severity="none", team="platform", layer="platform")],
    )
    post_alerts(
        stack,
        [
            alert(
                "AgentSentimentSustainedNegative",
                "smoke-blind",
                agent_id="agent-muted",
                queue_id="q-support",
                severity="warning",
                team="supervisors",
                layer="sentiment",
            ),
            alert(
                "AgentSentimentSustainedNegative",
                "smoke-seeing",
                agent_id="agent-heard",
                queue_id="q-support",
                severity="warning",
                team="supervisors",
                layer="sentiment",
            ),
        ],
    )

    def state(agent: str) -> dict[str, Any]:
        for entry in stack.alertmanager_alerts():
            if entry["labels"].get("agent_id") == agent:
                status: dict[str, Any] = entry["status"]
                return status
        return {}

    muted = wait_for(lambda: state("agent-muted"), 5, "the muted alert in Alertmanager")
    assert muted["state"] == "suppressed" and muted["inhibitedBy"], muted
    heard = stack.wait_for_receiver(
        lambda m: m["kind"] == "slack" and "agent-heard" in json.dumps(m["body"]), timeout=15
    )
    assert heard["channel"] == "cx-support-supervisors"
    time.sleep(1)
    assert not [m for m in stack.receiver_messages() if "agent-muted" in json.dumps(m["body"])]
    assert not [m for m in stack.receiver_messages() if "GenesysSentimentDataUnavailable" in json.dumps(m["body"])]


def test_cli_up_detach_status_down(tmp_path: Path) -> None:
    require("prometheus")
    require("prometheus-alertmanager")
    base = [sys.executable, "-m", "stack"]
    env_run_dir = ["--run-dir", str(tmp_path)]
    up = run(
        [
            *base,
            "up",
            "--detach",
            *env_run_dir,
            "--receiver-port",
            "0",
            "--alertmanager-port",
            "0",
            "--exporter-port",
            "0",
            "--prometheus-port",
            "0",
            "--exporter-command",
            f"{sys.executable} {FAKE_EXPORTER}",
        ],
        cwd=REPO,
        timeout=90,
    )
    state = Stack.read_state(tmp_path)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert state and set(state["processes"]) == {"receiver", "alertmanager", "exporter", "prometheus"}
        status = run([*base, "status", *env_run_dir], cwd=REPO)
        assert status.returncode == 0, status.stdout + status.stderr
        # Every page `up` tells a person to open works on Debian's builds (no /alerts 404).
        printed = re.findall(r"https?://[^/\s]+/\S+", up.stdout)  # the pages, not the bare addresses
        assert any(url.endswith("/classic/alerts") for url in printed), up.stdout
        assert "no web UI" in up.stdout, "say that Debian's Alertmanager has no UI"
        for url in printed:
            assert http_get(url.rstrip(")"))[0] == 200, url
    finally:
        down = run([*base, "down", *env_run_dir], cwd=REPO, timeout=60)
    assert down.returncode == 0, down.stdout + down.stderr
    for proc in (state or {}).get("processes", {}).values():
        assert not process_running(proc["pid"]), proc
    assert run([*base, "status", *env_run_dir], cwd=REPO).returncode == 1


def test_one_stack_per_run_directory(stack: Stack) -> None:
    second = Stack(StackOptions(run_dir=stack.run_dir, exporter_command=[sys.executable, str(FAKE_EXPORTER)]))
    with pytest.raises(StackError, match="another stack"):
        second.start()
    assert not second.components, "nothing of the second stack was started"


def test_demo_exporter_links_alerts_to_itself_and_to_genesys_cloud(tmp_path: Path) -> None:
    """`python -m stack up` runs the demo with --web.external-url (its own address) and --ui-url, so the
    payloads' call link is served (/-/conversation/{agent} redirects into the Genesys Cloud web app)
    and the agent link points at the web app. Prometheus joins both into the alerts' annotations."""
    require("prometheus")
    require("prometheus-alertmanager")
    options = StackOptions(run_dir=tmp_path, seed=7, ui_url="https://apps.mypurecloud.ie")
    with Stack(options) as stack:
        argv = stack.components["exporter"].argv
        assert argv[argv.index("--web.external-url") + 1] == stack.exporter_url
        web = wait_for(lambda: stack.query("job:genesys_exporter_web:info"), 30, "the exporter's external URL")
        assert web[0]["metric"]["external_url"] == stack.exporter_url
        ui = wait_for(lambda: stack.query("job:genesys_exporter_ui:info"), 30, "the Genesys Cloud web app URL")
        assert ui[0]["metric"]["url"] == "https://apps.mypurecloud.ie"

        def redirect() -> str | None:
            request = urllib.request.Request(f"{stack.exporter_url}/-/conversation/agent-sour")
            opener = urllib.request.build_opener(NoRedirect)
            try:
                opener.open(request, timeout=5)
            except urllib.error.HTTPError as err:
                return str(err.headers.get("Location")) if err.code == 302 else None
            return None

        location = wait_for(redirect, 30, "agent-sour's call to be linkable")
        assert location.startswith("https://apps.mypurecloud.ie/directory/#/engage/admin/interactions/"), location


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_free_ports_are_distinct_bindable_and_outside_the_ephemeral_range() -> None:
    # A port from the ephemeral range can be taken by any outgoing connection before its server binds
    # it (the HA test lost a Prometheus that way); below the range only a server can take it.
    import socket

    from stack.launcher import ephemeral_ports, free_ports

    low, _high = ephemeral_ports()
    ports = free_ports(20)
    assert len(set(ports)) == 20
    assert all(port < low for port in ports), ports
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))
