"""A process-wide request to stop reading input.

SIGTERM must not kill a worker mid-batch: the CLI's signal handler calls `request_stop()`,
each source partition ends (raises StopIteration) at its next read, and the dataflow then
completes normally, so Bytewax flushes the sinks and takes its final snapshot. A
`threading.Event` because the handler and the worker threads share it.

>>> reset(); stop_requested()
False
>>> request_stop(); stop_requested()
True
>>> reset()
"""

from __future__ import annotations

import threading
import time

_STOP = threading.Event()

#: How often `sleep` looks at the stop request: the longest a stop waits for a backoff.
SLEEP_TICK_S = 0.1


def request_stop() -> None:
    """Ask every source in this process to end its partitions at the next read."""
    _STOP.set()


def stop_requested() -> bool:
    """Whether a stop was requested since the last `reset()`."""
    return _STOP.is_set()


def reset() -> None:
    """Forget a stop request: tests and a CLI that runs several flows in one process need this."""
    _STOP.clear()


def sleep(seconds: float) -> None:
    """Sleep, but wake within `SLEEP_TICK_S` of a stop request: a backoff of several seconds
    must not hold up SIGTERM.

    Short `time.sleep`s, not `Event.wait`: the signal handler sets the event on the thread
    that would be waiting on it, and `Event.wait` holds a lock the handler then needs.
    """
    deadline = time.monotonic() + seconds
    while not _STOP.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(SLEEP_TICK_S, left))
