"""Every panel query of the shipped dashboards returns data from a real Prometheus scraping the demo.

The parse check (tests/bundle) proves a query is valid PromQL; only a live Prometheus proves it names
metrics and labels the exporter really serves, with the recording rules really evaluated.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from stack import Stack, StackOptions
from tests.bundle.support import dashboard_queries, is_audiohook_query, substitute, variable_selectors


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(StackOptions(run_dir=tmp_path_factory.mktemp("dashboards") / "stack", seed=3)) as stack:
        yield stack


def test_every_panel_query_returns_data(demo_stack: Stack) -> None:
    # Wait until the demo's sour agent has paged: from then on every panel, "alerts firing now"
    # included, has something to show.
    deadline = time.monotonic() + 150
    while not demo_stack.query('ALERTS{alertname="AgentSentimentSustainedNegative",alertstate="firing"}'):
        assert time.monotonic() < deadline, "the demo's sour agent never fired AgentSentimentSustainedNegative"
        time.sleep(2)
    # The demo runs no AudioHook source: the AudioHook row's queries are checked against real audio
    # sessions in tests/e2e/test_audiohook_page.py instead.
    queries = [q for q in dashboard_queries() if not is_audiohook_query(q.expr)]
    assert len(queries) >= 10
    empty = []
    for query in queries:
        if not demo_stack.query(substitute(query.expr)):
            empty.append(query.name)
    assert not empty, f"panel queries without data against the demo: {empty}"


def test_dashboard_variables_find_values(demo_stack: Stack) -> None:
    for uid, name, selector in variable_selectors():
        expr = f"count({substitute(selector)})"
        assert demo_stack.query(expr), f"{uid}: variable ${name} ({selector}) has no series"
