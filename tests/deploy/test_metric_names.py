"""Every metric name the operator reads (README, rules, dashboard) is one Tailor exports,
so a rename cannot leave a panel, an alert or the docs on a series that no longer exists;
and the dashboard has the panels the README promises."""

from __future__ import annotations

import re

from prometheus_client import REGISTRY

import tailor.operators.metrics  # noqa: F401  (registers every metric)
from tests.deploy.stack_support import (
    METRIC_NAME,
    ROOT,
    dashboard,
    panel_queries,
    recorded_names,
    rule_expressions,
)

#: Series the worker's endpoint adds at scrape time from `tailor resegment`'s result
#: (`tailor.flows.resegment_metrics`): absent from the registry until Redis holds one.
RESEGMENT = {
    "tailor_resegment_ari",
    "tailor_resegment_suggested_segments",
    "tailor_resegment_users",
    "tailor_resegment_timestamp_seconds",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def exported() -> set[str]:
    """Every series name the registry can expose (labelled metrics with no series yet too)."""
    names = set(RESEGMENT)
    for family in REGISTRY.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("", *HISTOGRAM_SUFFIXES))
        else:
            names.add(family.name)
    return names


def names_in(text: str) -> set[str]:
    return {name for name in METRIC_NAME.findall(text) if ":" not in name}


def readme_metrics_paragraph() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"\*\*Metrics\*\*.*?\n\n", readme, re.DOTALL)
    assert match, "the README has no **Metrics** paragraph"
    return match.group(0)


def families() -> set[str]:
    """Tailor's metric names as a table lists them: counters with `_total`, histograms bare."""
    return {
        name
        for name in exported()
        if name.startswith("tailor_") and not name.endswith(HISTOGRAM_SUFFIXES)
    }


def test_the_readme_names_only_exported_metrics() -> None:
    named = names_in(readme_metrics_paragraph())
    assert len(named) >= 5
    assert named <= exported(), named - exported()


def test_the_deploy_readme_table_lists_every_metric() -> None:
    table = (ROOT / "deploy" / "README.md").read_text().split("## Metrics", 1)[1]
    rows = "\n".join(line.split("|")[1] for line in table.splitlines() if line.startswith("| `"))
    assert names_in(rows) == families()


def test_rules_and_dashboard_read_only_exported_or_recorded_series() -> None:
    expressions = rule_expressions() + [expr for _title, expr in panel_queries(dashboard())]
    used = set().union(*(METRIC_NAME.findall(expr) for expr in expressions))
    recorded = recorded_names()
    raw = {name for name in used if ":" not in name}
    assert raw <= exported(), raw - exported()
    assert {name for name in used if ":" in name} <= recorded


def test_the_dashboard_has_the_promised_panels() -> None:
    titles = {title for title, _expr in panel_queries(dashboard())}
    assert titles >= {
        "Throughput",
        "Source lag",
        "Event to Redis latency",
        "Dead letters by reason",
        "Segment sizes",
        "Live quality by variant",
        "Snapshot time",
    }
    quantiles = [e for t, e in panel_queries(dashboard()) if t == "Event to Redis latency"]
    assert [q.split(":")[-1] for q in quantiles] == ["p50_5m", "p95_5m", "p99_5m"]
    quality = " ".join(e for t, e in panel_queries(dashboard()) if t == "Live quality by variant")
    assert "recall" in quality and "ndcg" in quality
