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

_STOP = threading.Event()


def request_stop() -> None:
    """Ask every source in this process to end its partitions at the next read."""
    _STOP.set()


def stop_requested() -> bool:
    """Whether a stop was requested since the last `reset()`."""
    return _STOP.is_set()


def reset() -> None:
    """Forget a stop request: tests and a CLI that runs several flows in one process need this."""
    _STOP.clear()
