"""The control stream: requests to erase users and to block items, read like events.

`tailor forget USER` appends ``{"op": "forget", "user_id": ...}`` to ``<prefix>:control``
(and, with ``--opt-out``, adds the user to the set ``<prefix>:optout``, which every worker
reads as it starts). Going through the dataflow, not
around it, means the erasure reaches the user's state on whichever worker holds it, in order
with that user's events, and is covered by recovery like everything else.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import redis

from operators import lifecycle
from operators.records import Block, Forget, RawRecord
from operators.redis_source import RedisStreamSource, StreamState, _RedisStreamPartition
from operators.retry import RetryPolicy, call_with_retry, no_retry_client

#: The replay waits for Redis like the rest of the worker: for ever, until a stop request.
REPLAY_POLICY = RetryPolicy(max_attempts=0, base_s=0.1, cap_s=5.0)
REPLAY_SOCKET_TIMEOUT_S = 5.0

OPS = {"forget": False, "opt_out": True}
#: Item commands: op → whether the item is blocked after it.
ITEM_OPS = {"block": True, "unblock": False}


def control_key(prefix: str) -> str:
    return f"{prefix}:control"


def optout_key(prefix: str) -> str:
    return f"{prefix}:optout"


def blocklist_key(prefix: str) -> str:
    """The items never to recommend: the record of truth, which the sink also enforces."""
    return f"{prefix}:blocklist"


class ControlSource(RedisStreamSource):
    """The control stream as one more partitioned stream (one partition)."""

    def list_parts(self) -> list[str]:
        return [control_key(self.prefix)]

    def build_part(
        self, step_id: str, for_part: str, resume_state: StreamState | str | None
    ) -> _RedisStreamPartition:
        if resume_state is None:
            _replay_sets(self.redis_url, self.prefix)
        return super().build_part(step_id, for_part, resume_state)


def opted_out_users(client: redis.Redis, prefix: str) -> frozenset[str]:
    """The members of the opt-out set (stored ids: pseudonyms when those are on)."""
    return frozenset(
        member.decode() if isinstance(member, bytes) else member
        for member in client.smembers(optout_key(prefix))
    )


def _replay_sets(redis_url: str, prefix: str) -> None:
    """A fresh worker's models learn the blocklist by finding it in the control stream,
    appended again (the opt-out set needs no replay: every worker reads it as it starts,
    `flows.worker.read_opt_outs`).

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
