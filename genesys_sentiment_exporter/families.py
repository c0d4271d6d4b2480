"""Metric families built from their catalogue entry, pure: what the collector and each source's
`metrics()` share.

Apart from `metrics` (the collector, which yields to the event loop while it renders) so a session
core can build its families without importing asyncio.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import product
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)

from genesys_sentiment_exporter.catalogue import Family


def gauge(family: Family, value: float | None = None) -> GaugeMetricFamily:
    """An empty labelled gauge of `family`, or its one unlabelled sample."""
    if value is not None:
        return GaugeMetricFamily(family.name, family.help, value=value)
    return GaugeMetricFamily(family.name, family.help, labels=family.label_names)


def info(family: Family, value: dict[str, str] | None = None) -> InfoMetricFamily:
    """An empty labelled info family of `family`, or its one unlabelled sample."""
    metric = InfoMetricFamily(family.name, family.help, labels=None if value is not None else family.label_names)
    if value is not None:
        metric.add_metric([], value)
    return metric


def histogram(family: Family, buckets: list[tuple[str, float]], sum_value: float) -> HistogramMetricFamily:
    """An unlabelled histogram of `family` from cumulative (upper bound, count) buckets."""
    return HistogramMetricFamily(family.name, family.help, buckets=buckets, sum_value=sum_value)


def counter(
    family: Family,
    counts: Mapping[Any, float] | float,
    open_values: Iterable[tuple[str, ...]] = (),
) -> CounterMetricFamily:
    """A counter family with every known value of its closed labels present, at 0 until counted.

    `counts` is keyed by the label value (one label) or the tuple of them (several); the open
    labels' values are those counted plus `open_values`, each with every closed combination.
    """
    if not family.labels:
        assert not isinstance(counts, Mapping)
        return CounterMetricFamily(family.name, family.help, value=counts)
    assert isinstance(counts, Mapping)
    metric = CounterMetricFamily(family.name, family.help, labels=family.label_names)
    labels = family.labels
    opens = [i for i, label in enumerate(labels) if label.values is None]
    rows: dict[tuple[str, ...], float] = {}
    keyed = {(tuple(map(str, key)) if isinstance(key, tuple) else (str(key),)): value for key, value in counts.items()}
    combos = {tuple(key[i] for i in opens) for key in keyed} | set(open_values) if opens else {()}
    for combo in sorted(combos):
        for closed in product(*(label.known for label in labels if label.values is not None)):
            open_it, closed_it = iter(combo), iter(closed)
            rows[tuple(next(open_it) if label.values is None else next(closed_it) for label in labels)] = 0.0
    for key, value in keyed.items():
        rows[key] = rows.get(key, 0.0) + value
    for key, value in rows.items():
        metric.add_metric(list(key), value)
    return metric
