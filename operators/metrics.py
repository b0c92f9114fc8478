"""Every Prometheus metric Tailor exports, defined once.

Module-level like Bytewax's own Kafka lag gauge: a metric is process-wide, and each step
imports the ones it feeds. Labels are bounded sets (event type, outcome, reason, segment id,
stream key): never a user id, so the endpoint cannot leak who did what. Names end in their
unit (`_seconds`, `_entries`, `_users`; counters in `_total`), and every error counter has a
series at 0 for each known label value from the start (`zero_series`), so a dashboard's
`rate()` and an alert on it work before the first error, not only after it.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import Counter, Gauge, Histogram

from tailor.state.profile.event import REASONS

#: Read-to-acknowledged-write latency: sub-millisecond up to a stalled Redis.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Event-time-to-write latency, up to ten years: a backfill's observations then say how old
#: the replayed data is (a quantile that falls as it catches up) instead of all landing in
#: +Inf, and live and replayed traffic stay one histogram, one query.
EVENT_TIME_BUCKETS = (
    *(0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 3600.0, 21600.0),  # live: up to 6 hours
    *(86400.0, 604800.0, 2592000.0, 7776000.0, 31536000.0, 94608000.0, 315360000.0),  # 1d-10y
)
BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
#: A models replica's snapshot: milliseconds on a small catalogue, seconds on a large one.
SNAPSHOT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

#: `operation` labels of the Redis error counter and `tailor_redis_up`: every Redis call the
#: worker makes goes through one of these (tests/operators/test_metrics_zero.py checks).
REDIS_OPERATIONS = (
    "connect",
    "optout",
    "control",
    "read",
    "write",
    "meta",
    "xdel",
    "erase",
    "deadletter",
    "heartbeat",
)
#: `kind` labels counted from the start: the errors the worker retries (Redis unreachable,
#: stalled, loading, restarted) and a refused command. Other classes appear when they occur.
REDIS_ERROR_KINDS = (
    "ConnectionError",
    "TimeoutError",
    "BusyLoadingError",
    "NoScriptError",
    "ResponseError",
)
#: `outcome` labels of `tailor_events_total`.
EVENT_OUTCOMES = ("accepted", "invalid", "late", "duplicate", "opted_out")
ERASURE_REASONS = ("forget", "opt_out", "consent")
MODEL_WORK = ("own", "remote")

EVENTS = Counter(
    "tailor_events",
    "Events seen by the worker, by event type and outcome "
    "(accepted, invalid, late, duplicate, opted_out).",
    ["type", "outcome"],
)
DEAD_LETTERS = Counter(
    "tailor_dead_letters",
    "Inputs sent to the dead-letter stream, by machine-readable reason.",
    ["reason"],
)
DEAD_LETTERS_REPEATED = Counter(
    "tailor_dead_letters_repeated",
    "Dead letters not written because their input was already in the dead-letter stream "
    "(a replay after a restart, or a batch retried after a connection drop).",
)
EVENT_TO_REDIS = Histogram(
    "tailor_event_to_redis_seconds",
    "From the worker reading an event to Redis acknowledging the write that reflects it.",
    buckets=LATENCY_BUCKETS,
)
EVENT_TIME_TO_REDIS = Histogram(
    "tailor_event_time_to_redis_seconds",
    "From an event's own timestamp to Redis acknowledging the write that reflects it.",
    buckets=EVENT_TIME_BUCKETS,
)
SOURCE_BATCH = Histogram(
    "tailor_source_batch_entries",
    "Entries returned by one source read.",
    ["source"],
    buckets=BATCH_BUCKETS,
)
SINK_BATCH = Histogram(
    "tailor_sink_batch_users",
    "Users written by one coalesced, pipelined sink flush.",
    buckets=BATCH_BUCKETS,
)
REDIS_ERRORS = Counter(
    "tailor_redis_errors",
    "Redis errors by operation (read, write, deadletter) and error class.",
    ["operation", "kind"],
)
MODEL_CPU = Counter(
    "tailor_model_cpu_seconds",
    "CPU seconds the models replica of this process spent on its own workers' updates "
    "(learn, test, serve) and on learning the other workers' (what adding workers costs).",
    ["work"],
)
MODEL_UPDATES = Counter(
    "tailor_model_updates",
    "Updates the models replica of this process learned, its own workers' and the others'.",
    ["work"],
)
ACTIVE_USERS = Gauge("tailor_active_users", "Users with live state in this process.")
ACTIVE_OUTPUT_USERS = Gauge(
    "tailor_active_output_users",
    "Users whose outputs state (last list sent, provisional output) this process holds.",
)
ERASURES = Counter(
    "tailor_erasures",
    "Users erased from the worker, by reason (forget, opt_out, consent).",
    ["reason"],
)
EXPIRED_USERS = Counter(
    "tailor_expired_users", "Users whose state was dropped after state.ttl_s of inactivity."
)
SEGMENT_SIZE = Gauge(
    "tailor_segment_users", "Members of each segment, as stored in Redis.", ["segment"]
)
SEGMENT_MOVES = Counter(
    "tailor_segment_moves",
    "Users whose stored cluster segment changed (membership churn; rate() * 3600 = per hour).",
)
SEGMENT_SILHOUETTE = Gauge(
    "tailor_segment_silhouette",
    "Silhouette coefficient of the cluster segments on a recent sample (-1..1, higher is better).",
)
SEGMENT_DRIFT = Gauge(
    "tailor_segment_drift",
    "How far the segment anchors are from the last stable structure (standard deviations).",
)
SEGMENT_DRIFT_EVENTS = Counter(
    "tailor_segment_drift_events", "Times the segment structure moved past the drift threshold."
)
SEGMENT_REFITS = Counter(
    "tailor_segment_refits",
    "Times the segments were re-fitted from batch k-means on the sample of users.",
)
SEGMENT_CORRECTIONS = Counter(
    "tailor_segment_corrections",
    "User outputs re-sent because their segments settled, in event-time order, otherwise "
    "than first assigned.",
)
SEGMENT_LATE = Counter(
    "tailor_segment_late_points",
    "Segment learn/settle points placed after their event time (a partition resumed after "
    "announcing it was idle, or unstamped input arrived out of order).",
)
_QUALITY_LABELS = ("variant", "model")
REC_RECALL = Gauge(
    "tailor_rec_recall",
    "Live Recall@k: share of interactions whose item was in the list last sent to the user "
    "(sliding window, per variant).",
    _QUALITY_LABELS,
)
REC_NDCG = Gauge("tailor_rec_ndcg", "Live NDCG@k over the sliding window.", _QUALITY_LABELS)
REC_MRR = Gauge("tailor_rec_mrr", "Live mean reciprocal rank over the window.", _QUALITY_LABELS)
SEGMENTS_LEARNED = Gauge(
    "tailor_segments_learned_users", "Users the segment model has learned from (its version)."
)
REDIS_UP = Gauge(
    "tailor_redis_up",
    "1 when the last Redis call of this operation (connect: the start-up wait; read, "
    "control: a fresh worker's opt-out and blocklist replay; write, erase, deadletter) "
    "was answered, 0 when Redis could not be reached (refused, dropped, timed out, loading).",
    ["operation"],
)
SOURCE_LAG = Gauge(
    "tailor_source_lag_entries",
    "Entries added to a stream after the last entry this worker read from it: Redis 7 "
    "XINFO STREAM entries-added minus the entries consumed, resynchronised to 0 whenever a "
    "read drains the stream (before Redis 7, XLEN: exact for untrimmed streams). Sampled "
    "with a read at most every 5 s per stream; absent for a stream until "
    "known (a partition resumed from a snapshot into a backlog is known once it catches up).",
    ["stream"],
)
SNAPSHOT = Histogram(
    "tailor_snapshot_seconds",
    "Wall time of one snapshot of a state at an epoch end (recovery on): the models replica "
    "(the largest state; it grows with the catalogue).",
    ["state"],
    buckets=SNAPSHOT_BUCKETS,
)
BUILD_INFO = Gauge(
    "tailor_build_info", "Always 1; the installed Tailor release in `version`.", ["version"]
)


def installed_version() -> str:
    """The installed distribution's version (package metadata), or "unknown" from a bare
    source tree."""
    try:
        return version("tailor")
    except PackageNotFoundError:
        return "unknown"


def zero_series(event_types: Iterable[str] = ()) -> None:
    """Create every known series of the error and outcome counters at 0 (idempotent).

    A counter series appears at its first increment, so before the first dead letter or Redis
    error `rate(...)` has nothing to compute and an alert on it cannot even say "0". `event_types`
    (`validation.event_types`) adds the per-type series of `tailor_events_total`.
    """
    for reason in REASONS:
        DEAD_LETTERS.labels(reason)
    for operation in REDIS_OPERATIONS:
        for kind in REDIS_ERROR_KINDS:
            REDIS_ERRORS.labels(operation, kind)
    for erasure in ERASURE_REASONS:
        ERASURES.labels(erasure)
    for work in MODEL_WORK:
        MODEL_CPU.labels(work)
        MODEL_UPDATES.labels(work)
    SNAPSHOT.labels("models")
    for event_type in event_types:
        for outcome in EVENT_OUTCOMES:
            EVENTS.labels(event_type, outcome)
    EVENTS.labels("unknown", "invalid")  # a refused payload whose type is not a known one


BUILD_INFO.labels(installed_version()).set(1)
zero_series()
