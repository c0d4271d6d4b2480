"""amtool on alertmanager.yml: config, routes, inhibition labels, and the message templates."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from genesys_sentiment_exporter import alertmanager_routes
from stack.render import PAGERDUTY_SECRET_KEYS, SECRETS_DIR, SLACK_SECRET_CHANNELS

from .support import ALERTMANAGER_CONFIG, ALERTMANAGER_DIR, alerts_by_name, load_yaml, require, run, unit_test_cases

PAGERDUTY_SUMMARY_LIMIT = 1024


def amtool(*args: str) -> Any:
    return run([require("amtool"), *args], cwd=ALERTMANAGER_DIR)


def config() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(ALERTMANAGER_CONFIG)
    return loaded


def test_amtool_check_config() -> None:
    result = amtool("check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


SENTIMENT = {
    "alertname": "AgentSentimentSevereNegative",
    "team": "supervisors",
    "severity": "critical",
    "layer": "sentiment",
    "job": "genesys-sentiment",
}
QUEUE_WARNING = {
    "alertname": "QueueSentimentStuckAtZero",
    "team": "supervisors",
    "severity": "warning",
    "layer": "sentiment",
    "job": "genesys-sentiment",
}
PLATFORM = {"team": "platform", "layer": "platform", "job": "genesys-sentiment"}

SOUR = {**SENTIMENT, "alertname": "AgentSentimentSustainedNegative", "severity": "warning"}

ROUTE_CASES = [
    pytest.param(
        "supervisors-billing",
        {**SOUR, "queue_id": "q-billing", "agent_id": "agent-sour"},
        id="sour-call-to-the-queues-slack-only-not-pagerduty",
    ),
    pytest.param(
        "supervisors-billing",
        {**SOUR, "queue_id": "9f1c0000-guid", "queue_name": "Billing EMEA", "agent_id": "a1"},
        id="queue-routed-by-its-name-from-queues-yml",
    ),
    pytest.param(
        "contact-centre-pagerduty,supervisors-support",
        {**SENTIMENT, "alertname": "QueueSentimentSeveralAgentsNegative", "queue_id": "q-support"},
        id="several-sour-agents-page",
    ),
    pytest.param(
        "heartbeat",
        {"alertname": "GenesysSentimentWatchdog", "severity": "none", "team": "platform", "layer": "platform"},
        id="watchdog-to-heartbeat",
    ),
    pytest.param(
        "contact-centre-pagerduty,supervisors-billing",
        {**SENTIMENT, "queue_id": "q-billing", "agent_id": "agent-sour"},
        id="sentiment-q-billing-to-billing-supervisors-slack-and-pagerduty",
    ),
    pytest.param(
        "contact-centre-pagerduty,supervisors-support",
        {**SENTIMENT, "queue_id": "q-support", "agent_id": "agent-flap"},
        id="sentiment-q-support-to-support-supervisors-slack-and-pagerduty",
    ),
    pytest.param(
        "contact-centre-pagerduty,supervisors-default",
        {**SENTIMENT, "queue_id": "q-payments", "agent_id": "agent-masked"},
        id="sentiment-other-queue-to-default-supervisors-slack-and-pagerduty",
    ),
    pytest.param(
        "supervisors-billing", {**QUEUE_WARNING, "queue_id": "q-billing"}, id="warning-q-billing-to-slack-only"
    ),
    pytest.param(
        "supervisors-support", {**QUEUE_WARNING, "queue_id": "q-support"}, id="warning-q-support-to-slack-only"
    ),
    pytest.param(
        "supervisors-default",
        {**QUEUE_WARNING, "alertname": "QueueCallsEndedWithoutSentiment", "queue_id": "q-legacy"},
        id="warning-other-queue-to-default-supervisors-slack-only",
    ),
    pytest.param(
        "supervisors-default",
        {**QUEUE_WARNING, "alertname": "AgentSentimentReadingsStopped", "queue_id": "q-fr", "agent_id": "agent-fr-1"},
        id="masking-alert-to-that-queues-supervisors",
    ),
    pytest.param(
        "oncall-pager",
        {**PLATFORM, "alertname": "GenesysStreamDown", "severity": "critical"},
        id="stream-down-to-pager",
    ),
    pytest.param(
        "oncall-pager",
        {**PLATFORM, "alertname": "GenesysOAuthTokenNotRefreshed", "severity": "critical", "instance": "e:8729"},
        id="token-to-oncall-pager",
    ),
    pytest.param(
        "oncall-pager",
        {**PLATFORM, "alertname": "GenesysSentimentExporterDown", "severity": "critical"},
        id="exporter-down-to-oncall-pager",
    ),
    pytest.param(
        "oncall-pager",
        {**PLATFORM, "alertname": "GenesysSentimentFieldsMissing", "severity": "critical", "layer": "sentiment"},
        id="missing-fields-to-oncall-pager",
    ),
    pytest.param(
        "oncall-slack",
        {**PLATFORM, "alertname": "GenesysStreamReconnecting", "severity": "warning"},
        id="platform-warning-to-oncall-slack-only",
    ),
    pytest.param(
        "oncall-slack",
        {**PLATFORM, "alertname": "AudioHookConnectionsRefused", "severity": "warning", "reason": "bad_signature"},
        id="audiohook-refusals-to-oncall-slack-not-pagerduty",
    ),
    pytest.param(
        "oncall-slack",
        {**PLATFORM, "alertname": "AudioHookAudioDropped", "severity": "warning", "reason": "overload"},
        id="audiohook-dropped-audio-to-oncall-slack-not-pagerduty",
    ),
    pytest.param(
        "blackhole",
        {**PLATFORM, "alertname": "GenesysSentimentDataUnavailable", "severity": "none"},
        id="inhibition-source-never-notified",
    ),
    pytest.param("oncall-slack", {"alertname": "SomethingNew", "severity": "warning"}, id="unlabelled-to-oncall"),
]


@pytest.mark.parametrize(("receivers", "labels"), ROUTE_CASES)
def test_route(receivers: str, labels: dict[str, str]) -> None:
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={receivers}",
        *(f"{k}={v}" for k, v in labels.items()),
    )
    assert result.returncode == 0, f"routed to {result.stdout.strip()!r}, expected {receivers!r}\n{result.stderr}"


def test_every_alert_of_the_rules_reaches_a_receiver() -> None:
    for name, rule in alerts_by_name().items():
        labels = {"alertname": name, "job": "genesys-sentiment", **rule["labels"]}
        if rule["labels"]["team"] == "supervisors":
            labels["queue_id"] = "q-billing"
        result = amtool(
            "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *(f"{k}={v}" for k, v in labels.items())
        )
        got = set(result.stdout.strip().split(","))
        expected = {
            ("supervisors", "warning"): {"supervisors-billing"},
            ("supervisors", "info"): {"supervisors-billing"},  # post-call coaching: Slack, never PagerDuty
            ("supervisors", "critical"): {"contact-centre-pagerduty", "supervisors-billing"},
            ("platform", "critical"): {"oncall-pager"},
            ("platform", "warning"): {"oncall-slack"},
            ("platform", "none"): {"blackhole"},
        }[(rule["labels"]["team"], rule["labels"]["severity"])]
        if name == "GenesysSentimentWatchdog":
            expected = {"heartbeat"}
        assert got == expected, f"{name}: {got}"


def _receivers() -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in config()["receivers"]}


def test_secrets_only_through_files() -> None:
    text = ALERTMANAGER_CONFIG.read_text()
    assert not re.search(r"hooks\.slack\.com|^\s*(api_url|slack_api_url|routing_key|service_key):", text, re.M)
    files: set[str] = set()
    for receiver in _receivers().values():
        for slack in receiver.get("slack_configs", []):
            assert set(slack) & {"api_url", "api_url_file"} == {"api_url_file"}, receiver["name"]
            files.add(slack["api_url_file"])
        for pd in receiver.get("pagerduty_configs", []):
            assert set(pd) & {"routing_key", "routing_key_file", "service_key", "service_key_file"} == {
                "routing_key_file"
            }, f"{receiver['name']}: Events API v2 needs routing_key_file"
            files.add(pd["routing_key_file"])
    expected = {f"{SECRETS_DIR}/{name}" for name in (*SLACK_SECRET_CHANNELS, *PAGERDUTY_SECRET_KEYS)}
    assert files == expected, "alertmanager.yml secret files and stack/render.py demo secrets differ"


def test_slack_sends_resolved_and_pagerduty_uses_events_v2() -> None:
    for receiver in _receivers().values():
        for slack in receiver.get("slack_configs", []):
            # The heartbeat is a ping, not a message: "resolved" would mean nothing to the service.
            assert slack.get("send_resolved") is (receiver["name"] != "heartbeat"), receiver["name"]
    assert config()["global"]["pagerduty_url"].endswith("/v2/enqueue")


def test_inhibition_equal_labels_really_match() -> None:
    """Every `equal` label is on every source and target alert, as the unit tests pin them down."""
    alerts = alerts_by_name()
    observed: dict[str, list[dict[str, str]]] = {}
    for case in unit_test_cases():
        for expected in case.get("exp_alerts") or []:
            observed.setdefault(case["alertname"], []).append(
                {"alertname": case["alertname"], **expected["exp_labels"]}
            )

    def matches(matchers: list[str], labels: dict[str, str]) -> bool:
        for matcher in matchers:
            name, op, value = re.fullmatch(r'(\w+)(=~|!~|!=|=)"?(.*?)"?', matcher).groups()  # type: ignore[union-attr]
            actual = labels.get(name, "")
            ok = {
                "=": actual == value,
                "!=": actual != value,
                "=~": re.fullmatch(value, actual) is not None,
                "!~": re.fullmatch(value, actual) is None,
            }[op]
            if not ok:
                return False
        return True

    rules_ = config()["inhibit_rules"]
    assert rules_, "no inhibition rule"
    for rule in rules_:
        labelled = {name: {"alertname": name, **alert["labels"]} for name, alert in alerts.items()}
        sources = [n for n, labels in labelled.items() if matches(rule["source_matchers"], labels)]
        targets = [n for n, labels in labelled.items() if matches(rule["target_matchers"], labels)]
        assert sources and targets, rule
        assert not set(sources) & set(targets), "an alert would inhibit itself"
        for name in sources + targets:
            assert observed.get(name), f"{name}: no firing unit test to check its labels"
            for labels in observed[name]:
                missing = [label for label in rule["equal"] if label not in labels]
                assert not missing, f"{name} fires without {missing}: the inhibition would never match it"
    # What the document asks: a dead stream mutes the agent alerts and what it causes.
    (rule,) = rules_
    muted = {n for n, a in alerts.items() if matches(rule["target_matchers"], {"alertname": n, **a["labels"]})}
    assert {
        "AgentSentimentSustainedNegative",
        "AgentSentimentReadingsStopped",
        "QueueCallsEndedWithoutSentiment",
    } <= muted
    assert {"GenesysStreamDown", "GenesysSentimentExporterDown", "GenesysStreamSilent"} <= set(
        n for n in alerts if matches(rule["source_matchers"], {"alertname": n, **alerts[n]["labels"]})
    )


# ---------------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------------
def _alert(
    agent: str,
    queue: str,
    *,
    status: str = "firing",
    summary: str | None = None,
    alertname: str = "AgentSentimentSustainedNegative",
    severity: str = "warning",
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": alertname,
            "agent_id": agent,
            "queue_id": queue,
            "job": "genesys-sentiment",
            "severity": severity,
            "team": "supervisors",
            "layer": "sentiment",
        },
        "annotations": {
            "summary": summary or f"Agent {agent} in {queue} has a sustained negative sentiment",
            "description": "Rolling average -0.72 (last 5 readings) is below -0.5 and has been for 35s.",
            "rolling_average": "-0.72",
            "below_for": "35s",
            "runbook_url": "https://example.org/runbook.md#agentsentimentsustainednegative",
            "dashboard_url": f"http://localhost:3000/d/genesys-live-sentiment/live-agent-sentiment?var-queue={queue}&var-agent={agent}",
        },
        "startsAt": "2026-05-01T10:00:00Z",
        "endsAt": "2026-05-01T10:05:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": agent,
    }


def _render(tmp_path: Path, template: str, alerts: list[dict[str, Any]], arg: str = ".") -> str:
    firing = [a for a in alerts if a["status"] == "firing"]
    common = {k: v for k, v in alerts[0]["labels"].items() if all(a["labels"].get(k) == v for a in alerts)}
    data = {
        "receiver": "supervisors-billing",
        "status": "firing" if firing else "resolved",
        "alerts": alerts,
        "groupLabels": {k: common[k] for k in ("alertname", "queue_id") if k in common},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
    }
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data))
    result = amtool(
        "template",
        "render",
        f"--template.glob={ALERTMANAGER_DIR / 'templates' / '*.tmpl'}",
        f"--template.data={path}",
        f'--template.text={{{{ template "{template}" {arg} }}}}',
    )
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


def test_slack_message_names_agent_queue_average_duration_and_links(tmp_path: Path) -> None:
    alerts = [_alert("agent-sour", "q-billing"), _alert("agent-ok", "q-billing", status="resolved")]
    title = _render(tmp_path, "genesys.slack.title", alerts)
    text = _render(tmp_path, "genesys.slack.text", alerts)
    assert "[FIRING:1]" in title and "agent-sour" in title and "q-billing" in title
    assert "*agent-sour* in *q-billing*" in text
    assert "rolling average *-0.72*" in text and "for *35s*" in text
    assert "|Agent dashboard>" in text and "var-agent=agent-sour" in text and "|Runbook>" in text
    assert "`AgentSentimentSustainedNegative`" in text, "the alert name, to find the runbook or silence it"
    assert "agent-ok" in text and "resolved" in text
    assert _render(tmp_path, "genesys.slack.color", alerts) == "warning"


def test_slack_message_lists_at_most_ten_alerts(tmp_path: Path) -> None:
    alerts = [_alert(f"agent-{i:02d}", "q-billing") for i in range(25)]
    text = _render(tmp_path, "genesys.slack.text", alerts)
    assert text.count(":red_circle:") == 10
    assert "25 firing in total" in text
    assert "AgentSentimentSustainedNegative in q-billing: 25 firing" in _render(tmp_path, "genesys.slack.title", alerts)


def test_pagerduty_summary_fits_the_events_v2_limit(tmp_path: Path) -> None:
    huge = "x" * 5000
    alerts = [_alert(f"agent-{i:03d}", "q-billing", summary=huge, severity="critical") for i in range(200)]
    summary = _render(tmp_path, "genesys.pagerduty.description", alerts)
    assert 0 < len(summary) <= PAGERDUTY_SUMMARY_LIMIT, len(summary)
    assert summary.startswith("[FIRING:200]")
    one = _render(tmp_path, "genesys.pagerduty.description", [_alert("agent-sour", "q-billing")])
    assert one == "[FIRING:1] Agent agent-sour in q-billing has a sustained negative sentiment (avg -0.72, 35s)"
    assert _render(tmp_path, "genesys.pagerduty.severity", alerts) == "critical"


# ---------------------------------------------------------------------------------------------------
# Per-queue routing from alertmanager/queues.yml, names and links in the messages
# ---------------------------------------------------------------------------------------------------
QUEUES_FILE = ALERTMANAGER_DIR / "queues.yml"


def test_queue_routes_are_generated_from_queues_yml() -> None:
    current = ALERTMANAGER_CONFIG.read_text()
    assert alertmanager_routes.render(current, QUEUES_FILE.read_text()) == current, (
        "alertmanager.yml is stale: run python -m genesys_sentiment_exporter.alertmanager_routes"
    )
    assert not re.search(r"queue_id=\"q-", current.split(alertmanager_routes.ROUTES_BEGIN)[0])


def test_every_team_of_queues_yml_is_routed_by_id_and_by_name() -> None:
    routing = alertmanager_routes.load(QUEUES_FILE.read_text())
    assert routing.teams
    for team in routing.teams:
        for queue_id in team.queue_ids:
            labels = {**SOUR, "queue_id": queue_id, "agent_id": "a1"}
            result = amtool(
                "config",
                "routes",
                "test",
                f"--config.file={ALERTMANAGER_CONFIG}",
                f"--verify.receivers={team.receiver}",
                *(f"{k}={v}" for k, v in labels.items()),
            )
            assert result.returncode == 0, (queue_id, result.stdout)
    unknown = {**SOUR, "queue_id": "q-unlisted", "queue_name": "Claims", "agent_id": "a1"}
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={routing.default.receiver}",
        *(f"{k}={v}" for k, v in unknown.items()),
    )
    assert result.returncode == 0, result.stdout


def test_generated_routes_reject_bad_input_and_render_a_new_team(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="secrets/"):
        alertmanager_routes.load("default: {receiver: d, slack_url_file: /etc/url}\nteams: []\n")
    with pytest.raises(ValueError, match="listed for"):
        alertmanager_routes.load(
            "default: {receiver: d, slack_url_file: secrets/d}\nteams:\n"
            "  - {receiver: a, slack_url_file: secrets/a, queue_ids: [q1]}\n"
            "  - {receiver: b, slack_url_file: secrets/b, queue_ids: [q1]}\n"
        )
    queues = QUEUES_FILE.read_text() + (
        '  - receiver: supervisors-claims\n    channel: "#cx-claims"\n'
        "    slack_url_file: secrets/slack_claims_url\n    queue_ids: [7e0c2d4a-1111-2222-3333-444455556666]\n"
    )
    config = tmp_path / "alertmanager.yml"
    config.write_text(alertmanager_routes.render(ALERTMANAGER_CONFIG.read_text(), queues))
    assert amtool("check-config", str(config)).returncode == 0
    labels = {**SOUR, "queue_id": "7e0c2d4a-1111-2222-3333-444455556666", "agent_id": "a1"}
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={config}",
        "--verify.receivers=supervisors-claims",
        *(f"{k}={v}" for k, v in labels.items()),
    )
    assert result.returncode == 0, result.stdout


def _named(alert: dict[str, Any], agent_name: str, queue_name: str, call: str, profile: str) -> dict[str, Any]:
    alert["labels"].update(agent_name=agent_name, queue_name=queue_name)
    alert["annotations"].update(
        summary=f"{agent_name} in {queue_name} has a severely negative call",
        action="Barge in or take over the call now; if it is already calmer, Monitor and Coach.",
        conversation_url=call,
        agent_url=profile,
    )
    return alert


def test_messages_carry_names_links_and_what_to_do(tmp_path: Path) -> None:
    call = "https://sentiment.example/-/conversation/a1"
    profile = "https://apps.mypurecloud.ie/directory/#/person/a1"
    alerts = [
        _named(
            _alert("a1", "9f1c-guid", severity="critical", alertname="AgentSentimentSevereNegative"),
            "Jane Doe",
            "Billing",
            call,
            profile,
        )
    ]
    text = _render(tmp_path, "genesys.slack.text", alerts)
    assert "*Jane Doe* in *Billing*" in text
    assert f"<{call}|Open the call (monitor / coach / barge)>" in text
    assert f"<{profile}|Agent in Genesys Cloud>" in text
    assert "Barge in or take over the call now" in text
    assert "9f1c-guid" not in text.split("var-queue")[0], "the queue id shows only inside the dashboard link"
    assert _render(tmp_path, "genesys.pagerduty.client_url", alerts) == call
    assert _render(tmp_path, "genesys.pagerduty.component", alerts) == "queue Billing"
    details = _render(tmp_path, "genesys.pagerduty.details", alerts, ".Alerts.Firing").strip()
    assert details.startswith("Jane Doe (Billing) avg -0.72") and call in details
    assert _render(tmp_path, "genesys.pagerduty.description", alerts).startswith(
        "[FIRING:1] Jane Doe in Billing has a severely negative call"
    )
    # Without links (no --web.external-url, pseudonymous ids), no empty link is drawn.
    bare = [_named(_alert("p-1234", "q1"), "p-1234", "Q1", "", "")]
    text = _render(tmp_path, "genesys.slack.text", bare)
    assert "<|" not in text and "Open the call" not in text and "Agent in Genesys Cloud" not in text
    assert _render(tmp_path, "genesys.pagerduty.client_url", bare).startswith("http://localhost:3000/d/")
