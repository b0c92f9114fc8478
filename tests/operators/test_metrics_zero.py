"""Metrics a dashboard can use from zero: error series exist before the first error, the
Redis `operation` labels are a known set, the build is labelled, and a backfill's event-time
latencies land in finite buckets."""

from __future__ import annotations

import ast
import time
from importlib.metadata import version
from pathlib import Path

from prometheus_client import REGISTRY, generate_latest

from tailor.operators.metrics import (
    EVENT_OUTCOMES,
    REDIS_ERROR_KINDS,
    REDIS_OPERATIONS,
    zero_series,
)
from tailor.operators.redis.sink import _RedisSinkPartition
from tailor.state.profile.event import REASONS
from tests.operators.sink_support import output, sample

ROOT = Path(__file__).resolve().parents[2]
YEAR_S = 365 * 86400.0


def exposed() -> str:
    return generate_latest(REGISTRY).decode()


def test_every_known_error_series_is_exposed_before_it_happens() -> None:
    zero_series(["click"])
    text = exposed()
    for reason in REASONS:
        assert f'tailor_dead_letters_total{{reason="{reason}"}}' in text, reason
    for operation in REDIS_OPERATIONS:
        for kind in REDIS_ERROR_KINDS:
            assert f'tailor_redis_errors_total{{kind="{kind}",operation="{operation}"}}' in text
    for outcome in EVENT_OUTCOMES:
        assert f'tailor_events_total{{outcome="{outcome}",type="click"}}' in text
    assert 'tailor_events_total{outcome="invalid",type="unknown"}' in text
    assert 'tailor_snapshot_seconds_count{state="models"}' in text


def test_build_info_carries_the_installed_version() -> None:
    assert sample("tailor_build_info", {"version": version("tailor")}) == 1.0


def _operation_literals(tree: ast.AST) -> set[str]:
    """The string literals passed as a Redis `operation`: `call_with_retry(_, OP, ...)`,
    `writer.run(OP, lambda: ...)`, `mark_redis_up(OP, ...)`, `REDIS_*.labels(OP, ...)`."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func, args = node.func, node.args
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name == "call_with_retry":
            candidate = args[1] if len(args) > 1 else None
        elif name == "mark_redis_up":
            candidate = args[0] if args else None
        elif name == "run" and len(args) == 2 and isinstance(args[1], ast.Lambda):
            candidate = args[0]
        elif name == "labels" and isinstance(func, ast.Attribute):
            owner = func.value
            redis_metric = isinstance(owner, ast.Name) and owner.id.startswith("REDIS_")
            candidate = args[0] if redis_metric and args else None
        else:
            candidate = None
        if isinstance(candidate, ast.Constant) and isinstance(candidate.value, str):
            found.add(candidate.value)
    return found


def test_the_redis_operations_are_exactly_the_labels_the_code_uses() -> None:
    """A new operation without its zero series (or a stale one) fails here."""
    used: set[str] = set()
    for folder in ("flows", "operators"):
        for path in (ROOT / folder).rglob("*.py"):
            used |= _operation_literals(ast.parse(path.read_text(), str(path)))
    assert used == set(REDIS_OPERATIONS)


def _bucket(le: str) -> float:
    return sample("tailor_event_time_to_redis_seconds_bucket", {"le": le})


def test_backfill_latencies_land_in_finite_buckets(sink: _RedisSinkPartition) -> None:
    """Events two years old (a backfill) and a minute old (live) are both told apart."""
    before = {le: _bucket(le) for le in ("60.0", "3.1536e+07", "9.4608e+07", "+Inf")}
    now = time.time()
    sink.write_batch(
        [output("u1", 1, event_times=(now - 2 * YEAR_S, now - 2 * YEAR_S, now - 30.0))]
    )
    grew = {le: _bucket(le) - count for le, count in before.items()}
    assert grew == {"60.0": 1, "3.1536e+07": 1, "9.4608e+07": 3, "+Inf": 3}  # 1y, 3y
