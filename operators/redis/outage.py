"""Redis outages in the log: one line when Redis stops answering, a reminder while it stays
away, one line when it is back with how long it was gone.

The metrics (`tailor_redis_up`, `tailor_redis_errors_total`) show an outage to whoever
scrapes them; an operator reading the worker's log saw nothing before. Every Redis call the
worker retries already reports its outcome to `tailor.operators.redis.retry.mark_redis_up`, which
feeds one `OutageLog` per operation (the label of `tailor_redis_up`: ``read``, ``write``,
``erase``, ``deadletter``, ``control``, ``connect``), so a write that times out while reads
still work is reported as what it is. Each log is shared by the threads of one process
(one partition's success ends the outage for its operation).

>>> now = [0.0]
>>> outage = OutageLog("read", clock=lambda: now[0])
>>> outage.failed(ConnectionError("refused")), outage.failed(ConnectionError("refused"))
(True, False)
>>> now[0] = 61.0; outage.failed(ConnectionError("refused"))
True
>>> outage.answered()
61.0
>>> outage.answered() is None
True
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("tailor")

#: Seconds between two "still unreachable" reminders of one operation's outage.
REMINDER_INTERVAL_S = 60.0


class OutageLog:
    """The log lines of one operation's outages.

    :arg operation: what was being done (the `tailor_redis_up` label), named in every line.
    :arg clock: monotonic seconds; tests pass a fake one.
    :arg reminder_s: the least time between two lines about the same outage.
    """

    def __init__(
        self,
        operation: str,
        clock: Callable[[], float] = time.monotonic,
        reminder_s: float = REMINDER_INTERVAL_S,
    ) -> None:
        self.operation = operation
        self.clock = clock
        self.reminder_s = reminder_s
        self._lock = threading.Lock()
        self._since: float | None = None
        self._said_at = 0.0
        self._failures = 0

    def failed(self, exc: BaseException) -> bool:
        """Redis could not be reached; returns whether a line was logged."""
        with self._lock:
            now = self.clock()
            self._failures += 1
            if self._since is None:
                self._since = self._said_at = now
                log.warning(
                    "Redis unreachable (%s), retrying with backoff: %s: %s",
                    self.operation,
                    type(exc).__name__,
                    exc,
                )
                return True
            if now - self._said_at < self.reminder_s:
                return False
            self._said_at = now
            log.warning(
                "Redis still unreachable (%s) for %.0f s, %d failed attempts; last error %s: %s",
                self.operation,
                now - self._since,
                self._failures,
                type(exc).__name__,
                exc,
            )
            return True

    def answered(self) -> float | None:
        """Redis answered; returns how long it had been unreachable (None: it was not)."""
        if self._since is None:  # every successful call comes here: no lock when all is well
            return None
        with self._lock:
            if self._since is None:
                return None
            down_s = self.clock() - self._since
            log.info(
                "Redis back (%s) after %.1f s unreachable, %d failed attempts",
                self.operation,
                down_s,
                self._failures,
            )
            self._since, self._failures = None, 0
            return down_s


_LOGS: dict[str, OutageLog] = {}
_LOGS_LOCK = threading.Lock()


def outage_log(operation: str) -> OutageLog:
    """The process's `OutageLog` for `operation`, made on first use."""
    found = _LOGS.get(operation)
    if found is not None:
        return found
    with _LOGS_LOCK:
        return _LOGS.setdefault(operation, OutageLog(operation))
