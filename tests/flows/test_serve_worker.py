"""`/readyz` follows a real worker: ready while `tailor run` beats, not once it is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from tailor.operators.redis.keys import heartbeat_key
from tests.flows.serve_support import Served, serving

P = "apiw"


def start_run(redis_url: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAILOR_")}
    env.update(
        REDIS_URL=redis_url,
        TAILOR_REDIS_PREFIX=P,
        TAILOR_METRICS_PORT="0",
        TAILOR_RECOVERY_ENABLED="false",
        TAILOR_OUTPUT_HEARTBEAT_EVERY_S="0.2",
    )
    with (tmp_path / "run.log").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tailor.flows.cli", "run"], env=env, stdout=out, stderr=out
        )


def wait_status(served: Served, status: int, worker: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + 90
    while served.get("/readyz")[0] != status:
        assert worker is None or worker.poll() is None, "the worker exited"
        assert time.monotonic() < deadline, f"/readyz never answered {status}"
        time.sleep(0.05)  # polling a condition with a deadline


def test_readyz_follows_a_real_workers_heartbeat(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    with serving(redis_url, P, tmp_path / "serve.log") as served:
        assert served.get("/readyz")[0] == 503
        worker = start_run(redis_url, tmp_path)
        try:
            wait_status(served, 200, worker)
            assert r.exists(heartbeat_key(P, 0)) == 1
            worker.send_signal(signal.SIGKILL)  # no clean stop: the beat just stops
            worker.wait(timeout=30)
            wait_status(served, 503, None)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=30)
