"""Dashboards: Grafana's published schema (@grafana/schema + tsc), PromQL that parses, conventions."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from .support import (
    DASHBOARD_FILES,
    GRAFANA_DIR,
    NEGATIVE_CONTROL_TS,
    SCHEMA_PROJECT,
    dashboard_queries,
    dashboard_typescript,
    iter_panels,
    load_dashboard,
    load_yaml,
    require,
    run,
    substitute,
    threshold_value,
    variable_selectors,
)

EXPECTED_UIDS = {
    "live-agent-sentiment.json": "genesys-live-sentiment",
    "sentiment-stream-health.json": "genesys-stream-health",
}
NPM_SETUP = f"cd {SCHEMA_PROJECT} && npm ci"


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: load_dashboard(path) for path in DASHBOARD_FILES}


def test_dashboards_have_stable_unique_uids(dashboards: dict[str, dict[str, Any]]) -> None:
    assert {name: d["uid"] for name, d in dashboards.items()} == EXPECTED_UIDS
    titles = {d["title"] for d in dashboards.values()}
    assert titles == {"Live agent sentiment", "Sentiment stream health"}


def test_dashboards_have_datasource_queue_and_agent_variables(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, dashboard in dashboards.items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus", (
            name
        )
        for var in ("queue", "agent"):
            assert variables[var]["type"] == "query", name
            assert variables[var]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, name
            assert variables[var]["includeAll"] and variables[var]["allValue"] == ".*", name


def test_panels_have_descriptions_units_and_the_datasource_variable(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, dashboard in dashboards.items():
        ids = [p["id"] for p in iter_panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in iter_panels(dashboard):
            if panel["type"] == "row":
                continue
            where = f"{name} / {panel.get('title')}"
            assert panel.get("description", "").strip(), f"{where}: no description"
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            assert panel["targets"], f"{where}: no query"
            for target in panel["targets"]:
                assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where


def test_sentiment_threshold_colours_match_the_recording_rule(dashboards: dict[str, dict[str, Any]]) -> None:
    """Grafana colour steps are static; the threshold lives in a recording rule. Keep them equal."""
    threshold = threshold_value()
    checked = 0

    def sentiment_steps(field: dict[str, Any]) -> list[dict[str, Any]] | None:
        if field.get("min") == -1 and field.get("max") == 1:
            steps: list[dict[str, Any]] = field["thresholds"]["steps"]
            return steps
        return None

    for dashboard in dashboards.values():
        for panel in iter_panels(dashboard):
            fields = [panel.get("fieldConfig", {}).get("defaults", {})]
            for override in panel.get("fieldConfig", {}).get("overrides", []):
                props = {p["id"]: p.get("value") for p in override["properties"]}
                if "thresholds" in props:
                    fields.append({"min": props.get("min"), "max": props.get("max"), "thresholds": props["thresholds"]})
            for field in fields:
                steps = sentiment_steps(field)
                if steps is None:
                    continue
                checked += 1
                assert steps[0]["color"] == "red" and steps[1]["value"] == threshold, (panel["title"], steps)
    assert checked >= 3


def test_every_panel_query_parses(tmp_path: Path) -> None:
    """promtool parses no bare expression, but does check a rules file: one recording rule per query."""
    promtool = require("promtool")
    records: list[dict[str, str]] = []
    for query in dashboard_queries():
        records.append(
            {
                "record": f"dashboard_check:{query.dashboard.replace('-', '_')}_p{query.panel_id}_{query.ref_id}",
                "expr": substitute(query.expr),
            }
        )
    for uid, variable, selector in variable_selectors():
        records.append(
            {"record": f"dashboard_check:{uid.replace('-', '_')}_var_{variable}", "expr": substitute(selector)}
        )
    assert len(records) >= 30
    assert not [r for r in records if "$" in r["expr"]], "unsubstituted variables"
    rules_file = tmp_path / "dashboard_queries.rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": records}]}))
    result = run([promtool, "check", "rules", str(rules_file)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(records)} rules found" in result.stdout


def test_substitute_knows_every_variable_the_dashboards_use() -> None:
    for query in dashboard_queries():
        for name in re.findall(r"\$\{?(\w+)", query.expr):
            assert name in {"__rate_interval", "__interval", "__range", "queue", "agent", "instance"}, query.name


def _npm_ready() -> None:
    require("node")
    npm = require("npm")
    if (SCHEMA_PROJECT / "node_modules" / "typescript").is_dir() and (
        SCHEMA_PROJECT / "node_modules" / "@grafana" / "schema"
    ).is_dir():
        return
    result = run([npm, "ci", "--no-audit", "--no-fund"], cwd=SCHEMA_PROJECT, timeout=600)
    if result.returncode != 0:
        pytest.fail(
            f"`npm ci` failed in {SCHEMA_PROJECT} (it needs the npm registry once; run `{NPM_SETUP}`):\n"
            f"{result.stdout}\n{result.stderr}",
            pytrace=False,
        )


def test_dashboards_match_grafana_published_schema() -> None:
    """Each dashboard, and each panel's options / custom field config / targets, assigned as an object
    literal to @grafana/schema's types: tsc rejects wrong enum values, missing required keys and
    unknown keys. A negative control proves the check rejects what it should."""
    _npm_ready()
    npx = require("npx")
    generated = SCHEMA_PROJECT / "generated"
    shutil.rmtree(generated, ignore_errors=True)
    generated.mkdir()
    for path in DASHBOARD_FILES:
        (generated / f"{path.stem}.ts").write_text(dashboard_typescript(path))
    (generated / "negative_control.ts").write_text(NEGATIVE_CONTROL_TS)
    result = run([npx, "--no-install", "tsc", "--noEmit", "-p", str(SCHEMA_PROJECT)], cwd=SCHEMA_PROJECT)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"tsc rejected a dashboard (files in {generated}):\n{output}"


def test_provisioning_matches_the_dashboards_and_compose() -> None:
    (datasource,) = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    for path in DASHBOARD_FILES:
        variables = {v["name"]: v for v in load_dashboard(path)["templating"]["list"]}
        assert variables["datasource"]["current"]["value"] == datasource["uid"], path.name
    (provider,) = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "genesys-sentiment.yml")["providers"]
    compose = load_yaml(GRAFANA_DIR.parent / "docker-compose.yml")
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


def test_panels_fit_the_grid_without_overlapping(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, dashboard in dashboards.items():
        cells: dict[tuple[int, int], str] = {}
        for panel in iter_panels(dashboard):
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, (name, panel["title"], pos)
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    other = cells.setdefault((x, y), panel["title"])
                    assert other == panel["title"], f"{name}: {panel['title']!r} overlaps {other!r}"
