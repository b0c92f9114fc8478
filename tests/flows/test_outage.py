"""Redis goes away mid-run and comes back: the worker neither dies nor drops output.

A throw-away redis-server with an append-only file is stopped (SIGTERM, the AOF is flushed)
while the worker is busy with a MovieLens slice, then started again on the same port with its
data, the realistic outage. The in-process worker retries its writes for ever (the default)
and backs off its reads; once Redis is back, the final state must equal that of an
uninterrupted run of the same input, byte for byte; and the log says once per operation that
Redis was unreachable, then that it was back and after how long.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from bytewax.testing import run_main
from prometheus_client import REGISTRY

from tailor.flows.config import Config, load_config
from tailor.flows.produce import produce
from tailor.flows.worker import build_redis_flow
from tailor.operators import lifecycle
from tailor.operators.redis.keys import recs_key, updates_stream, user_key
from tests.conftest import RedisServer

EVENTS = 4_000
BATCH = 50
REFERENCE, OUTAGE = "ref", "out"
DEADLINE_S = 120.0


@pytest.fixture
def server() -> Iterator[RedisServer]:
    srv = RedisServer(persistent=True)
    srv.start()
    yield srv
    srv.stop()
    shutil.rmtree(srv.dir, ignore_errors=True)


def config(url: str, prefix: str, until_drained: bool) -> Config:
    cfg = load_config(env={})
    for section, key, value in [
        ("redis", "url", url),
        ("redis", "prefix", prefix),
        ("source", "partitions", 1),  # one partition: the run is deterministic
        ("source", "batch_size", BATCH),
        ("source", "stop_when_drained", until_drained),
        ("output", "write_backoff_cap_s", 0.2),
    ]:
        cfg = cfg.with_value(section, key, value)
    return cfg


def redis_errors() -> float:
    """All of `tailor_redis_errors_total`, whatever the operation and error class."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "tailor_redis_errors"
        for sample in metric.samples
        if sample.name == "tailor_redis_errors_total"
    )


def versions(client: redis.Redis, prefix: str, users: list[str]) -> list[bytes | None]:
    pipe = client.pipeline(transaction=False)
    for user in users:
        pipe.hget(user_key(prefix, user), "version")
    return list(pipe.execute())


def reference_users(client: redis.Redis) -> list[str]:
    head = f"{REFERENCE}:user:".encode()
    return sorted(key[len(head) :].decode() for key in client.scan_iter(match=head + b"*"))


class Outage(threading.Thread):
    """Stops Redis once the worker has written something, waits until the worker has seen the
    outage, restarts Redis, then asks the worker to stop once its output has converged."""

    def __init__(self, server: RedisServer, users: list[str], want: list[bytes | None]) -> None:
        super().__init__(daemon=True)
        self.server, self.users, self.want = server, users, want
        self.error: BaseException | None = None
        self.errors_in_outage = 0.0
        self.written_before_outage = 0

    def run(self) -> None:
        try:
            self._outage()
            self._until_converged()
        except BaseException as exc:  # reported by the test, never swallowed
            self.error = exc
        finally:
            lifecycle.request_stop()

    def _outage(self) -> None:
        client = redis.Redis.from_url(self.server.url)
        first = client.xread({updates_stream(OUTAGE): "0-0"}, count=1, block=int(DEADLINE_S * 1000))
        assert first, "the worker wrote nothing"
        self.written_before_outage = client.xlen(updates_stream(OUTAGE))
        client.close()
        before = redis_errors()
        self.server.stop()
        deadline = time.monotonic() + DEADLINE_S
        while redis_errors() == before:  # the worker must have hit the outage
            assert time.monotonic() < deadline, "the worker never noticed the outage"
            time.sleep(0.01)
        self.errors_in_outage = redis_errors() - before
        self.server.start()

    def _until_converged(self) -> None:
        client = redis.Redis.from_url(self.server.url)
        last: Any = "0-0"
        deadline = time.monotonic() + DEADLINE_S
        while versions(client, OUTAGE, self.users) != self.want:
            assert time.monotonic() < deadline, "the output never converged"
            reply: Any = client.xread({updates_stream(OUTAGE): last}, count=10_000, block=1000)
            if reply:
                last = reply[0][1][-1][0]
        client.close()


def outage_lines(caplog: pytest.LogCaptureFixture) -> tuple[Counter[str], Counter[str]]:
    """Per operation, the "unreachable" and the "back after N s" lines, counted from the first
    "unreachable" one (an outage an earlier test left open may end before it)."""
    said = [r.getMessage() for r in caplog.records if r.name == "tailor"]
    start = next((i for i, m in enumerate(said) if m.startswith("Redis unreachable")), len(said))
    down, back = Counter[str](), Counter[str]()
    for message in said[start:]:
        if found := re.match(r"Redis unreachable \((\w+)\), retrying with backoff: ", message):
            down[found[1]] += 1
        if found := re.match(r"Redis back \((\w+)\) after \d+\.\d s unreachable", message):
            back[found[1]] += 1
    return down, back


def test_worker_rides_out_a_redis_restart(
    server: RedisServer, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tailor")
    ratings = data_dir / "movielens-latest-small" / "ratings.csv"
    for prefix in (REFERENCE, OUTAGE):
        published = produce(
            server.url, ratings, prefix=prefix, partitions=1, limit=EVENTS, progress=False
        )
        assert published == EVENTS
    run_main(build_redis_flow(config(server.url, REFERENCE, until_drained=True)))
    client = redis.Redis.from_url(server.url)
    users = reference_users(client)
    want = versions(client, REFERENCE, users)
    assert len(users) > 10 and sum(int(v or 0) for v in want) == EVENTS  # version = events

    outage = Outage(server, users, want)
    lifecycle.reset()
    outage.start()
    try:
        run_main(build_redis_flow(config(server.url, OUTAGE, until_drained=False)))
    finally:
        lifecycle.request_stop()
        outage.join(timeout=DEADLINE_S)
        lifecycle.reset()
    if outage.error is not None:
        raise outage.error
    assert outage.errors_in_outage > 0
    assert outage.written_before_outage > 0

    client = redis.Redis.from_url(server.url)  # the restarted server
    for user in users:
        assert client.hgetall(user_key(OUTAGE, user)) == client.hgetall(
            user_key(REFERENCE, user)
        ), user
        assert client.get(recs_key(OUTAGE, user)) == client.get(recs_key(REFERENCE, user)), user
    for ref_key in client.scan_iter(match=f"{REFERENCE}:segment:*"):
        out_key = OUTAGE + ref_key.decode()[len(REFERENCE) :]
        assert client.smembers(out_key) == client.smembers(ref_key), out_key
    assert REGISTRY.get_sample_value("tailor_redis_up", {"operation": "write"}) == 1.0
    assert REGISTRY.get_sample_value("tailor_redis_up", {"operation": "read"}) == 1.0
    client.close()
    down, back = outage_lines(caplog)
    assert down and set(down.values()) == {1}, down  # once per operation that saw it
    assert back == down, (down, back)
