"""Every Prometheus metric Tailor exports, defined once.

Module-level like Bytewax's own Kafka lag gauge: a metric is process-wide, and each step
imports the ones it feeds. Labels are bounded sets (event type, outcome, reason, segment id,
stream key): never a user id, so the endpoint cannot leak who did what.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

#: Read-to-acknowledged-write latency: sub-millisecond up to a stalled Redis.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Event-time-to-write latency: includes producer delay and replays of old data.
EVENT_TIME_BUCKETS = (0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 3600.0, 86400.0, 604800.0)
BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)

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
    "tailor_source_batch_size",
    "Entries returned by one source read.",
    ["source"],
    buckets=BATCH_BUCKETS,
)
SINK_BATCH = Histogram(
    "tailor_sink_batch_size",
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
    "tailor_segment_size", "Members of each segment, as stored in Redis.", ["segment"]
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
    "tailor_segments_learned", "Users the segment model has learned from (its version)."
)
REDIS_UP = Gauge(
    "tailor_redis_up",
    "1 when the last Redis call of this operation (connect: the start-up wait; read, "
    "control: a fresh worker's opt-out and blocklist replay; write, erase, deadletter) "
    "was answered, 0 when Redis could not be reached (refused, dropped, timed out, loading).",
    ["operation"],
)
SOURCE_LAG = Gauge(
    "tailor_source_lag",
    "Entries added to a stream after the last entry this worker read from it: Redis 7 "
    "XINFO STREAM entries-added minus the entries consumed, resynchronised to 0 whenever a "
    "read drains the stream (before Redis 7, XLEN: exact for untrimmed streams). Sampled "
    "with a read at most every 5 s per stream; absent for a stream until "
    "known (a partition resumed from a snapshot into a backlog is known once it catches up).",
    ["stream"],
)
