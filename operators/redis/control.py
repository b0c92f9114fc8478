"""The control stream: requests to erase users and to block items, read like events.

`tailor forget USER` appends ``{"op": "forget", "user_id": ...}`` to ``<prefix>:control``
(and, with ``--opt-out``, adds the user to the set ``<prefix>:optout``, which every worker
reads as it starts; every key name is `tailor.operators.redis.keys`'s). Going through the dataflow,
not around it, means the erasure reaches the user's state on whichever worker holds it, in order
with that user's events, and is covered by recovery like everything else.

A request stays in the stream until nothing can undo its effect. With recovery off, the
sink deletes it once the erasure is written (a restart starts from nothing, and replays it
if it is still there). With recovery on, a crash rolls the worker back to its last committed
epoch, erasures of later epochs included, and the source back to before the request: so the
request must outlive that epoch's snapshot, and the control source deletes it itself
(`ControlSource`, `durable`).
"""

from __future__ import annotations

__all__ = [
    "ControlSource",
    "opted_out_users",
    "parse_command",
    "request_block",
    "request_forget",
]

import random
from collections import deque
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
import redis
from bytewax.inputs import StatefulSourcePartition
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tailor.operators import lifecycle
from tailor.operators.metrics import REDIS_ERRORS
from tailor.operators.records import Block, Forget, RawRecord
from tailor.operators.redis.keys import blocklist_key, control_key, optout_key
from tailor.operators.redis.retry import (
    RetryPolicy,
    call_with_retry,
    mark_redis_up,
    no_retry_client,
)
from tailor.operators.redis.source import START_ID, RedisStreamSource, StreamState

#: The replay waits for Redis like the rest of the worker: for ever, until a stop request.
REPLAY_POLICY = RetryPolicy(max_attempts=0, base_s=0.1, cap_s=5.0)
REPLAY_SOCKET_TIMEOUT_S = 5.0

OPS = {"forget": False, "opt_out": True}
#: Item commands: op → whether the item is blocked after it.
ITEM_OPS = {"block": True, "unblock": False}


class ControlSource(RedisStreamSource):
    """The control stream as one more partitioned stream (one partition).

    :arg durable: recovery is on; the partition then deletes the entries it consumed once
        they are durable (`_DurableControlPartition`), and the sink leaves them alone.

    With `durable`, a request leaves Redis once the epoch that read it and the one after are
    committed: while the worker runs, one to two snapshot intervals
    (``recovery.snapshot_interval_s``) after it was read, plus the time commits take; after
    a stop or a crash, when the worker next starts from its recovery store. Every consumed
    entry goes, item commands too: the blocklist set stays their record, and a fresh worker
    replays it.
    """

    def __init__(self, redis_url: str, *, durable: bool = False, **settings: Any) -> None:
        super().__init__(redis_url, **settings)
        self.durable = durable

    def list_parts(self) -> list[str]:
        return [control_key(self.prefix)]

    def build_part(
        self, step_id: str, for_part: str, resume_state: StreamState | str | None
    ) -> StatefulSourcePartition[RawRecord, StreamState]:
        if resume_state is None:
            _replay_sets(self.redis_url, self.prefix)
        part = super().build_part(step_id, for_part, resume_state)
        if not self.durable:
            return part
        client = no_retry_client(self.redis_url, REPLAY_SOCKET_TIMEOUT_S)
        return _DurableControlPartition(part, client, for_part, part.snapshot()[0])


class _DurableControlPartition(StatefulSourcePartition[RawRecord, StreamState]):
    """A control partition that deletes what it consumed once no resume can go back to it.

    What Bytewax 0.21.1 guarantees (src/inputs.rs, src/recovery.rs): `snapshot()` is called
    at the end of each epoch, and the partition reads in epoch e (`next_batch`) only once
    the whole dataflow's epoch e-1 is committed (its probe): every step's snapshots of e-1
    are written and every worker's frontier says resume at e or later, so no resume goes
    back to a position before the snapshot of e-1. The state an entry changed (the erasure
    in per-user state and the models) is snapshotted in the epoch the entry was read in.

    So at a read, the position of the last snapshot is durable. The deletion waits one epoch
    more, the position of the snapshot before it: with recovery on Bytewax does not wait for
    stateless sinks before committing (src/worker.rs probes only the snapshot stream), and
    the extra epoch covers the sink's erasure of the request's user (a sink call blocks its
    worker, which then cannot finish the next epoch). A worker that starts from a resume
    state deletes everything up to it: it never reads before it again, nor does any later
    start. The deletion is XTRIM MINID (entries before an id), exact, and retried at the next
    read if Redis is away.
    """

    def __init__(
        self,
        inner: StatefulSourcePartition[RawRecord, StreamState],
        client: redis.Redis,
        key: str,
        resumed_at: str,
    ) -> None:
        self._inner = inner
        self._client = client
        self._key = key
        self._trimmed = START_ID  # nothing before this id is known to be left
        self._due = resumed_at  # delete up to and including this id
        self._snapped: deque[str] = deque(maxlen=2)  # positions at the last two snapshots

    def next_batch(self) -> Iterable[RawRecord]:
        batch = self._inner.next_batch()
        if len(self._snapped) == 2:
            self._due = max(self._due, self._snapped[0], key=entry_order)
        if entry_order(self._due) > entry_order(self._trimmed):
            self._trim()
        return batch

    def _trim(self) -> None:
        """Delete every entry up to `_due`, or leave it for the next read if Redis is away."""
        try:
            self._client.xtrim(self._key, minid=next_id(self._due), approximate=False)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            REDIS_ERRORS.labels("control", type(exc).__name__).inc()
            mark_redis_up("control", exc)
            return
        mark_redis_up("control")
        self._trimmed = self._due

    def next_awake(self) -> datetime | None:
        return self._inner.next_awake()

    def snapshot(self) -> StreamState:
        state = self._inner.snapshot()
        self._snapped.append(state[0])
        return state

    def close(self) -> None:
        self._inner.close()
        self._client.close()


def entry_order(entry_id: str) -> tuple[int, int]:
    """A stream entry id as numbers, which is how Redis orders them.

    >>> entry_order("1700000000000-12") > entry_order("999-99")
    True
    """
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def next_id(entry_id: str) -> str:
    """The smallest id after `entry_id`: XTRIM MINID keeps it and everything later.

    >>> next_id("1700000000000-12")
    '1700000000000-13'
    """
    ms, seq = entry_order(entry_id)
    return f"{ms}-{seq + 1}"


def opted_out_users(client: redis.Redis, prefix: str) -> frozenset[str]:
    """The members of the opt-out set (stored ids: pseudonyms when those are on)."""
    return frozenset(
        member.decode() if isinstance(member, bytes) else member
        for member in client.smembers(optout_key(prefix))
    )


def _replay_sets(redis_url: str, prefix: str) -> None:
    """A fresh worker's models learn the blocklist by finding it in the control stream,
    appended again (the opt-out set needs no replay: every worker reads it as it starts,
    `tailor.flows.worker.read_opt_outs`).

    Re-appending members is idempotent for the worker (a block of a blocked item is a no-op),
    and keeps one path for every such request; so is a replay retried whole after Redis went
    away in the middle of it. The replay waits for Redis with backoff (`operation="control"`):
    skipping it would lose the blocks for good, since a resumed worker never replays. A stop
    requested meanwhile raises the last error.
    """
    client = no_retry_client(redis_url, REPLAY_SOCKET_TIMEOUT_S)
    try:
        call_with_retry(
            lambda: _append_sets(client, prefix),
            "control",
            REPLAY_POLICY,
            random.Random(),
            lifecycle.sleep,
        )
    finally:
        client.close()


def _append_sets(client: redis.Redis, prefix: str) -> None:
    """One attempt at the replay: each blocked item appended to the control stream."""
    for member in sorted(client.smembers(blocklist_key(prefix))):
        item = member.decode() if isinstance(member, bytes) else member
        request = {"op": "block", "item_id": item}
        client.xadd(control_key(prefix), {"payload": orjson.dumps(request)})


def parse_command(record: RawRecord) -> Forget | Block | None:
    """A control entry as a `Forget` or a `Block`, or None for anything unusable (or an
    announcement: the control stream's batches are not part of the event-time order).

    A payload the source cut to a prefix (`RawRecord.size`) is unusable even if it parses."""
    if record.size is not None:
        return None
    try:
        request: Any = orjson.loads(record.payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(request, dict):
        return None
    if request.get("op") in ITEM_OPS:
        item = request.get("item_id")
        if not isinstance(item, str) or not item:
            return None
        return Block(item, ITEM_OPS[request["op"]])
    if request.get("op") not in OPS:
        return None
    user = request.get("user_id")
    if not isinstance(user, str) or not user:
        return None
    return Forget(user, request["op"], opt_out=OPS[request["op"]])


def request_block(client: redis.Redis, prefix: str, item_id: str, blocked: bool) -> None:
    """What `tailor block` sends: the blocklist membership, and the control entry."""
    pipe = client.pipeline(transaction=True)
    if blocked:
        pipe.sadd(blocklist_key(prefix), item_id)
    else:
        pipe.srem(blocklist_key(prefix), item_id)
    request = {"op": "block" if blocked else "unblock", "item_id": item_id}
    pipe.xadd(control_key(prefix), {"payload": orjson.dumps(request)})
    pipe.execute()


def request_forget(client: redis.Redis, prefix: str, user_id: str, opt_out: bool) -> None:
    """What `tailor forget` sends: the control entry, and the opt-out set membership."""
    op = "opt_out" if opt_out else "forget"
    pipe = client.pipeline(transaction=True)
    if opt_out:
        pipe.sadd(optout_key(prefix), user_id)
    pipe.xadd(control_key(prefix), {"payload": orjson.dumps({"op": op, "user_id": user_id})})
    pipe.execute()
