"""Metric names follow Prometheus conventions, and no label can carry user text."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from serving import metrics

ALLOWED_LABELS = {"endpoint", "tier", "status", "rule", "version", "profile", "list",
                  "action", "result", "event", "adapter", "channel", "outcome", "mode",
                  "replacement"}


def _all_metrics() -> list:
    return [v for v in vars(metrics).values() if isinstance(v, Counter | Gauge | Histogram)]


def test_one_prefix_base_units_and_total_only_on_counters() -> None:
    found = _all_metrics()
    assert len(found) >= 15
    for metric in found:
        name = metric._name
        assert name.startswith("onlycs_"), name
        assert not name.endswith("_total"), f"{name}: prometheus_client adds _total itself"
        if isinstance(metric, Histogram):
            assert name.endswith("_seconds"), name
        for unit in ("_ms", "_milliseconds", "_kb", "_mb", "_percent"):
            assert unit not in name, name
        assert set(metric._labelnames) <= ALLOWED_LABELS, (name, metric._labelnames)
