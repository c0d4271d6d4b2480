"""Shared helpers for the bundle tests (and for the end-to-end tests that reuse the dashboards'
queries against a live Prometheus: see `dashboard_queries` and `substitute`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.rules.yml"))
RULES_TEST_FILE = PROMETHEUS_DIR / "tests" / "genesys_sentiment_rules_test.yml"
ALERTMANAGER_DIR = REPO / "alertmanager"
ALERTMANAGER_CONFIG = ALERTMANAGER_DIR / "alertmanager.yml"
GRAFANA_DIR = REPO / "grafana"
DASHBOARD_FILES = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
SCHEMA_PROJECT = Path(__file__).resolve().parent / "grafana_schema"
COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_SCHEMA = REPO / "tests" / "bundle" / "schemas" / "compose-spec.json"
RUNBOOK = REPO / "docs" / "runbook.md"

INSTALL_HINTS: Mapping[str, str] = {
    "promtool": "apt-get install -y --no-install-recommends prometheus   (Debian's prometheus ships promtool)",
    "prometheus": "apt-get install -y --no-install-recommends prometheus",
    "amtool": "apt-get install -y --no-install-recommends prometheus-alertmanager   (ships amtool)",
    "prometheus-alertmanager": "apt-get install -y --no-install-recommends prometheus-alertmanager",
    "node": "install Node.js 20 (e.g. apt-get install -y nodejs, or https://nodejs.org)",
    "npm": "install npm (ships with Node.js; Debian: apt-get install -y npm)",
    "npx": "install npm >= 7 (npx ships with it)",
}


def require(binary: str) -> str:
    """Path of `binary`, or FAIL the test (never skip) with how to install it."""
    path = shutil.which(binary)
    if path is None:
        pytest.fail(
            f"{binary!r} is required by the rules-and-paging bundle tests but is not on PATH. "
            f"Install it: {INSTALL_HINTS.get(binary, '(no hint)')}",
            pytrace=False,
        )
    return path


def run(argv: Sequence[str], cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


# ---------------------------------------------------------------------------------------------------
# Prometheus rules
# ---------------------------------------------------------------------------------------------------
def rules(kind: str) -> list[dict[str, Any]]:
    """Every rule of the given kind ("alert" or "record") across the shipped rule files."""
    found: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            found += [rule for rule in group["rules"] if kind in rule]
    return found


def alerts_by_name() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules("alert")}


def threshold_value() -> float:
    (rule,) = [r for r in rules("record") if r["record"] == "global:genesys_sentiment_alert_threshold:value"]
    match = re.fullmatch(r"\s*vector\((-?[0-9.]+)\)\s*", rule["expr"])
    assert match, f"threshold rule is not vector(<number>): {rule['expr']!r}"
    return float(match.group(1))


def unit_test_cases() -> list[dict[str, Any]]:
    """Every alert_rule_test of the promtool unit-test file, with its test group's name."""
    cases: list[dict[str, Any]] = []
    for group in load_yaml(RULES_TEST_FILE)["tests"]:
        for case in group.get("alert_rule_test") or []:
            cases.append({**case, "group": group.get("name", "?")})
    return cases


# ---------------------------------------------------------------------------------------------------
# Grafana dashboards
# ---------------------------------------------------------------------------------------------------
def load_dashboard(path: Path) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text())
    return dashboard


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included (rows themselves are yielded too)."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


@dataclass(frozen=True)
class DashboardQuery:
    dashboard: str  # uid
    panel_id: int
    panel_title: str
    ref_id: str
    expr: str  # as written, with Grafana variables

    @property
    def name(self) -> str:
        return f"{self.dashboard} / {self.panel_title} ({self.ref_id})"


def dashboard_queries(paths: Sequence[Path] = DASHBOARD_FILES) -> list[DashboardQuery]:
    """Every PromQL expression of every panel of the dashboards."""
    found: list[DashboardQuery] = []
    for path in paths:
        dashboard = load_dashboard(path)
        for panel in iter_panels(dashboard):
            for target in panel.get("targets", []):
                found.append(
                    DashboardQuery(
                        dashboard["uid"], panel["id"], panel.get("title", ""), target["refId"], target["expr"]
                    )
                )
    return found


def is_audiohook_query(expr: str) -> bool:
    """Panels of the AudioHook row: they have data only where the audiohook source runs."""
    return "genesys_audiohook_" in expr


def variable_selectors(paths: Sequence[Path] = DASHBOARD_FILES) -> list[tuple[str, str, str]]:
    """(dashboard uid, variable name, series selector) of every label_values(...) query variable."""
    found: list[tuple[str, str, str]] = []
    for path in paths:
        dashboard = load_dashboard(path)
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") != "query":
                continue
            query = variable["query"]
            text = query if isinstance(query, str) else query.get("query", "")
            match = re.fullmatch(r"\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*", text)
            assert match, f"{dashboard['uid']}: variable {variable['name']} query is not label_values(selector, label)"
            found.append((dashboard["uid"], variable["name"], match.group(1)))
    return found


# Grafana's built-in variables, and the "All" value of the dashboards' own variables (allValue ".*").
DEFAULT_VARIABLES: Mapping[str, str] = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "queue": ".*",
    "agent": ".*",
    "instance": ".*",
}


def substitute(expr: str, values: Mapping[str, str] | None = None) -> str:
    """Replace $var / ${var} / [[var]] by a value, as Grafana does before sending the query.

    Fails if a variable is left that has no value: a new dashboard variable must be added here.
    """
    table = {**DEFAULT_VARIABLES, **(values or {})}

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in table:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return table[name]

    result = re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", one, expr)
    return result


# ---------------------------------------------------------------------------------------------------
# @grafana/schema type check: dashboards -> generated TypeScript
# ---------------------------------------------------------------------------------------------------
# Panel types the TypeScript side (grafana_schema/checks.ts, PanelTypes) knows the options of.
CHECKED_PANEL_TYPES = frozenset({"timeseries", "stat", "bargauge", "table", "state-timeline"})


def _ts_literal(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def dashboard_typescript(path: Path) -> str:
    """A TypeScript module that assigns the dashboard, and each panel's options, custom field
    config and targets, to Grafana's published types. tsc then checks the whole dashboard."""
    dashboard = load_dashboard(path)
    rel = path.relative_to(REPO)
    lines = [
        f"// Generated by tests/bundle/support.py from {rel}: do not edit, edit the dashboard.",
        "import type { DashboardJson, PanelCustom, PanelOptions, PanelTargets } from '../checks';",
        "",
        f"export const dashboard: DashboardJson = {_ts_literal(dashboard)};",
    ]
    for panel in iter_panels(dashboard):
        kind = panel["type"]
        if kind == "row":
            continue
        if kind not in CHECKED_PANEL_TYPES:
            raise ValueError(f"{rel}: panel {panel.get('id')} has type {kind!r}; add it to checks.ts PanelTypes")
        pid = panel["id"]
        lines.append(
            f"\nexport const panel_{pid}_options: PanelOptions<'{kind}'> = {_ts_literal(panel.get('options', {}))};"
        )
        custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom")
        if custom is not None:
            lines.append(f"export const panel_{pid}_custom: PanelCustom<'{kind}'> = {_ts_literal(custom)};")
        lines.append(f"export const panel_{pid}_targets: PanelTargets = {_ts_literal(panel.get('targets', []))};")
    return "\n".join(lines) + "\n"


# Wrong on purpose: each must be rejected by tsc, or the @ts-expect-error above it is "unused" and
# tsc fails. Proves the check has teeth (enums, required keys, unknown keys, panel options).
NEGATIVE_CONTROL_TS = """// Generated by tests/bundle/support.py: values the schema must reject.
import type { DashboardJson, PanelOptions, PanelTargets } from '../checks';

// @ts-expect-error: schemaVersion is required
export const noSchemaVersion: DashboardJson = { title: 'x' };
// @ts-expect-error: unknown top-level key
export const unknownKey: DashboardJson = { schemaVersion: 42, titel: 'x' };
export const badThresholdMode: DashboardJson = {
  schemaVersion: 42,
  panels: [{ type: 'stat', fieldConfig: { overrides: [], defaults: { thresholds: {
    // @ts-expect-error: not a ThresholdsMode
    mode: 'absolut',
    steps: [] } } } }],
};
export const badLegend: PanelOptions<'timeseries'> = {
  // @ts-expect-error: not a LegendDisplayMode
  legend: { showLegend: true, displayMode: 'lists', placement: 'bottom', calcs: [] },
  tooltip: { mode: 'multi', sort: 'none' },
};
// @ts-expect-error: stat options need reduceOptions, orientation, textMode...
export const incompleteStat: PanelOptions<'stat'> = { colorMode: 'value' };
export const noExpr: PanelTargets = [
  // @ts-expect-error: expr is required
  { refId: 'A', datasource: { type: 'prometheus', uid: '${datasource}' } },
];
"""
