"""The outage log: one line when Redis goes, a reminder at most every interval while it stays
away, one line when it is back with how long it was gone. A fake clock, no sleeps."""

from __future__ import annotations

import logging

import pytest
import redis

from tailor.operators.redis.outage import REMINDER_INTERVAL_S, OutageLog, outage_log
from tailor.operators.redis.retry import mark_redis_up


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tailor"]


def test_an_outage_is_logged_once_reminded_at_a_bounded_rate_and_ended_with_its_length(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tailor")
    clock = FakeClock()
    outage = OutageLog("write", clock=clock, reminder_s=30.0)
    refused = redis.ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")
    for _ in range(50):  # a burst of retries within the first 30 s: one line
        outage.failed(refused)
        clock.now += 0.5
    assert lines(caplog) == [
        "Redis unreachable (write), retrying with backoff: ConnectionError: "
        "Error 111 connecting to 127.0.0.1:6390. Connection refused."
    ]
    assert caplog.records[0].levelno == logging.WARNING
    for _ in range(70):  # 25 s to 94 s, one attempt a second: a reminder at 30, 60, 90 s
        outage.failed(redis.TimeoutError("Timeout reading from socket"))
        clock.now += 1.0
    assert lines(caplog)[1:] == [
        f"Redis still unreachable (write) for {down} s, {attempts} failed attempts; "
        "last error TimeoutError: Timeout reading from socket"
        for down, attempts in ((30, 56), (60, 86), (90, 116))
    ]
    clock.now += 5.5
    assert outage.answered() == pytest.approx(100.5)
    assert lines(caplog)[-1] == "Redis back (write) after 100.5 s unreachable, 120 failed attempts"
    assert outage.answered() is None  # already back: nothing more to say
    assert len(lines(caplog)) == 5


def test_a_second_outage_is_announced_again(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tailor")
    clock = FakeClock()
    outage = OutageLog("read", clock=clock)
    assert outage.failed(redis.ConnectionError("refused"))
    clock.now += 2
    assert outage.answered() == 2
    clock.now += 1  # well within the reminder interval, but a new outage
    assert outage.failed(redis.ConnectionError("refused again"))
    clock.now += 3
    assert outage.answered() == 3
    assert [line.split(",")[0].split(" after")[0] for line in lines(caplog)] == [
        "Redis unreachable (read)",
        "Redis back (read)",
        "Redis unreachable (read)",
        "Redis back (read)",
    ]


def test_the_default_reminder_interval_is_a_minute() -> None:
    clock = FakeClock()
    outage = OutageLog("deadletter", clock=clock)
    assert outage.failed(redis.ConnectionError("refused"))
    clock.now += REMINDER_INTERVAL_S - 0.1
    assert not outage.failed(redis.ConnectionError("refused"))
    clock.now += 0.1
    assert outage.failed(redis.ConnectionError("refused"))
    assert REMINDER_INTERVAL_S == 60.0


def test_mark_redis_up_feeds_the_log_of_its_operation(caplog: pytest.LogCaptureFixture) -> None:
    """What the source and the sinks call on every attempt: unreachable errors start an
    outage; an answer, even an error reply, ends it."""
    caplog.set_level(logging.INFO, logger="tailor")
    operation = "test-mark-redis-up"
    mark_redis_up(operation)  # up: nothing to say
    mark_redis_up(operation, redis.BusyLoadingError("Redis is loading the dataset in memory"))
    mark_redis_up(operation, redis.ConnectionError("refused"))
    mark_redis_up(operation, redis.ResponseError("OOM command not allowed"))  # it answered
    said = lines(caplog)
    assert len(said) == 2
    assert said[0].startswith(f"Redis unreachable ({operation}), retrying with backoff: Busy")
    assert said[1].startswith(f"Redis back ({operation}) after ")
    assert said[1].endswith("2 failed attempts")
    assert outage_log(operation) is outage_log(operation)
