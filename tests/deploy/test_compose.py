"""`deploy/compose.yaml` checked without Docker: the services, what they run (real `tailor`
commands through the image's entrypoint), their ports, the files they mount, and that
Prometheus and Grafana point at the services and files the stack really has."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from tailor.flows.cli_parser import build_parser
from tailor.flows.config import load_config
from tests.deploy.stack_support import (
    COMPOSE,
    DASHBOARD,
    DASHBOARD_PROVIDERS,
    DATASOURCES,
    DEPLOY,
    PROMETHEUS_CONFIG,
    RULES,
    dashboard,
    load_yaml,
    panels,
)

SERVICES = {"redis", "worker", "api", "prometheus", "grafana"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(load_yaml(COMPOSE))


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(compose["services"][name])


def published(svc: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port, from "HOST:CONTAINER" entries."""
    pairs = (str(p).split(":") for p in svc.get("ports", []))
    return {int(container): int(host) for host, container in pairs}


def bind_mounts(svc: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path, for the mounts of files in this repository."""
    mounts = {}
    for volume in svc.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith("."):
            mounts[target] = (DEPLOY / source).resolve()
    return mounts


def host_path(svc: dict[str, Any], container_path: str) -> Path:
    """Where a container path comes from in this repository, through the service's mounts."""
    wanted = PurePosixPath(container_path)
    for target, source in bind_mounts(svc).items():
        if wanted == PurePosixPath(target) or PurePosixPath(target) in wanted.parents:
            return source / wanted.relative_to(target)
    raise AssertionError(f"{container_path} is not mounted from the repository")


def entrypoint_args() -> list[str]:
    """The Dockerfile's ENTRYPOINT after the program (`tailor`): the global options."""
    dockerfile = (DEPLOY / service_build_context() / "Dockerfile").read_text()
    match = re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.MULTILINE)
    assert match, "the Dockerfile has no exec-form ENTRYPOINT"
    program, *args = json.loads(match.group(1))
    assert program == "tailor"
    return list(args)


def service_build_context() -> str:
    return str(load_yaml(COMPOSE)["services"]["worker"]["build"]["context"])


def subcommands() -> set[str]:
    parser = build_parser("")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    raise AssertionError("the tailor parser has no subcommands")


def parse_command(command: list[str]) -> argparse.Namespace:
    """The service's command as `tailor` parses it, behind the image's entrypoint."""
    try:
        return build_parser("").parse_args([*entrypoint_args(), *command])
    except SystemExit as exc:
        raise AssertionError(f"tailor refuses {command}") from exc


def test_the_stack_has_its_services_and_volumes(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES
    declared = set(compose.get("volumes", {}))
    for name, svc in compose["services"].items():
        for dependency in svc.get("depends_on", {}):
            assert dependency in SERVICES, (name, dependency)
        for volume in svc.get("volumes", []):
            source = str(volume).split(":")[0]
            assert source.startswith(".") or source in declared, (name, source)


def test_tailor_services_are_built_from_the_repository(compose: dict[str, Any]) -> None:
    worker, api = service(compose, "worker"), service(compose, "api")
    for svc in (worker, api):
        context = (DEPLOY / svc["build"]["context"]).resolve()
        assert (context / svc["build"]["dockerfile"]).is_file()
        assert (context / "pyproject.toml").is_file()
        assert svc["image"] == worker["image"]  # one image, built once
        assert svc["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"


def test_other_services_use_pinned_images(compose: dict[str, Any]) -> None:
    for name in ("redis", "prometheus", "grafana"):
        image = service(compose, name)["image"]
        assert ":" in image and not image.endswith(":latest"), (name, image)


def test_the_worker_runs_tailor_run_and_publishes_its_metrics_port(
    compose: dict[str, Any],
) -> None:
    worker = service(compose, "worker")
    args = parse_command(worker["command"])
    assert args.command == "run" and not args.until_drained
    # the image's settings are flows/defaults.toml: its metrics port is the one published
    assert args.config == Path("/etc/tailor/tailor.toml")
    port = load_config(env={}).metrics.port
    assert published(worker)[port] == port
    assert "/var/lib/tailor/.tailor" in [str(v).split(":")[1] for v in worker["volumes"]]


def test_the_api_runs_tailor_serve(compose: dict[str, Any]) -> None:
    api = service(compose, "api")
    assert api["command"][0] == "serve"
    port = int(api["command"][api["command"].index("--port") + 1])
    assert published(api)[port] == port
    if "serve" not in subcommands():
        pytest.skip("`tailor serve` is not in this tree yet (built on another branch)")
    args = parse_command(api["command"])
    assert args.command == "serve"


def test_prometheus_scrapes_the_services_and_loads_the_mounted_rules(
    compose: dict[str, Any],
) -> None:
    prometheus = service(compose, "prometheus")
    flags = dict(str(f).removeprefix("--").split("=", 1) for f in prometheus["command"])
    config_path = flags["config.file"]
    assert host_path(prometheus, config_path) == PROMETHEUS_CONFIG.resolve()
    config = load_yaml(PROMETHEUS_CONFIG)
    for rule_file in config["rule_files"]:
        in_container = PurePosixPath(config_path).parent / rule_file
        assert host_path(prometheus, str(in_container)) == RULES.resolve()
    targets = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in config["scrape_configs"]
    }
    metrics_port = load_config(env={}).metrics.port
    assert targets["tailor-worker"] == [f"worker:{metrics_port}"]
    api = service(compose, "api")
    api_port = api["command"][api["command"].index("--port") + 1]
    assert targets["tailor-api"] == [f"api:{api_port}"]
    assert 9090 in published(prometheus)


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(
    compose: dict[str, Any],
) -> None:
    grafana = service(compose, "grafana")
    assert host_path(grafana, "/etc/grafana/provisioning/datasources/prometheus.yml") == (
        DATASOURCES.resolve()
    )
    assert host_path(grafana, "/etc/grafana/provisioning/dashboards/tailor.yml") == (
        DASHBOARD_PROVIDERS.resolve()
    )
    (source,) = load_yaml(DATASOURCES)["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    (provider,) = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert host_path(grafana, provider["options"]["path"]) == DASHBOARD.parent.resolve()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path(grafana, home) == DASHBOARD.resolve()
    assert 3000 in published(grafana)
    board = dashboard()
    for panel in panels(board):
        uids = {panel["datasource"]["uid"], *(t["datasource"]["uid"] for t in panel["targets"])}
        assert uids == {source["uid"]}, panel["title"]
