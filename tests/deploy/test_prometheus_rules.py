"""The Prometheus files as Prometheus reads them: `promtool check` on the config and rules,
and `promtool test rules` on the unit tests next to them (every alert firing and not firing).
"""

from __future__ import annotations

import subprocess

from tests.deploy.stack_support import (
    PROMETHEUS_CONFIG,
    RULES,
    RULES_TEST,
    load_yaml,
    require_binary,
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *args],
        cwd=RULES.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_rules_are_valid() -> None:
    done = promtool("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr


def test_config_is_valid_and_loads_the_rules() -> None:
    done = promtool("check", "config", PROMETHEUS_CONFIG.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Checking {RULES.name}" in done.stdout


def test_rule_unit_tests_pass() -> None:
    done = promtool("test", "rules", RULES_TEST.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def _alerts_seen(firing: bool) -> set[str]:
    tests = load_yaml(RULES_TEST)["tests"]
    return {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if bool(case["exp_alerts"]) == firing
    }


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    alerts = {
        rule["alert"]
        for group in load_yaml(RULES)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert alerts >= {
        "TailorSourceLagGrowing",
        "TailorDeadLettersHigh",
        "TailorRedisUnreachable",
        "TailorEventToRedisSlow",
        "TailorRecallDropped",
        "TailorWorkerDown",
        "TailorWorkerAbsent",
    }
    assert _alerts_seen(firing=True) == alerts
    assert _alerts_seen(firing=False) == alerts
