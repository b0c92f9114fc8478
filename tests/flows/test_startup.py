"""`tailor run` started while Redis is down or stalled waits for it, says so in its log once,
and says when Redis is back; then it works as usual and exits 0. SIGTERM ends the wait.

The worker is a real `tailor run` process. Events are published before Redis goes away
(it keeps them in its append-only file), so a `--until-drained` worker cannot find the
streams empty before the test has published: there is no race to lose.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tailor.flows.produce import produce
from tests.conftest import RedisServer

PREFIX = "boot"
DEADLINE_S = 120.0
EVENTS = "otto-sample/train_events.csv"  # 20 users; user 0 has 276 events


class Worker:
    """A `tailor run` process whose stderr goes to a file the test can read while it runs."""

    def __init__(self, folder: Path, url: str, *args: str) -> None:
        config = folder / "tailor.toml"
        config.write_text(
            f'[redis]\nprefix = "{PREFIX}"\n[metrics]\nport = 0\n[recovery]\nenabled = false\n'
        )
        self.log = folder / "worker.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tailor.flows.cli", "--config", str(config), "run", *args],
                env={**os.environ, "REDIS_URL": url},
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_line(self, pattern: str) -> None:
        """Poll the log until a line matches `pattern`; the worker must still be running."""
        deadline = time.monotonic() + DEADLINE_S
        while not re.search(pattern, self.stderr(), re.MULTILINE):
            assert self.proc.poll() is None, f"worker exited early:\n{self.stderr()[-3000:]}"
            assert time.monotonic() < deadline, f"no line {pattern!r}:\n{self.stderr()[-3000:]}"
            time.sleep(0.05)  # polling a log file for a condition, with a deadline

    def finish(self) -> int:
        return self.proc.wait(timeout=DEADLINE_S)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def server() -> Iterator[RedisServer]:
    srv = RedisServer(persistent=True)
    srv.start()
    yield srv
    if srv.proc is not None:
        srv.proc.send_signal(signal.SIGCONT)  # a stopped process ignores SIGTERM until then
    srv.stop()
    shutil.rmtree(srv.dir, ignore_errors=True)


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(url: str, *args: str) -> Worker:
        started.append(Worker(tmp_path, url, *args))
        return started[-1]

    yield start
    for worker in started:
        worker.kill()


def publish(server: RedisServer, data_dir: Path) -> None:
    assert produce(server.url, data_dir / EVENTS, prefix=PREFIX, progress=False) > 0


def assert_processed(server: RedisServer) -> None:
    client = redis.Redis.from_url(server.url)
    assert sum(1 for _ in client.scan_iter(match=f"{PREFIX}:user:*")) == 20
    assert client.hget(f"{PREFIX}:user:0", "version") == b"276"
    client.close()


def assert_one_outage_logged(log: str, error: str) -> None:
    """One line when the wait starts, naming the error; one when Redis answered, with how long
    it was away; no traceback, no Rust panic."""
    unreachable = re.findall(r"Redis unreachable \(connect\).*", log)
    assert len(unreachable) == 1, log[-3000:]
    assert error in unreachable[0]
    assert len(re.findall(r"Redis back \(connect\) after \d+\.\d s unreachable", log)) == 1, log
    assert "Traceback" not in log and "panicked" not in log, log[-3000:]


def test_run_waits_for_a_redis_that_is_not_up_yet(
    server: RedisServer, data_dir: Path, worker_factory: Callable[..., Worker]
) -> None:
    publish(server, data_dir)
    server.stop()  # the events are in its append-only file
    worker = worker_factory(server.url, "--until-drained")
    worker.wait_for_line(r"Redis unreachable \(connect\)")
    server.start()
    assert worker.finish() == 0, worker.stderr()[-3000:]
    assert_processed(server)
    assert_one_outage_logged(worker.stderr(), "Connection refused")


def test_run_waits_for_a_stalled_redis(
    server: RedisServer, data_dir: Path, worker_factory: Callable[..., Worker]
) -> None:
    """A SIGSTOPped Redis accepts connections and never answers: a timeout, then a wait."""
    publish(server, data_dir)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)
    try:
        worker = worker_factory(server.url, "--until-drained")
        worker.wait_for_line(r"Redis unreachable \(connect\)")
    finally:
        server.proc.send_signal(signal.SIGCONT)
    assert worker.finish() == 0, worker.stderr()[-3000:]
    assert_processed(server)
    assert_one_outage_logged(worker.stderr(), "TimeoutError")


def test_sigterm_ends_the_wait_for_redis(
    server: RedisServer, worker_factory: Callable[..., Worker]
) -> None:
    server.stop()
    worker = worker_factory(server.url)  # no --until-drained: a long-lived worker
    worker.wait_for_line(r"Redis unreachable \(connect\)")
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.finish() == 0, worker.stderr()[-3000:]
    assert "stopped before Redis answered: nothing was read" in worker.stderr()
    assert "Traceback" not in worker.stderr()
