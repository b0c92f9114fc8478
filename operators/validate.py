"""Validation: every raw payload becomes an accepted event or a dead letter with a reason.

(A partition's idle/end announcement is no payload: it passes as `Progress`, as does each
refused record, so the models step can count the batches complete, `tailor.operators.progress`.)

Nothing raises and nothing is dropped: a worker that crashed on one hostile payload would
crash again on the same payload after every recovery, so refusals are data, split off into
their own stream (as Bytewax's Kafka operators split `oks` from `errs`).

Checks run cheapest first, and the size check comes before any decoding so an oversized
payload costs nothing: too_large, not_utf8 / malformed_json, not_object, the schema
(`tailor.state.profile.event.event_from_dict`), then the event-time bounds ts_future / ts_past.

A ``too_large`` letter keeps only the payload's first `too_large_prefix_bytes` bytes, with its
whole length and SHA-1: copying a flood of huge payloads into the dead-letter stream would move
the memory problem into Redis. (The sources have usually cut such a payload already,
`tailor.operators.payload_limits`; a record they cut is refused even if its prefix would parse.)

>>> from tailor.flows.config import load_config
>>> from tailor.operators.records import RawRecord
>>> params = ValidationParams.of(load_config(env={}).validation)
>>> payload = b'{"event_id":"e1","user_id":"u1","type":"click","ts":1700000000}'
>>> rec = RawRecord(payload, "s", "1-0", 0.0)
>>> validate_record(rec, params, now=1700000000.0).event.user_id
'u1'
>>> validate_record(RawRecord(b"[1]", "s", "2-0", 0.0), params, now=0.0).reason
'not_object'
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import bytewax.operators as op
import orjson
from bytewax.dataflow import Stream, operator
from bytewax.operators import BranchOut
from prometheus_client import Counter

from tailor.flows.settings import ValidationSettings
from tailor.operators.metrics import DEAD_LETTERS, EVENTS, zero_series
from tailor.operators.payload_limits import sha1_hex
from tailor.operators.progress import announcement_progress, dead_letter_progress, is_announcement
from tailor.operators.records import Accepted, DeadLetter, Progress, RawRecord
from tailor.state.profile.event import Event, Invalid, event_from_dict, parse_ts

_DETAIL_CHARS = 120
#: Detail prefix of a refusal caused by an exception inside the schema check (a bug, counted
#: as `wrong_type` rather than crashing the worker on every recovery of the same payload).
INTERNAL_ERROR = "internal error: "


@dataclass(frozen=True)
class ValidationParams:
    """`[validation]` as the checks read it for every record: the settings whole, `min_ts`
    parsed to epoch seconds and the event types as a set (`ValidationParams.of`)."""

    settings: ValidationSettings
    min_ts: float
    event_types: frozenset[str]

    @classmethod
    def of(cls, settings: ValidationSettings) -> ValidationParams:
        return cls(settings, parse_ts(settings.min_ts), frozenset(settings.event_types))


def _refuse(record: RawRecord, reason: str, detail: str, event_type: str = "unknown") -> DeadLetter:
    """Count the refusal under bounded labels and wrap the untouched payload."""
    _count_refusal(reason, event_type)
    return DeadLetter(
        reason, detail[:_DETAIL_CHARS], record.payload, record.origin, record.offset, record.stamp
    )


def _refuse_too_large(record: RawRecord, prefix_bytes: int) -> DeadLetter:
    """Count the refusal and keep the payload's prefix, its whole length and its SHA-1."""
    _count_refusal("too_large", "unknown")
    payload = record.payload
    # Whole unless the source cut it already (then it gave the length and hash).
    size = len(payload) if record.size is None else record.size
    sha1 = sha1_hex(payload) if record.sha1 is None else record.sha1
    return DeadLetter(
        "too_large",
        f"{size} bytes",
        payload[:prefix_bytes],
        record.origin,
        record.offset,
        record.stamp,
        size,
        sha1,
    )


def _count_refusal(reason: str, event_type: str) -> None:
    _counter(EVENTS, event_type, "invalid").inc()
    _counter(DEAD_LETTERS, reason).inc()


#: Label children already looked up: `labels()` costs ~2 µs, and a backlog of stale or
#: broken events is refused at full speed. Labels are bounded sets, so is this cache.
_CHILDREN: dict[tuple[object, ...], Counter] = {}


def _counter(metric: Counter, *labels: str) -> Counter:
    key = (metric, *labels)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = metric.labels(*labels)
    return child


def _type_label(obj: dict[str, Any], params: ValidationParams) -> str:
    """The event type as a metric label only when it is a known one: labels stay a bounded set."""
    value = obj.get("type")
    return value if isinstance(value, str) and value in params.event_types else "unknown"


def _decode(record: RawRecord, params: ValidationParams) -> dict[str, Any] | DeadLetter:
    payload = record.payload
    if record.size is not None or len(payload) > params.settings.max_payload_bytes:
        return _refuse_too_large(record, params.settings.too_large_prefix_bytes)
    try:
        obj = orjson.loads(payload)
    except Exception as exc:  # JSONDecodeError, depth limits, anything the parser raises
        # orjson refuses invalid UTF-8 itself, so the separate check runs on failures only
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError as bad:
            return _refuse(record, "not_utf8", f"byte {bad.start}")
        return _refuse(record, "malformed_json", str(exc))
    if not isinstance(obj, dict):
        return _refuse(record, "not_object", type(obj).__name__)
    return cast(dict[str, Any], obj)


def _check(obj: dict[str, Any], params: ValidationParams) -> Event | Invalid:
    try:
        event = event_from_dict(obj, params.event_types)
    except Exception as exc:  # a schema bug must not become a crash loop on one payload
        return Invalid("wrong_type", f"{INTERNAL_ERROR}{type(exc).__name__}")
    return event


def validate_record(
    record: RawRecord, params: ValidationParams, now: float
) -> Accepted | DeadLetter:
    """Accept `record` as an event or refuse it with a reason from
    `tailor.state.profile.event.REASONS`.

    `now` is wall-clock time, used only for the future bound: an event stamped a day ahead is
    a broken producer clock, not data.
    """
    decoded = _decode(record, params)
    if isinstance(decoded, DeadLetter):
        return decoded
    event = _check(decoded, params)
    if isinstance(event, Invalid):
        return _refuse(record, event.reason, event.detail, _type_label(decoded, params))
    if event.ts > now + params.settings.max_future_s:
        return _refuse(record, "ts_future", "ts", _type_label(decoded, params))
    if event.ts < params.min_ts:
        return _refuse(record, "ts_past", "ts", _type_label(decoded, params))
    return Accepted(event, record.read_at, record.stamp, record.origin, record.offset)


@dataclass(frozen=True)
class ValidateOut:
    """The streams out of `validate`: accepted events, dead letters, and the `Progress` of
    stamped records that are not events (refused ones, partitions' announcements)."""

    oks: Stream[Accepted]
    errs: Stream[DeadLetter]
    progress: Stream[Progress]


def _is_accepted(item: Accepted | DeadLetter | Progress) -> bool:
    return isinstance(item, Accepted)


def _is_progress(item: Accepted | DeadLetter | Progress) -> bool:
    return isinstance(item, Progress)


@operator
def validate(
    step_id: str,
    up: Stream[RawRecord],
    settings: ValidationSettings,
    now: Callable[[], float] = time.time,
) -> ValidateOut:
    """Validate every record of `up` against `settings`; `now` is the wall clock, injectable
    for tests. The event counters' series start at 0 for every configured event type."""
    params = ValidationParams.of(settings)
    zero_series(params.event_types)

    def check(record: RawRecord) -> Accepted | DeadLetter | Progress:
        if is_announcement(record):
            return announcement_progress(record)
        return validate_record(record, params, now())

    results = op.map("check", up, check)
    split = op.branch("split", results, _is_accepted)
    others: BranchOut[Accepted | DeadLetter | Progress, Accepted | DeadLetter | Progress]
    others = op.branch("split_progress", split.falses, _is_progress)
    errs = cast(Stream[DeadLetter], others.falses)
    refused = op.filter_map("refused_progress", errs, dead_letter_progress)
    announced = cast(Stream[Progress], others.trues)
    return ValidateOut(
        cast(Stream[Accepted], split.trues),
        errs,
        op.merge("progress", announced, refused),
    )
