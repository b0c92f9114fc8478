"""Bounded state: a stream of distinct one-visit users does not grow the worker for ever.

`tailor run` in a subprocess with a short state TTL takes USERS one-event users; its peak RSS
(VmHWM) stays under a bound, and its active-users gauge, scraped from its own metrics endpoint,
falls back to zero once the TTL has passed. The whole-million run is
`benchmarks/bounded_state.py`; this one keeps CI short.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import redis

from tests.conftest import free_port

USERS = 60_000
PARTITIONS = 4
#: Measured: peak RSS 416 MB with 30,000 users and 435 MB with 120,000 (about 16,000 alive at
#: once with a 3 s TTL): flat in the number of users seen. With every model since, 474-499 MB
#: (2026-12-04, six runs) and once 529 in a full CI run, hence 580. Kept state that leaked
#: even 2 KB per user would add 120 MB here and break the bound.
RSS_BOUND_MB = 580


def scrape(port: int, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            text = reply.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def publish(r: redis.Redis) -> None:
    from tailor.operators.redis.keys import stream_key
    from tailor.operators.redis.routing import partition_for

    pipe = r.pipeline(transaction=False)
    for n in range(USERS):
        user = f"visitor-{n}"
        event = {"event_id": f"v{n}", "user_id": user, "type": "page_view", "ts": 1_700_000_000 + n}
        pipe.xadd(
            stream_key("bounded", partition_for(user, PARTITIONS)), {"payload": orjson.dumps(event)}
        )
        if n % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def test_one_visit_users_leave_memory_after_the_ttl(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    publish(r)
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "TAILOR_REDIS_PREFIX": "bounded",
        "TAILOR_SOURCE_PARTITIONS": str(PARTITIONS),
        "TAILOR_STATE_TTL_S": "3.0",
        "TAILOR_METRICS_PORT": str(port),
        "TAILOR_RECOVERY_ENABLED": "false",
        "TAILOR_RECOVERY_DIR": str(tmp_path / "recovery"),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "tailor.flows.cli", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        peak_users, accepted = 0.0, 0.0
        deadline = time.monotonic() + 600
        while accepted < USERS and time.monotonic() < deadline:
            accepted = scrape(port, 'tailor_events_total{outcome="accepted",type="page_view"}') or 0
            peak_users = max(peak_users, scrape(port, "tailor_active_users") or 0)
            time.sleep(0.5)  # sampling a running process's gauges, not synchronising
        assert accepted == USERS
        active = scrape(port, "tailor_active_users")
        while active and time.monotonic() < deadline:
            time.sleep(0.5)
            active = scrape(port, "tailor_active_users")
        assert active == 0
        outputs = scrape(port, "tailor_active_output_users")  # the outputs step forgets them too
        while outputs and time.monotonic() < deadline:
            time.sleep(0.5)
            outputs = scrape(port, "tailor_active_output_users")
        assert outputs == 0
        assert scrape(port, "tailor_expired_users_total") == USERS
        rss = peak_rss_mb(worker.pid)
        assert rss < RSS_BOUND_MB, f"peak RSS {rss:.0f} MB"
        assert peak_users > 0
    finally:
        worker.terminate()
        worker.wait(timeout=60)
