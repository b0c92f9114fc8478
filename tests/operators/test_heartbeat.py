"""The worker's heartbeat beats while the dataflow turns over, and stops when a step is stuck.

A real Bytewax flow in this process, a real Redis: a step that blocks holds its worker's one
thread, and with it the heartbeat input (`tailor.operators.redis.heartbeat`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import bytewax.operators as op
import orjson
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.testing import TestingSink, run_main

from tailor.flows.config import load_config
from tailor.flows.worker import build_heartbeat
from tailor.operators import lifecycle
from tailor.operators.redis.heartbeat import Heartbeat
from tailor.operators.redis.keys import heartbeat_key

P = "hb"
KEY = heartbeat_key(P, 0)


class _Gate(StatelessSourcePartition[int]):
    def __init__(self, go: threading.Event) -> None:
        self.go, self.sent = go, False

    def next_batch(self) -> list[int]:
        if lifecycle.stop_requested():
            raise StopIteration
        if self.go.is_set() and not self.sent:
            self.sent = True
            return [1]
        return []

    def next_awake(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=0.02)


class Gate(DynamicSource[int]):
    """One item once `go` is set; ends at a stop request, like the worker's sources."""

    def __init__(self, go: threading.Event) -> None:
        self.go = go

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Gate:
        return _Gate(self.go)


@pytest.fixture(autouse=True)
def fresh_lifecycle() -> Iterator[None]:
    lifecycle.reset()
    yield
    lifecycle.reset()


def running(redis_url: str, every_s: float, go: threading.Event, release: threading.Event) -> Any:
    """The flow in a thread: the gate's item blocks in a step until `release`."""
    flow = Dataflow("heartbeat_test")
    items = op.map("block", op.input("inp", flow, Gate(go)), lambda x: (release.wait(60), x)[1])
    beats = op.input("heartbeat", flow, Heartbeat(redis_url, P, every_s))
    op.output("out", op.merge("all", items, beats), TestingSink([]))
    thread = threading.Thread(target=run_main, args=(flow,), daemon=True)
    thread.start()
    return thread


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)  # polling a condition with a deadline


def test_the_beat_stops_while_a_step_is_stuck_and_resumes(redis_url: str, r: redis.Redis) -> None:
    go, release = threading.Event(), threading.Event()
    thread = running(redis_url, 0.2, go, release)
    try:
        wait_for(lambda: r.exists(KEY) == 1, "no heartbeat")
        beat = orjson.loads(r.get(KEY) or b"{}")
        assert (beat["worker"], beat["workers"]) == (0, 1)
        assert abs(beat["at"] - time.time()) < 5
        assert 0 < r.pttl(KEY) <= 600  # three periods
        go.set()  # the item enters the blocking step: the worker's thread is held there
        wait_for(lambda: r.exists(KEY) == 0, "the heartbeat went on while the flow was stuck")
        release.set()
        wait_for(lambda: r.exists(KEY) == 1, "the heartbeat did not come back")
    finally:
        release.set()
        lifecycle.request_stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_a_stop_ends_the_beat_at_once_and_deletes_it(redis_url: str, r: redis.Redis) -> None:
    """Not at the next beat: SIGTERM must not wait a heartbeat period (here 60 s)."""
    go, release = threading.Event(), threading.Event()
    thread = running(redis_url, 60.0, go, release)  # a TTL of 180 s: no expiry in this test
    try:
        wait_for(lambda: r.exists(KEY) == 1, "no heartbeat")
    finally:
        lifecycle.request_stop()
        thread.join(timeout=20)
    assert not thread.is_alive(), "the flow waited for the heartbeat's next period"
    assert r.exists(KEY) == 0


def test_only_a_run_that_goes_on_until_stopped_beats() -> None:
    config = load_config(env={"REDIS_URL": "redis://localhost:1/0"})
    beat = build_heartbeat(config)
    assert isinstance(beat, Heartbeat) and beat.every_s == config.output.heartbeat_every_s
    drained = config.with_value("source", "stop_when_drained", True)
    assert build_heartbeat(drained) is None
    assert build_heartbeat(config, ["events.jsonl"]) is None  # type: ignore[list-item]
    assert build_heartbeat(config.with_value("output", "heartbeat_every_s", 0.0)) is None
