"""promtool on the rules, the rule unit tests, and what the unit tests must cover."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .support import (
    DASHBOARD_FILES,
    PROMETHEUS_DIR,
    RULE_FILES,
    RULES_TEST_FILE,
    RUNBOOK,
    alerts_by_name,
    load_dashboard,
    load_yaml,
    require,
    rules,
    run,
    threshold_value,
    unit_test_cases,
)

REQUIRED_ANNOTATIONS = ("summary", "description", "runbook_url", "dashboard_url")
# The bases of every link are the labels of one recording rule (a deployment sets them there).
LINKS_RULE = "global:genesys_links:info"
RUNBOOK_BASE = '{{ with query "global:genesys_links:info" }}{{ . | first | label "runbook_url" }}{{ end }}'
GRAFANA_BASE = '{{ with query "global:genesys_links:info" }}{{ . | first | label "grafana_url" }}{{ end }}'
# Always firing on purpose (the dead man's switch): it has no "quiet" case.
ALWAYS_FIRING = frozenset({"GenesysSentimentWatchdog"})
# Alerts about one agent / one queue: their labels carry the names (tests below).
AGENT_ALERTS = frozenset(
    {
        "AgentSentimentSustainedNegative",
        "AgentSentimentSevereNegative",
        "AgentSentimentReadingsStopped",
        "AgentToneSustainedNegative",
        "AgentPostCallSentimentDeclining",
    }
)
# Alerts about one process keep `instance` on purpose (each replica has its own token / state).
PER_INSTANCE_ALERTS = frozenset({"GenesysOAuthTokenNotRefreshed", "GenesysSentimentReplicaDegraded"})


def test_rule_files_are_split_into_recording_and_alerting() -> None:
    names = {p.name for p in RULE_FILES}
    assert names == {"genesys_sentiment_recording.rules.yml", "genesys_sentiment_alerts.rules.yml"}
    for path in RULE_FILES:
        kinds = {("alert" if "alert" in r else "record") for g in load_yaml(path)["groups"] for r in g["rules"]}
        assert kinds == ({"record"} if "recording" in path.name else {"alert"}), path.name


def test_promtool_check_rules() -> None:
    result = run([require("promtool"), "check", "rules", *map(str, RULE_FILES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr


def test_promtool_check_config() -> None:
    result = run([require("promtool"), "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    result = run([require("promtool"), "test", "rules", str(RULES_TEST_FILE)], cwd=RULES_TEST_FILE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_unit_tests_cover_every_alert_firing_and_not_firing() -> None:
    alerts = set(alerts_by_name())
    cases = unit_test_cases()
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert {c["alertname"] for c in cases} <= alerts, "unit tests name alerts that do not exist"
    assert alerts - firing == set(), f"alerts never expected to fire in {RULES_TEST_FILE.name}"
    assert alerts - quiet - ALWAYS_FIRING == set(), f"alerts never expected NOT to fire in {RULES_TEST_FILE.name}"


def test_unit_tests_pin_labels_and_annotations_of_every_alert() -> None:
    for case in unit_test_cases():
        for expected in case.get("exp_alerts") or []:
            where = f"{case['group']} / {case['alertname']} @ {case['eval_time']}"
            assert {"severity", "team", "layer"} <= set(expected.get("exp_labels", {})), where
            assert set(REQUIRED_ANNOTATIONS) <= set(expected.get("exp_annotations", {})), where


def test_alerts_carry_routing_labels_and_annotations() -> None:
    for name, rule in alerts_by_name().items():
        labels, annotations = rule.get("labels", {}), rule.get("annotations", {})
        # info: the post-call coaching alert (Slack, never a page)
        assert labels.get("severity") in {"critical", "warning", "info", "none"}, name
        assert labels.get("team") in {"supervisors", "platform"}, name
        assert labels.get("layer") in {"sentiment", "platform"}, name
        for key in REQUIRED_ANNOTATIONS:
            assert annotations.get(key), f"{name} lacks annotation {key}"


def _github_anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def _links() -> dict[str, str]:
    """The label values of global:genesys_links:info, read from its label_replace() calls."""
    (rule,) = [r for r in rules("record") if r["record"] == LINKS_RULE]
    return dict(re.findall(r'"(\w+_url)",\s*"([^"]+)"', rule["expr"]))


def test_link_bases_are_set_in_one_place() -> None:
    links = _links()
    assert set(links) == {"grafana_url", "runbook_url"}
    assert urlsplit(links["runbook_url"]).path.endswith("docs/runbook.md")
    for path in RULE_FILES:
        if "alerts" in path.name:
            text = path.read_text()
            assert not re.search(r"https?://", text.replace("https://apps.{domain}", "")), (
                f"{path.name} writes a URL: use {LINKS_RULE} or the exporter's info metrics"
            )


def test_runbook_urls_point_at_existing_sections() -> None:
    anchors = {_github_anchor(m) for m in re.findall(r"^#+\s+(.*)$", RUNBOOK.read_text(), flags=re.MULTILINE)}
    for name, rule in alerts_by_name().items():
        url = rule["annotations"]["runbook_url"]
        assert url == f"{RUNBOOK_BASE}#{name.lower()}", (
            f"{name}: runbook_url should be the links rule + #{name.lower()}"
        )
        assert name.lower() in anchors, f"{name}: no '### {name}' section in docs/runbook.md"


def test_dashboard_urls_point_at_existing_dashboards() -> None:
    dashboards = {d["uid"]: d for d in map(load_dashboard, DASHBOARD_FILES)}
    for name, rule in alerts_by_name().items():
        raw = rule["annotations"]["dashboard_url"]
        assert raw.startswith(GRAFANA_BASE), f"{name}: dashboard_url should start with the links rule"
        url = urlsplit(raw.removeprefix(GRAFANA_BASE))
        match = re.fullmatch(r"/d/([^/]+)/([^/]+)", url.path)
        assert match, f"{name}: dashboard_url path {url.path!r} is not /d/<uid>/<slug>"
        assert match.group(1) in dashboards, f"{name}: no dashboard with uid {match.group(1)}"
        variables = {v["name"] for v in dashboards[match.group(1)]["templating"]["list"]}
        for param in filter(None, url.query.split("&")):
            assert param.split("=")[0].removeprefix("var-") in variables, f"{name}: unknown variable in {param}"


def test_agent_and_queue_alerts_carry_names_and_say_what_to_do() -> None:
    alerts = alerts_by_name()
    for name, rule in alerts.items():
        expr = rule["expr"]
        if name in AGENT_ALERTS:
            assert "group_left (agent_name) agent:genesys_agent_name:info" in expr, name
            assert rule["annotations"].get("action"), f"{name}: say what to do (listen, coach, barge)"
            assert "/-/conversation/" in rule["annotations"]["conversation_url"], name
            assert "/directory/#/person/" in rule["annotations"]["agent_url"], name
        if rule["labels"]["team"] == "supervisors":
            assert "group_left (queue_name) queue:genesys_queue_name:info" in expr, name
    for case in unit_test_cases():
        for expected in case.get("exp_alerts") or []:
            labels = expected["exp_labels"]
            if case["alertname"] in AGENT_ALERTS:
                assert {"agent_name", "queue_name"} <= set(labels), case["alertname"]
            elif "queue_id" in labels:
                assert "queue_name" in labels, case["alertname"]


def test_pagerduty_is_by_policy_not_for_every_sour_call() -> None:
    alerts = alerts_by_name()
    assert alerts["AgentSentimentSustainedNegative"]["labels"]["severity"] == "warning"
    critical_sentiment = {
        n for n, a in alerts.items() if a["labels"] == {**a["labels"], "team": "supervisors", "severity": "critical"}
    }
    assert critical_sentiment == {"AgentSentimentSevereNegative", "QueueSentimentSeveralAgentsNegative"}
    assert "global:genesys_sentiment_page_threshold:value" in alerts["AgentSentimentSevereNegative"]["expr"] or (
        "below_page_threshold" in alerts["AgentSentimentSevereNegative"]["expr"]
    )
    assert "global:genesys_sentiment_page_agents:value" in alerts["QueueSentimentSeveralAgentsNegative"]["expr"]
    assert alerts["GenesysSentimentWatchdog"]["expr"].strip() == "vector(1)"
    # Genesys' post-call score is a coaching signal: Slack, never a page; so is the agent's own tone.
    assert alerts["AgentPostCallSentimentDeclining"]["labels"]["severity"] == "info"
    assert alerts["AgentToneSustainedNegative"]["labels"]["severity"] == "warning"


def test_live_rules_judge_the_customer_and_post_call_stays_apart() -> None:
    records = {r["record"]: r["expr"] for r in rules("record")}
    live = records["queue_agent:genesys_agent_sentiment_rolling_average_full_window:max"]
    assert live.count('{party="customer"}') == 3 and "postcall" not in live
    assert records["queue_agent:genesys_agent_tone_rolling_average_full_window:max"].count('{party="agent"}') == 3
    for name, expr in records.items():
        if "postcall" in expr:
            assert "rolling_average" not in expr, f"{name} mixes the post-call score into the live window"


def test_recording_rule_names_are_level_metric_operations() -> None:
    for rule in rules("record"):
        assert re.fullmatch(r"[a-z][a-z_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*", rule["record"]), rule["record"]


def test_threshold_is_written_once() -> None:
    assert threshold_value() == -0.5
    literal = re.compile(r"(?<![\w.])-\s*0?\.5\b")
    for rule in rules("record") + rules("alert"):
        if rule.get("record") == "global:genesys_sentiment_alert_threshold:value":
            continue
        assert not literal.search(rule["expr"]), f"{rule.get('record') or rule.get('alert')} hard-codes -0.5"
    consumers = [
        r for r in rules("record") + rules("alert") if "global:genesys_sentiment_alert_threshold:value" in r["expr"]
    ]
    assert consumers, "nothing reads the threshold recording rule"


def test_sentiment_duration_is_the_for_of_one_alert() -> None:
    alerts = alerts_by_name()
    assert alerts["AgentSentimentSustainedNegative"]["for"] == "30s"
    expr = alerts["AgentSentimentSustainedNegative"]["expr"].strip()
    assert expr.startswith("queue_agent:genesys_agent_sentiment_rolling_average_below_threshold:max\n"), expr
    assert "<" not in expr and ">" not in expr, "the comparison belongs to the recording rule"


def test_rules_fold_replicas_together() -> None:
    raw = re.compile(r"(?<![\w:])(genesys_[a-z0-9_]+|up\{)")  # a raw metric, not a recording rule
    for rule in rules("record"):
        if rule["record"].startswith(("instance:", "global:")) or not raw.search(rule["expr"]):
            continue
        # `without (instance, party)`: the live rules also fold the party they selected
        assert "without (instance" in rule["expr"], f"{rule['record']} reads exporter metrics per replica"
    for name, rule in alerts_by_name().items():
        if name in PER_INSTANCE_ALERTS:
            continue
        without_absent = re.sub(r"absent\([^)]*\)", "", rule["expr"])
        assert not raw.search(without_absent), f"{name} reads raw exporter metrics (use the recording rules)"
    # And the unit tests prove it: no replica label on any alert but the per-process ones.
    for case in unit_test_cases():
        for expected in case.get("exp_alerts") or []:
            if case["alertname"] not in PER_INSTANCE_ALERTS:
                assert "instance" not in expected.get("exp_labels", {}), case["alertname"]
