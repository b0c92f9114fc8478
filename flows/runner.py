"""Running the worker: metrics endpoint, signals, and the Bytewax runtime.

SIGTERM and SIGINT do not kill the dataflow mid-batch: they ask the sources to end their
partitions (`tailor.operators.lifecycle`), so in-flight batches reach Redis and Bytewax finishes
the run normally. Before the dataflow starts, the worker waits for Redis (SIGTERM ends that
wait too) and checks its permissions (`tailor.flows.preflight`).
"""

from __future__ import annotations

import gc
import logging
import signal
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import redis
from bytewax.run import cli_main
from prometheus_client import REGISTRY, start_http_server

from tailor.flows.config import Config, ConfigError
from tailor.flows.preflight import prepare_redis
from tailor.flows.recovery import describe, recovery_settings
from tailor.flows.rescale import base_loader
from tailor.flows.resegment_metrics import ResegmentCollector
from tailor.flows.store import release_after_run, take_for_run
from tailor.flows.worker import build_redis_flow
from tailor.operators import lifecycle
from tailor.operators.redis.routing import WorkerCountMismatch

log = logging.getLogger("tailor")


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    log.info("signal %s received: draining and stopping", signal.Signals(signum).name)
    lifecycle.request_stop()


def install_signal_handlers() -> None:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def start_metrics(config: Config, fallback_to_any_port: bool = False) -> str | None:
    """Serve Prometheus metrics when a port is configured; returns the URL.

    A taken port is a configuration error for the worker (its scrape target would be
    wrong); the demo instead takes any free port, so a first run never fails on it.
    """
    port = config.metrics.port
    if port == 0:
        return None
    try:
        server, _thread = start_http_server(port)
    except OSError as exc:
        if not fallback_to_any_port:
            raise ConfigError(f"metrics.port: cannot listen on {port} ({exc.strerror})") from exc
        server, _thread = start_http_server(0)
    return f"http://localhost:{server.server_port}/metrics"


#: Young-generation GC threshold for the worker (CPython's default is 700). The worker
#: allocates a few small objects per event and keeps few cycles, so the default collects far
#: too often (docs/decisions/0022-worker-gc-threshold.md). Older generations keep their
#: defaults, so cyclic garbage is still reclaimed.
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Collect the young generation less often; see `GC_YOUNG_THRESHOLD`."""
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


_RESEGMENT_EXPOSED: set[str] = set()


def expose_resegment(config: Config) -> None:
    """Serve the last `tailor resegment` result as gauges (`tailor.flows.resegment_metrics`), once
    per prefix and process."""
    if not config.redis_url or config.prefix in _RESEGMENT_EXPOSED:
        return
    client = redis.Redis.from_url(config.redis_url, socket_timeout=1.0)
    REGISTRY.register(ResegmentCollector(client, config.prefix))
    _RESEGMENT_EXPOSED.add(config.prefix)


def run_worker(
    config: Config, replay_paths: Sequence[Path] = (), serve_metrics: bool = False
) -> None:
    """Run one worker process until its sources end (drained, replay done, or a signal).

    Everything that can be wrong with the settings fails before the first event, and before
    waiting for Redis: no one should wait for Redis to learn that a rule is misspelt. With
    `recovery.enabled` the run snapshots to, and resumes from, the store in `recovery.dir`
    (`tailor.flows.recovery`), so a killed worker restarts where its last snapshot left off. The
    store is checked before Bytewax opens it, and compacted before it starts and after a
    clean stop, unless another process uses it (`tailor.flows.store`).
    """
    if serve_metrics:
        url = start_metrics(config)
        if url:
            log.info("metrics at %s", url)
            expose_resegment(config)
    # Built once without Redis so that bad settings fail before any wait; built again below
    # with the opt-out set, once Redis answers.
    flow = build_redis_flow(config, replay_paths, opted_out=frozenset())
    recovery = recovery_settings(config)
    cluster = cluster_settings(config)
    lock = take_for_run(recovery.store, flow, config.workers) if recovery else None
    tune_gc()
    lifecycle.reset()
    install_signal_handlers()
    if not prepare_redis(config, replay_paths):
        log.info("stopped before Redis answered: nothing was read")
        if lock is not None:
            release_after_run(lock)
        return
    log.info("%s", describe(recovery))
    loader = base_loader(recovery.store) if recovery else None  # after any rescale
    flow = build_redis_flow(config, replay_paths, base_loader=loader)
    try:
        cli_main(flow, **cluster, **(recovery.run_arguments() if recovery else {}))
    except Exception as exc:
        mismatch = worker_count_mismatch(exc)
        if mismatch is None:
            raise
        raise ConfigError(str(mismatch)) from None
    if lock is not None:
        release_after_run(lock)


def worker_count_mismatch(exc: BaseException) -> WorkerCountMismatch | None:
    """The mismatch at the root of Bytewax's chain of build errors, if that is what stopped it."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, WorkerCountMismatch):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def cluster_settings(config: Config) -> dict[str, Any]:
    """Bytewax's cluster arguments: worker threads, and the other processes if any."""
    section = config.cluster
    addresses = list(section.addresses)
    if addresses and not 0 <= section.process_id < len(addresses):
        raise ConfigError(
            f"cluster.process_id: {section.process_id} is not an index of cluster.addresses"
        )
    return {
        "workers_per_process": section.workers_per_process,
        "process_id": section.process_id if addresses else None,
        "addresses": addresses or None,
    }
