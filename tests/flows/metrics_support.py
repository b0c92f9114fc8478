"""A `tailor run` subprocess serving its metrics endpoint, and reading that endpoint as
Prometheus does."""

from __future__ import annotations

import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import start_worker
from tests.flows.store_support import DEADLINE_S

#: A sample as (name, sorted label pairs).
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


@contextmanager
def running_worker(redis_url: str, config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`tailor run --config CONFIG` until the block ends, then SIGTERM (a clean stop)."""
    worker = start_worker(redis_url, config, log)
    try:
        yield worker
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def scrape(port: int) -> str:
    """The endpoint's text on 127.0.0.1:`port`, or "" while nothing answers there."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            return str(reply.read().decode())
    except (urllib.error.URLError, ConnectionError):
        return ""


def samples(text: str) -> dict[SeriesKey, float]:
    """Every sample of an exposition, by name and labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
