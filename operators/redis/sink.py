"""Profiles, recommendations, segment memberships and change notices into Redis.

Each `write_batch` is one pipelined round trip (plus the `SCRIPT EXISTS` check redis-py's
`register_script` makes per pipeline): the batch is coalesced to the newest output per user,
and every user becomes one call of a Lua script inside a non-transactional pipeline. The
script is the unit of consistency: it compares versions, moves the user between segment sets,
writes profile and recs, and publishes the notice, all atomically. So:

* a replayed older write (Bytewax recovery is at-least-once) is a no-op: it can never move a
  user backwards, and a replay of the same input leaves byte-identical keys;
* a notice is sent exactly when a write applies, even if the batch is retried after a
  connection drop (the retried script sees the newer version and stays silent);
* readers never see a profile whose memberships or recs are from another version.

The lists published for users without history (`FallbackList`) are written as given, the
newest per list, each by one version-guarded script call in the same round trip. The scripts
are in `tailor.operators.redis.scripts`; the schema is documented in
`tailor.operators.redis.keys`.
"""

from __future__ import annotations

__all__ = [
    "RESERVED_FIELDS",
    "RedisSink",
    "SinkItem",
    "after_last_erasure",
    "hash_fields",
    "newest_per_segment",
    "newest_per_user",
    "observe_many",
]

import bisect
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from prometheus_client import Histogram

from tailor.operators.metrics import (
    EVENT_TIME_TO_REDIS,
    EVENT_TO_REDIS,
    SEGMENT_SIZE,
    SINK_BATCH,
)
from tailor.operators.pseudonym import record_id_mode
from tailor.operators.records import (
    ChurnReport,
    Erasure,
    FallbackList,
    InputDeletion,
    QualityReport,
    SegmentInfo,
    SegmentModel,
    UserOutput,
)
from tailor.operators.redis.encoding import (
    dumps,
    fallback_items,
    hash_fields,
    newest_per_list,
    newest_per_segment,
    newest_per_user,
    notice_head,
    recs_items,
)
from tailor.operators.redis.erasure import ERASE_SCRIPT, InputEraser
from tailor.operators.redis.keys import (
    SEGMENT_HISTORY_MAXLEN,
    blocklist_key,
    churn_key,
    fallback_key,
    fallback_name,
    fallbacks_key,
    model_key,
    quality_key,
    recs_key,
    segment_history_key,
    segment_key,
    segments_key,
    updates_channel,
    updates_stream,
    user_key,
)
from tailor.operators.redis.retry import RetryingSinkSettings, Writer
from tailor.operators.redis.scripts import (
    FALLBACK_SCRIPT,
    MODEL_SCRIPT,
    RESERVED_FIELDS,
    SEGMENT_SCRIPT,
    USER_SCRIPT,
)


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """`histogram.observe` each value, with one locked increment per touched bucket.

    Two observations per event made `observe` (a Python walk over the buckets and two locks
    per call) one of the sink's largest costs. This reads the client's bucket list, as
    `observe` does; should a prometheus-client release rename it, it falls back to `observe`.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            histogram.observe(value)
        return
    counts = [0] * len(bounds)
    for value in values:
        if value <= bounds[-1]:  # always, bar NaN, which `observe` puts in no bucket either
            counts[bisect.bisect_left(bounds, value)] += 1
    for bucket, count in zip(buckets, counts, strict=True):
        if count:
            bucket.inc(count)
    if values:
        total.inc(math.fsum(values))


SinkItem = (
    UserOutput
    | SegmentInfo
    | SegmentModel
    | Erasure
    | QualityReport
    | ChurnReport
    | InputDeletion
    | FallbackList
)


class _RedisSinkPartition(StatelessSinkPartition[SinkItem]):
    """One worker's connection and scripts; holds no state worth snapshotting."""

    def __init__(
        self,
        writer: Writer,
        prefix: str,
        updates_maxlen: int,
        id_mode: str | None = None,
        inputs: InputEraser | None = None,
        recs_ttl_s: int = 0,
    ) -> None:
        self._writer = writer
        self._recs_ttl_s = recs_ttl_s
        self._inputs = inputs if inputs is not None else InputEraser(prefix)
        self._client = client = writer.client
        self._prefix = prefix
        self._updates_maxlen = updates_maxlen
        self._segment_prefix = segment_key(prefix, "")  # a set the script names from an id
        self._channel = updates_channel(prefix)
        # USER_SCRIPT's KEYS 3-5, the same for every user
        self._user_keys = (blocklist_key(prefix), segments_key(prefix), updates_stream(prefix))
        self._user_script = client.register_script(USER_SCRIPT)
        self._segment_script = client.register_script(SEGMENT_SCRIPT)
        self._model_script = client.register_script(MODEL_SCRIPT)
        self._erase_script = client.register_script(ERASE_SCRIPT)
        self._fallback_script = client.register_script(FALLBACK_SCRIPT)
        if id_mode is not None:  # before any write: `tailor forget` relies on it
            writer.run("meta", lambda: record_id_mode(client, prefix, id_mode))

    def write_batch(self, items: list[SinkItem]) -> None:
        doomed = self._inputs.entries(items)
        if doomed:
            self._writer.run("xdel", lambda: self._inputs.delete_entries(self._client, doomed))
        erasures = [item for item in items if isinstance(item, Erasure)]
        if erasures:
            self._writer.run("erase", lambda: self._erase(erasures))
            items = after_last_erasure(items)
        outputs = [item for item in items if isinstance(item, UserOutput)]
        users = newest_per_user(outputs)
        infos = newest_per_segment(item for item in items if isinstance(item, SegmentInfo))
        models = [item for item in items if isinstance(item, SegmentModel)]
        model = max(models, key=lambda m: m.version) if models else None
        reports = [item for item in items if isinstance(item, QualityReport)]
        report = max(reports, key=lambda q: q.version) if reports else None
        churns = [item for item in items if isinstance(item, ChurnReport)]
        churn = churns[-1] if churns else None  # one step sends them, in order
        lists = newest_per_list(item for item in items if isinstance(item, FallbackList))
        if not (users or infos or lists) and model is None and report is None and churn is None:
            return
        results = self._writer.run(
            "write", lambda: self._send(users, infos, model, report, churn, lists)
        )
        self._observe(outputs, len(users), results[: len(users)])

    def _erase(self, erasures: Sequence[Erasure]) -> None:
        """Delete what Redis holds about each user, then what the inputs and notices hold
        (`InputEraser`, which the flow configures)."""
        pipe = self._client.pipeline(transaction=False)
        for erasure in erasures:
            user = erasure.user_id
            self._erase_script(
                keys=[user_key(self._prefix, user), recs_key(self._prefix, user)],
                args=[user, erasure.reason, self._segment_prefix, self._channel],
                client=pipe,
            )
        pipe.execute()
        self._inputs.forget(self._client, {erasure.user_id for erasure in erasures})

    def _send(
        self,
        users: Sequence[UserOutput],
        infos: Sequence[SegmentInfo],
        model: SegmentModel | None,
        report: QualityReport | None = None,
        churn: ChurnReport | None = None,
        lists: Sequence[FallbackList] = (),
    ) -> list[Any]:
        """One round trip; safe to repeat whole, since every script is version-guarded."""
        pipe = self._client.pipeline(transaction=False)
        prefix = self._prefix
        for out in users:
            ids = out.memberships
            self._user_script(
                keys=[
                    user_key(prefix, out.user_id),
                    recs_key(prefix, out.user_id),
                    *self._user_keys,
                    *(segment_key(prefix, id_) for id_ in ids),
                ],
                args=[
                    out.user_id,
                    self._segment_prefix,
                    out.version,
                    recs_items(out),
                    notice_head(out),
                    self._updates_maxlen,
                    1 if out.settled else 0,
                    dumps(out.aged_to),
                    self._channel,
                    len(ids),
                    *ids,
                    self._recs_ttl_s,
                    *hash_fields(out),
                ],
                client=pipe,
            )
        for info in infos:
            value = {
                "name": info.name,
                "centroid": info.centroid,
                "version": info.version,
                "changed_at": info.changed_at,
            }
            self._segment_script(
                keys=[segments_key(self._prefix), segment_key(self._prefix, info.segment)],
                args=[
                    info.segment,
                    info.version,
                    dumps(value),
                    dumps(info.segment),
                    user_key(self._prefix, ""),
                ],
                client=pipe,
            )
        if model is not None:
            record = model.record
            clusters = sorted({*record.get("segments", {}), *record.get("retired", ())})
            self._model_script(
                keys=[
                    model_key(self._prefix),
                    segment_history_key(self._prefix),
                    *(segment_key(self._prefix, id_) for id_ in clusters),
                ],
                args=[
                    model.version,
                    dumps(model.record),
                    model.record.get("updated_at", 0.0),
                    SEGMENT_HISTORY_MAXLEN,
                    *clusters,
                ],
                client=pipe,
            )
        if report is not None:  # the same version-guarded write as the segment model's
            self._model_script(
                keys=[quality_key(self._prefix)],
                args=[report.version, dumps(report.record)],
                client=pipe,
            )
        if churn is not None:
            pipe.hset(
                churn_key(self._prefix), mapping={k: int(v) for k, v in asdict(churn).items()}
            )
        for found in lists:
            name = fallback_name(found.kind, found.group)
            self._fallback_script(
                keys=[fallback_key(prefix, name), fallbacks_key(prefix), blocklist_key(prefix)],
                args=[name, found.version, dumps(found.at), fallback_items(found)],
                client=pipe,
            )
        return list(pipe.execute())

    def _observe(self, outputs: Sequence[UserOutput], users: int, results: list[Any]) -> None:
        """Metrics after Redis acknowledged: latency counts every event the batch reflects."""
        now = time.time()
        observe_many(EVENT_TO_REDIS, [now - t for out in outputs for t in out.read_ats])
        observe_many(EVENT_TIME_TO_REDIS, [now - t for out in outputs for t in out.event_times])
        if users:
            SINK_BATCH.observe(users)
        for result in results:
            if result is None:  # stale: an older replay, nothing written
                continue
            sizes = result[1]
            for i in range(0, len(sizes), 2):
                SEGMENT_SIZE.labels(sizes[i].decode()).set(sizes[i + 1])

    def close(self) -> None:
        self._client.close()


def after_last_erasure(items: Sequence[SinkItem]) -> list[SinkItem]:
    """The items still to write once erasures ran: a user's outputs from before their last
    erasure in the batch are dropped (they describe someone who asked to be forgotten)."""
    last = {item.user_id: i for i, item in enumerate(items) if isinstance(item, Erasure)}
    return [
        item
        for i, item in enumerate(items)
        if not isinstance(item, Erasure)
        and not (isinstance(item, UserOutput) and last.get(item.user_id, -1) > i)
    ]


class RedisSink(RetryingSinkSettings, DynamicSink[SinkItem]):
    """Write `UserOutput`, `SegmentInfo` and the other records to Redis (schema:
    `tailor.operators.redis.keys`).

    Transient Redis errors (connection, timeout, loading) retry the whole batch with capped,
    jittered exponential backoff; `max_attempts=0` retries for ever (the blocked worker stops
    reading: backpressure), otherwise after `max_attempts` the error is raised, the worker
    stops and Bytewax recovery replays from the last snapshot (safe: writes are
    version-guarded). `tailor_redis_up{operation="write"}` follows each attempt.
    The client's own retries are off so there is one retry layer, visible in
    `tailor_redis_errors_total{operation="write"}`. `retry` takes the keyword arguments of
    `tailor.operators.redis.retry.RetryingSinkSettings` (attempts, backoff, sleep, seed, socket
    timeout).
    `id_mode` (`tailor.operators.pseudonym.id_mode`), when given, is recorded in ``{prefix}:meta``
    as each worker starts, before it writes anything.
    `inputs` (`tailor.operators.redis.erasure.InputEraser`, by default deleting requests) erases
    what the input streams and notices hold about an erased user, once the erasure is written.
    `recs_ttl_s` (`output.recs_ttl_s`), when positive, expires a user's recommendations key
    that long after its last write (0: never).
    """

    def __init__(
        self,
        redis_url: str,
        prefix: str = "tailor",
        updates_maxlen: int = 100_000,
        id_mode: str | None = None,
        inputs: InputEraser | None = None,
        recs_ttl_s: int = 0,
        **retry: Any,
    ) -> None:
        super().__init__(redis_url, **retry)
        self.recs_ttl_s = recs_ttl_s
        self.prefix = prefix
        self.updates_maxlen = updates_maxlen
        self.id_mode = id_mode
        self.inputs = inputs

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RedisSinkPartition:
        return _RedisSinkPartition(
            self.writer(worker_index),
            self.prefix,
            self.updates_maxlen,
            self.id_mode,
            self.inputs,
            self.recs_ttl_s,
        )
