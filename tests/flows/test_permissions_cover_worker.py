"""The start-up permission check lists every command a real worker sends.

A worker drains events with a bad one among them, a block and an opt-out, while ``MONITOR``
records every command it sends, including those its Lua scripts run. Each must be among
`tailor.operators.redis.permissions.worker_needs`, or a least-privilege user would pass the start-up
check and then fail mid-run with NOPERM.
"""

from __future__ import annotations

import threading
from pathlib import Path

import redis

from tailor.flows.produce import produce
from tailor.operators.redis.control import request_block, request_forget
from tailor.operators.redis.keys import stream_key
from tailor.operators.redis.permissions import worker_needs
from tests.conftest import drain_worker

PREFIX = "cover"
PARTITIONS = 2
#: Commands with subcommands: ACL rules name them ``command|subcommand``.
CONTAINERS = {"xinfo", "script", "client", "acl", "config", "object"}
#: What redis-py sends when it opens a connection, before any command of the worker's.
HANDSHAKE = {"client|setinfo", "hello", "auth", "select"}


class Monitor(threading.Thread):
    """Records the ACL name of every command Redis runs until `stop` is set."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.seen: set[str] = set()
        self.ready = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        with self.client.monitor() as monitor:
            self.ready.set()
            while not self.stop.is_set():
                if monitor.connection.can_read(timeout=0.1):
                    self.seen.add(acl_name(monitor.next_command()["command"]))
        self.client.close()


def acl_name(command: str) -> str:
    words = command.lower().split()
    return f"{words[0]}|{words[1]}" if words[0] in CONTAINERS and len(words) > 1 else words[0]


def test_every_command_the_worker_sends_is_checked_at_start_up(
    redis_url: str, r: redis.Redis, data_dir: Path
) -> None:
    events = data_dir / "otto-sample" / "train_events.csv"
    assert produce(redis_url, events, prefix=PREFIX, partitions=PARTITIONS, progress=False) > 0
    r.xadd(stream_key(PREFIX, 0), {"payload": b"not json"})  # a dead letter
    request_block(r, PREFIX, "1", blocked=True)  # the blocklist the user script checks
    request_forget(r, PREFIX, "0", opt_out=True)  # an erasure, and an opt-out to replay
    monitor = Monitor(redis_url)
    monitor.start()
    assert monitor.ready.wait(timeout=10)
    try:
        drain_worker(redis_url, PREFIX, PARTITIONS)
    finally:
        monitor.stop.set()
        monitor.join(timeout=10)
    checked = {need.command for need in worker_needs(PREFIX, PARTITIONS)}
    sent = monitor.seen - HANDSHAKE
    assert sent <= checked, f"sent but not checked at start-up: {sorted(sent - checked)}"
    # the run went through every path: lag sampling, replay, scripts, erasure, dead letters
    assert {
        "xrange",
        "xinfo|stream",
        "smembers",
        "evalsha",
        "sadd",
        "del",
        "xdel",
        "xadd",
        "zadd",
    } <= sent
