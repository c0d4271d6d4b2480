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
    assert alerts - quiet == set(), f"alerts never expected NOT to fire in {RULES_TEST_FILE.name}"


def test_unit_tests_pin_labels_and_annotations_of_every_alert() -> None:
    for case in unit_test_cases():
        for expected in case.get("exp_alerts") or []:
            where = f"{case['group']} / {case['alertname']} @ {case['eval_time']}"
            assert {"severity", "team", "layer"} <= set(expected.get("exp_labels", {})), where
            assert set(REQUIRED_ANNOTATIONS) <= set(expected.get("exp_annotations", {})), where


def test_alerts_carry_routing_labels_and_annotations() -> None:
    for name, rule in alerts_by_name().items():
        labels, annotations = rule.get("labels", {}), rule.get("annotations", {})
        assert labels.get("severity") in {"critical", "warning", "none"}, name
        assert labels.get("team") in {"supervisors", "platform"}, name
        assert labels.get("layer") in {"sentiment", "platform"}, name
        for key in REQUIRED_ANNOTATIONS:
            assert annotations.get(key), f"{name} lacks annotation {key}"


def _github_anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def test_runbook_urls_point_at_existing_sections() -> None:
    anchors = {_github_anchor(m) for m in re.findall(r"^#+\s+(.*)$", RUNBOOK.read_text(), flags=re.MULTILINE)}
    bases = set()
    for name, rule in alerts_by_name().items():
        url = urlsplit(rule["annotations"]["runbook_url"])
        bases.add(url._replace(fragment="").geturl())
        assert url.path.endswith("docs/runbook.md"), name
        assert url.fragment == name.lower(), f"{name}: runbook anchor should be #{name.lower()}"
        assert url.fragment in anchors, f"{name}: no '### {name}' section in docs/runbook.md"
    assert len(bases) == 1, f"one runbook base URL, found {bases}"


def test_dashboard_urls_point_at_existing_dashboards() -> None:
    dashboards = {d["uid"]: d for d in map(load_dashboard, DASHBOARD_FILES)}
    for name, rule in alerts_by_name().items():
        url = urlsplit(rule["annotations"]["dashboard_url"])
        match = re.fullmatch(r"/d/([^/]+)/([^/]+)", url.path)
        assert match, f"{name}: dashboard_url path {url.path!r} is not /d/<uid>/<slug>"
        assert match.group(1) in dashboards, f"{name}: no dashboard with uid {match.group(1)}"
        variables = {v["name"] for v in dashboards[match.group(1)]["templating"]["list"]}
        for param in filter(None, url.query.split("&")):
            assert param.split("=")[0].removeprefix("var-") in variables, f"{name}: unknown variable in {param}"


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
    assert alerts["AgentSentimentSustainedNegative"]["expr"].strip() == (
        "queue_agent:genesys_agent_sentiment_rolling_average_below_threshold:max"
    )


def test_rules_fold_replicas_together() -> None:
    raw = re.compile(r"(?<![\w:])(genesys_[a-z0-9_]+|up\{)")  # a raw metric, not a recording rule
    for rule in rules("record"):
        if rule["record"].startswith(("instance:", "global:")) or not raw.search(rule["expr"]):
            continue
        assert "without (instance)" in rule["expr"], f"{rule['record']} reads exporter metrics per replica"
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
