"""The metric catalogue against everything that names a metric: rules, promtool tests, templates,
dashboards, the collector's page, the bundle's fake exporter and the README.

Every PromQL expression is parsed with a real PromQL parser (`promql-parser`, the Rust parser of
GreptimeDB behind a Python binding), and every selector is checked: a `genesys_*` name must be a
sample name of the catalogue, a `level:metric:operation` name must be recorded by a rule, a label
matcher on a catalogue metric must name one of its labels, and a value matched on a closed label
(`outcome="missing_sentiment"`) must be one of its known values. The negative controls feed the same
checker copies with one name or value broken and expect it to say so.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from genesys_sentiment_exporter import catalogue
from genesys_sentiment_exporter.catalogue import BY_SAMPLE_NAME, FAMILIES, Family, Outcome
from genesys_sentiment_exporter.metrics import ExporterInfo, render
from tests.bundle.support import dashboard_queries, substitute, variable_selectors
from tests.test_metrics_render import World, busy_world

REPO = Path(__file__).resolve().parents[1]
RULES = sorted((REPO / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((REPO / "prometheus" / "tests").glob("*.yml"))
TEMPLATES = sorted((REPO / "alertmanager" / "templates").glob("*.tmpl"))
DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
ALWAYS_LABELS = frozenset({"job", "instance", "__name__"})


@dataclass(frozen=True)
class Expression:
    where: str  # file and what in it
    text: str


# ---- collecting every expression ------------------------------------------------------------------
# Go-template string literals in annotations: `query "expr"` and `printf "expr %q" ... | query`.
_TEMPLATE_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _template_queries(where: str, template: str) -> Iterator[Expression]:
    for action in re.findall(r"\{\{(.*?)\}\}", template, flags=re.S):
        if "query" not in action:
            continue
        for literal in _TEMPLATE_STRING.findall(action):
            text = literal.replace('\\"', '"').replace("%q", '"x"').replace("%s", "x")
            if re.search(r"[a-z_:]*genesys_\w+|\bup\b", text):
                yield Expression(f"{where} (template query)", text)


def rule_expressions(paths: Sequence[Path]) -> Iterator[Expression]:
    for path in paths:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("record") or rule.get("alert")
                yield Expression(f"{path.name}: {name}", rule["expr"])
                for key, value in {**rule.get("labels", {}), **rule.get("annotations", {})}.items():
                    yield from _template_queries(f"{path.name}: {name} {key}", str(value))


def recorded_names(paths: Sequence[Path]) -> set[str]:
    return {
        rule["record"]
        for path in paths
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def rule_test_expressions(paths: Sequence[Path]) -> Iterator[Expression]:
    for path in paths:
        for case in yaml.safe_load(path.read_text())["tests"]:
            where = f"{path.name}: {case.get('name', '?')}"
            for series in case.get("input_series", []):
                yield Expression(f"{where} input_series", series["series"])
            for test in case.get("promql_expr_test", []):
                yield Expression(f"{where} expr", test["expr"])
                for sample in test.get("exp_samples", []):
                    yield Expression(f"{where} exp_samples", sample["labels"])


def template_expressions(paths: Sequence[Path]) -> Iterator[Expression]:
    """Alertmanager templates hold no PromQL today; any `genesys_*` name they mention is checked."""
    for path in paths:
        text = path.read_text()
        yield from _template_queries(path.name, text)
        for name in sorted(set(re.findall(r"\b[a-z_:]*genesys_[a-z0-9_:]+\b", text))):
            yield Expression(f"{path.name} (name)", name)


def dashboard_expressions(paths: Sequence[Path]) -> Iterator[Expression]:
    for query in dashboard_queries(paths):
        yield Expression(f"dashboard {query.name}", substitute(query.expr))
    for uid, variable, selector in variable_selectors(paths):
        yield Expression(f"dashboard {uid} variable {variable}", substitute(selector))


def every_expression(
    rules: Sequence[Path] = RULES,
    rule_tests: Sequence[Path] = RULE_TESTS,
    templates: Sequence[Path] = TEMPLATES,
    dashboards: Sequence[Path] = DASHBOARDS,
) -> list[Expression]:
    return [
        *rule_expressions(rules),
        *rule_test_expressions(rule_tests),
        *template_expressions(templates),
        *dashboard_expressions(dashboards),
    ]


# ---- the checker -------------------------------------------------------------------------------------
def _alternatives(pattern: str) -> list[str] | None:
    """The literal names of a `a|b|c` regex, or None when it is a real pattern (not checkable)."""
    parts = pattern.split("|")
    return parts if all(re.fullmatch(r"[A-Za-z0-9_:]+", p) for p in parts) else None


def _selectors(expr: Any) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(expr, pre_visit=visit)
    return found


def _values(matcher: Any) -> list[str] | None:
    if matcher.op == promql_parser.MatchOp.Equal:
        return [matcher.value]
    if matcher.op == promql_parser.MatchOp.Re:
        return _alternatives(matcher.value)
    return None  # != and !~ name what must not be there: nothing to check


def check(expressions: Sequence[Expression], recorded: set[str]) -> tuple[list[str], int]:
    """(problems, number of metric names checked)."""
    problems: list[str] = []
    checked = 0
    for expression in expressions:
        try:
            parsed = promql_parser.parse(expression.text)
        except Exception as exc:  # the parser raises ValueError or its own errors
            problems.append(f"{expression.where}: does not parse: {exc}")
            continue
        for selector in _selectors(parsed):
            matchers = selector.matchers.matchers
            names = [selector.name] if selector.name else []
            for matcher in matchers:
                if matcher.name == "__name__":
                    values = _values(matcher)
                    if values is None:
                        problems.append(f"{expression.where}: __name__ pattern {matcher.value!r} cannot be checked")
                    else:
                        names += values
            for name in names:
                checked += 1
                if ":" in name:
                    if name not in recorded:
                        problems.append(f"{expression.where}: {name} is recorded by no rule")
                    continue
                if not name.startswith("genesys_"):
                    continue
                family = BY_SAMPLE_NAME.get(name)
                if family is None:
                    problems.append(f"{expression.where}: {name} is not in the metric catalogue")
                    continue
                problems += _check_labels(expression.where, name, family, matchers)
    return problems, checked


def _check_labels(where: str, name: str, family: Family, matchers: Sequence[Any]) -> list[str]:
    problems = []
    labels = {label.name: label for label in family.labels}
    for matcher in matchers:
        if matcher.name in ALWAYS_LABELS or (matcher.name == "le" and family.kind == "histogram"):
            continue
        if matcher.name not in family.all_labels:
            problems.append(f"{where}: {name} has no label {matcher.name!r} (catalogue: {family.all_labels})")
            continue
        label = labels.get(matcher.name)
        if label is None or label.values is None or label.open_extra:
            continue
        for value in _values(matcher) or []:
            if value not in label.known:
                problems.append(f"{where}: {name}{{{matcher.name}={value!r}}}: not one of {label.known}")
    return problems


# ---- the tests ---------------------------------------------------------------------------------------
def test_every_metric_name_in_rules_tests_templates_and_dashboards_is_in_the_catalogue() -> None:
    expressions = every_expression()
    problems, checked = check(expressions, recorded_names(RULES))
    assert not problems, "\n".join(problems)
    # Each kind of source contributed (a glob that silently matches nothing checks nothing).
    for kind in ("rules.yml:", "rules_test.yml:", "dashboard "):
        assert sum(kind in e.where for e in expressions) >= 10, kind
    assert checked >= 300, checked


def _broken_copy(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    text = source.read_text()
    assert old in text
    target = tmp_path / source.name
    target.write_text(text.replace(old, new))
    return target


@pytest.mark.parametrize(
    ("kind", "old", "new", "expected"),
    [
        (
            "rules",
            'max without (instance, party) (genesys_agent_sentiment_score{party="customer"})',
            'max without (instance, party) (genesys_agent_sentiment_scores{party="customer"})',
            "genesys_agent_sentiment_scores is not in the metric catalogue",
        ),
        (
            "rules",
            'outcome="missing_sentiment"}',
            'outcome="missing_sentiments"}',
            "not one of",
        ),
        (
            "rules",
            "job:genesys_stream_connected:max == 0",
            "job:genesys_stream_connect:max == 0",
            "job:genesys_stream_connect:max is recorded by no rule",
        ),
        (
            "tests",
            "genesys_stream_disconnects_total{",
            "genesys_stream_disconnect_total{",
            "genesys_stream_disconnect_total is not in the metric catalogue",
        ),
        (
            "dashboards",
            "genesys_notifications_subscriptions_refused_total",
            "genesys_notifications_subscription_refused_total",
            "genesys_notifications_subscription_refused_total is not in the metric catalogue",
        ),
        (
            "dashboards",
            "genesys_conversations_ended_total{queue_id",
            "genesys_conversations_ended_total{queue",
            "has no label 'queue'",
        ),
    ],
)
def test_negative_control_a_name_or_value_not_in_the_catalogue_fails(
    tmp_path: Path, kind: str, old: str, new: str, expected: str
) -> None:
    rules, rule_tests, dashboards = list(RULES), list(RULE_TESTS), list(DASHBOARDS)
    if kind == "rules":
        alerts = next(p for p in RULES if old in p.read_text())
        rules = [_broken_copy(tmp_path, alerts, old, new) if p == alerts else p for p in RULES]
    elif kind == "tests":
        rule_tests = [_broken_copy(tmp_path, RULE_TESTS[0], old, new)]
    else:
        board = next(p for p in DASHBOARDS if old in p.read_text())
        dashboards = [_broken_copy(tmp_path, board, old, new) if p == board else p for p in DASHBOARDS]
    problems, _ = check(every_expression(rules, rule_tests, TEMPLATES, dashboards), recorded_names(RULES))
    assert problems and all(expected in p for p in problems), problems


def test_catalogue_follows_the_naming_conventions() -> None:
    sample_names = [name for f in FAMILIES for name in f.sample_names]
    assert len(sample_names) == len(set(sample_names)) == len(BY_SAMPLE_NAME)
    for family in FAMILIES:
        assert re.fullmatch(r"genesys_[a-z0-9_]+", family.name), family.name
        assert family.help.strip() and family.help.endswith("."), family.name
        assert not family.name.endswith(("_total", "_info", "_created")), family.name
        if family.unit:
            assert family.name.endswith("_" + family.unit), family.name
        if family.name.endswith(("_seconds", "_bytes")):
            assert family.unit, f"{family.name}: unit not declared"
        for label in family.all_labels:
            assert re.fullmatch(r"[a-z][a-z0-9_]*", label), (family.name, label)
        assert "conversation_id" not in family.all_labels, family.name
        if family.kind == "info":
            assert family.all_labels, family.name


def test_outcome_enum_is_the_only_spelling_of_outcomes_in_the_package() -> None:
    """No module spells an outcome as a bare string literal any more: they use `Outcome` members."""
    package = REPO / "genesys_sentiment_exporter"
    offenders = []
    spelled = "|".join(re.escape(o.value) for o in Outcome)
    pattern = re.compile(rf"""(count|_count|messages\[)\(?\s*["']({spelled})["']""")
    for path in package.rglob("*.py"):
        offenders += [f"{path.name}: {m.group(0)}" for m in pattern.finditer(path.read_text())]
    assert not offenders, offenders


def test_metric_families_are_built_only_through_the_catalogue() -> None:
    """prometheus_client family classes appear only in families.py (helpers that take a catalogue Family)
    and metrics.py."""
    package = REPO / "genesys_sentiment_exporter"
    users = sorted(path.name for path in package.rglob("*.py") if re.search(r"\b\w+MetricFamily\(", path.read_text()))
    assert users == ["families.py", "metrics.py"], users


def _page_problems(text: str) -> list[str]:
    problems = []
    for family in text_string_to_metric_families(text):
        entry = catalogue.BY_NAME.get(family.name) or catalogue.BY_SAMPLE_NAME.get(family.name)
        if entry is None:
            problems.append(f"{family.name}: not in the catalogue")
            continue
        if family.documentation != entry.help:
            problems.append(f"{family.name}: help differs: {family.documentation!r} != {entry.help!r}")
        expected_type = {"gauge": "gauge", "counter": "counter", "info": "gauge", "histogram": "histogram"}[entry.kind]
        if family.type != expected_type and not (entry.kind == "info" and family.type == "info"):
            problems.append(f"{family.name}: type {family.type} != {expected_type}")
        for sample in family.samples:
            extra = set(sample.labels) - set(entry.all_labels) - ({"le"} if entry.kind == "histogram" else set())
            if extra:
                problems.append(f"{sample.name}: labels {sorted(extra)} not in the catalogue")
            missing = set(entry.all_labels) - set(sample.labels)
            if missing:  # a selector on that label (party="customer") would not find the sample
                problems.append(f"{sample.name}: labels {sorted(missing)} missing")
    return problems


def test_the_collectors_page_matches_the_catalogue() -> None:
    world = busy_world()
    world.collector.extras.append(ExporterInfo("plain", "https://apps.example.com", "https://exporter.example.com"))
    text = render(world.registry).decode()
    assert not _page_problems(text)
    served = {f.name for f in text_string_to_metric_families(text)}
    assert len(served) >= 25


def test_every_known_label_value_is_served_at_zero_from_the_start() -> None:
    world = busy_world()
    text = render(world.registry).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    for outcome in Outcome:
        assert ("genesys_stream_messages_total", (("outcome", outcome.value),)) in samples, outcome
    for code in catalogue.DisconnectCode:
        assert ("genesys_stream_disconnects_total", (("code", code.value),)) in samples, code
    assert samples[("genesys_agents_dropped_total", (("reason", "idle"),))] == 0
    # Each queue a tracked call was in has both ended-call series, at 0 until a call ends there.
    queues = {dict(k[1])["queue_id"] for k in samples if k[0] == "genesys_conversations_ended_total"}
    assert queues == set(world.tracker.queue_last_ended)
    for queue in queues:
        for had in ("true", "false"):
            key = ("genesys_conversations_ended_total", (("had_sentiment", had), ("queue_id", queue)))
            assert key in samples, key


def test_a_fresh_exporter_serves_every_closed_label_value_at_zero() -> None:
    """Nothing counted yet: each closed-label counter family still has every known value, at 0."""
    world = World()
    world.collector.extras.append(ExporterInfo("plain", "", ""))
    families = {f.name: f for f in text_string_to_metric_families(render(world.registry).decode())}
    for family in FAMILIES:
        closed = [label for label in family.labels if label.values is not None]
        if family.kind != "counter" or not closed or len(closed) != len(family.labels):
            continue
        if family.group == "notifications" or family.name in ("genesys_name_lookups", "genesys_audit_runs"):
            continue  # served by the notifications source / the name resolver, not built here
        served = families[family.name].samples
        expected = 1
        for label in closed:
            expected *= len(label.known)
        assert len(served) == expected and all(s.value == 0 for s in served), family.name


def test_an_unknown_close_code_is_served_as_other() -> None:
    world = busy_world()
    before = world.stream.disconnects["1006"]
    world.stream.disconnects["4321"] += 2
    world.stream.disconnects["1006"] += 1
    text = render(world.registry).decode()
    values = {
        s.labels["code"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "genesys_stream_disconnects_total"
    }
    assert values["other"] == 2 and values["1006"] == before + 1 and "4321" not in values


def test_the_fake_exporters_page_matches_the_catalogue() -> None:
    sys.path.insert(0, str(REPO / "tests" / "bundle"))
    try:
        import fake_exporter
    finally:
        sys.path.pop(0)
    text = fake_exporter.Scenario(sour_after=0).metrics()
    assert not _page_problems(text)
    assert len(list(text_string_to_metric_families(text))) >= 10


def test_a_page_with_a_family_missing_from_the_catalogue_is_caught() -> None:
    bad = "# HELP genesys_made_up Nothing.\n# TYPE genesys_made_up gauge\ngenesys_made_up 1\n"
    assert _page_problems(bad) == ["genesys_made_up: not in the catalogue"]


def test_readme_tables_are_generated_from_the_catalogue(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "genesys_sentiment_exporter.catalogue", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    stale = tmp_path / "README.md"
    shutil.copy(REPO / "README.md", stale)
    stale.write_text(stale.read_text().replace("| `genesys_tracked_agents` |", "| `genesys_tracked_agent` |"))
    assert catalogue.main(["--readme", str(stale), "--check"]) == 1
    assert catalogue.main(["--readme", str(stale), "--write"]) == 0
    assert catalogue.main(["--readme", str(stale), "--check"]) == 0


def test_dashboard_json_is_parsed_from_the_files_given() -> None:
    """every_expression() reads what it is given: an empty dashboard list contributes nothing."""
    without = every_expression(dashboards=[])
    assert not [e for e in without if e.where.startswith("dashboard ")]
    assert json.loads(DASHBOARDS[0].read_text())["panels"]
