"""The files of `deploy/` as the tests read them, and the Prometheus binaries they run.

Debian's `prometheus` package ships `prometheus` and `promtool`; CI installs it and sets
`TAILOR_REQUIRE_PROMETHEUS=1`, so there a missing binary fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "rules_test.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "tailor.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "tailor.yml"

#: Metric names in PromQL: Tailor's own (`tailor_...`) and recorded ones (`tailor:...`).
METRIC_NAME = re.compile(r"\btailor[_:][a-z0-9_:]*[a-z0-9_]")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    found: list[dict[str, Any]] = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]


def recorded_names() -> set[str]:
    return {
        rule["record"]
        for group in load_yaml(RULES)["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def rule_expressions() -> list[str]:
    return [rule["expr"] for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def require_binary(name: str) -> str:
    """The path of `name` (`prometheus`, `promtool`); skip when absent, unless CI requires it."""
    found = shutil.which(name)
    if found:
        return found
    if os.environ.get("TAILOR_REQUIRE_PROMETHEUS"):
        pytest.fail(f"{name} is not installed (Debian: apt-get install prometheus)")
    pytest.skip(f"{name} is not installed (Debian: apt-get install prometheus)")
