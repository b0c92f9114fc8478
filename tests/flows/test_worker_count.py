"""The worker count routing depends on is known when the flow is built and checked when it
runs: `python -m bytewax.run -w 2` with a config saying one worker stops at once with one
line naming both counts, before anything is read, instead of routing updates to the wrong
workers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from bytewax.testing import cluster_main

from tailor.flows.config import load_config
from tailor.flows.runner import worker_count_mismatch
from tailor.flows.worker import build_redis_flow
from tailor.operators.redis.routing import WorkerCountMismatch

ROOT = Path(__file__).resolve().parents[2]


def test_config_counts_every_process_s_workers() -> None:
    config = load_config(env={})
    assert config.workers == 1
    config = config.with_value("cluster", "workers_per_process", 2)
    assert config.with_value("cluster", "addresses", ["a:1", "b:1", "c:1"]).workers == 6


def test_bytewax_run_with_another_worker_count_stops_with_one_line(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    config = tmp_path / "tailor.toml"
    config.write_text(
        '[redis]\nprefix = "wc"\n[metrics]\nport = 0\n[recovery]\nenabled = false\n'
        "[source]\nstop_when_drained = true\n"
    )
    env = {**os.environ, "REDIS_URL": redis_url, "TAILOR_CONFIG": str(config)}
    run = subprocess.run(
        [sys.executable, "-m", "bytewax.run", "tailor.flows.worker:get_flow", "-w", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    line = "the flow was built for 1 worker(s) (cluster.addresses x cluster.workers_per_process)"
    assert f"WorkerCountMismatch: cluster: {line} but Bytewax runs 2: set them to match" in (
        run.stderr
    )
    assert not r.keys("wc:*")  # nothing read, nothing written


def test_the_runner_finds_the_mismatch_under_bytewax_build_errors(redis_url: str) -> None:
    config = load_config(env={}).with_value("redis", "url", redis_url)
    config = config.with_value("recovery", "enabled", False)
    with pytest.raises(Exception) as raised:
        cluster_main(build_redis_flow(config), [], 0, worker_count_per_proc=2)
    assert not isinstance(raised.value, WorkerCountMismatch)  # Bytewax wraps it
    found = worker_count_mismatch(raised.value)
    assert isinstance(found, WorkerCountMismatch)
    assert "built for 1 worker(s)" in str(found) and "Bytewax runs 2" in str(found)
