"""What the worker may do in Redis, checked before it reads anything.

A Redis ACL user without, say, ``+evalsha`` or ``+multi`` can connect and ping, and then
fails mid-run with ``NOPERM`` the first time the sink writes or the source samples its lag.
`worker_needs` lists every command the worker sends, on the keys and channel it sends it to,
including the commands run inside the sink's Lua scripts (Redis checks those against the
user's ACL too, when the script runs). `denials` asks Redis which of them it would refuse,
without running any:

* with ``ACL DRYRUN`` (Redis 7) when the user may run it, one pipelined round trip;
* otherwise (a least-privilege user, or Redis 6) by queueing every command in a ``MULTI``
  that is never executed: Redis checks a command's ACL when it is queued, and closing the
  connection discards the transaction. ``EXEC`` itself is tried on an empty transaction.

`tests/flows/test_permissions_cover_worker.py` compares this list with what a real worker
sends (``MONITOR``), so a new command cannot slip past it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from tailor.operators.redis.keys import (
    META_IDS,
    blocklist_key,
    churn_key,
    control_key,
    deadletter_index,
    deadletter_stream,
    fallback_key,
    fallbacks_key,
    heartbeat_key,
    meta_key,
    model_key,
    optout_key,
    quality_key,
    recs_key,
    segment_history_key,
    segment_key,
    segments_key,
    stream_key,
    updates_channel,
    updates_stream,
    user_key,
)

#: Stands for any script sha and any script: the probes are never run.
_SHA = "0" * 40


@dataclass(frozen=True, slots=True)
class Need:
    """One command the worker sends, as a call Redis can check but is never asked to run.

    :arg command: the command's ACL name (``xinfo|stream``), as a denial names it.
    :arg args: the call, on keys named by the patterns they stand for (``tailor:user:*``).
    :arg names: those key or channel patterns, for the message.
    """

    command: str
    args: tuple[str, ...]
    names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Denial:
    """A need Redis refuses, and why: ``command``, ``key`` or ``channel``."""

    need: Need
    kind: str


def _need(*args: str, names: tuple[str, ...] = (), sub: bool = False) -> Need:
    """A `Need` named as ACL rules name it: ``xinfo|stream`` when `sub`, else ``xread``."""
    command = f"{args[0]}|{args[1]}" if sub else args[0]
    return Need(command.lower(), args, names)


#: `tailor forget` and `tailor block` send their requests in one transaction; the worker's
#: user is the one those commands use too.
TRANSACTION = (_need("MULTI"), _need("EXEC"))
#: The start-up check's own first command (`tailor.flows.preflight`).
PING = _need("PING")


def worker_needs(prefix: str, partitions: int) -> list[Need]:
    """Every command the worker sends; `partitions` is 0 for a worker that replays files."""
    user, recs, segment = user_key(prefix, "*"), recs_key(prefix, "*"), segment_key(prefix, "*")
    blocklist, updates, churn = blocklist_key(prefix), updates_stream(prefix), churn_key(prefix)
    streams = [stream_key(prefix, n) for n in range(partitions)] + [control_key(prefix)]
    needs = [PING, *TRANSACTION]
    for stream in streams:  # tailor.operators.redis.source
        # tailor.operators.redis.stream_read: one read-only script, XRANGE and XINFO STREAM inside
        # it
        needs.append(_need("EVALSHA", _SHA, "1", stream, names=(stream,)))
        needs.append(_need("XRANGE", stream, "-", "+", "COUNT", "1", names=(stream,)))
        needs.append(_need("XINFO", "STREAM", stream, names=(stream,), sub=True))
    for stream in streams[:-1]:  # tailor.operators.redis.sink: an opted-out user's raw events
        needs.append(_need("XDEL", stream, "0-1", names=(stream,)))
    meta = meta_key(prefix)  # tailor.operators.pseudonym: the id mode, checked and recorded
    needs.append(_need("HGET", meta, META_IDS, names=(meta,)))
    needs.append(_need("HSET", meta, META_IDS, "", names=(meta,)))
    # tailor.operators.redis.upgrade: profiles of an earlier release get their memberships
    needs.append(_need("SCAN", "0", "MATCH", user, "COUNT", "1", "TYPE", "hash"))
    needs.append(_need("HSETNX", user, "memberships", "", names=(user,)))
    for key in (
        optout_key(prefix),
        blocklist,
    ):  # tailor.operators.redis.control: a fresh worker's replay
        needs.append(_need("SMEMBERS", key, names=(key,)))
    needs.append(
        _need("XADD", control_key(prefix), "*", "payload", "", names=(control_key(prefix),))
    )
    # tailor.operators.redis.control: consumed requests leave once durable (recovery on)
    control = control_key(prefix)
    needs.append(_need("XTRIM", control, "MINID", "0-1", names=(control,)))
    # tailor.operators.redis.sink: pipelines of scripts, loaded when the server lacks them
    needs.append(_need("SCRIPT", "EXISTS", _SHA, sub=True))
    needs.append(_need("SCRIPT", "LOAD", "return 0", sub=True))
    # USER_SCRIPT's keys (tailor.operators.redis.sink), ERASE_SCRIPT's, SEGMENT_SCRIPT's
    script = (user, recs, blocklist, segments_key(prefix), updates)
    needs.append(_need("EVALSHA", _SHA, "6", *script, segment, names=(*script, segment)))
    model = (model_key(prefix), segment_history_key(prefix), segment)  # MODEL_SCRIPT, history
    needs.append(_need("EVALSHA", _SHA, "3", *model, names=model))
    needs.append(_need("EVALSHA", _SHA, "2", user, recs, names=(user, recs)))
    pair = (segments_key(prefix), segment)
    needs.append(_need("EVALSHA", _SHA, "2", *pair, names=pair))
    for key in (segments_key(prefix), model_key(prefix), quality_key(prefix)):
        needs.append(_need("EVALSHA", _SHA, "1", key, names=(key,)))
    needs += _script_needs(prefix, user, recs, segment, blocklist, churn)
    needs += _fallback_needs(prefix)
    for stream in (updates, control_key(prefix)):  # tailor.operators.redis.erasure.delete_mentions
        needs.append(_need("XRANGE", stream, "-", "+", "COUNT", "1", names=(stream,)))
        needs.append(_need("XDEL", stream, "0-1", names=(stream,)))
    beat = heartbeat_key(prefix, 0)  # tailor.operators.redis.heartbeat: each worker's beat
    needs.append(_need("SET", beat, "", "PX", "1", names=(beat,)))
    needs.append(_need("DEL", beat, names=(beat,)))
    return needs + _deadletter_needs(prefix)


def _deadletter_needs(prefix: str) -> list[Need]:
    """`tailor.operators.redis.deadletters`: one script over the stream and its index of
    identities."""
    dead, index = deadletter_stream(prefix), deadletter_index(prefix)
    return [
        _need("EVALSHA", _SHA, "2", dead, index, names=(dead, index)),
        _need("XADD", dead, "*", "payload", "", names=(dead,)),
        _need("XLEN", dead, names=(dead,)),
        _need("XRANGE", dead, "-", "+", "COUNT", "1", names=(dead,)),
        _need("XTRIM", dead, "MAXLEN", "1", names=(dead,)),
        _need("DEL", index, names=(index,)),
        _need("ZSCORE", index, "", names=(index,)),
        _need("ZADD", index, "0", "", names=(index,)),
        _need("ZREMRANGEBYSCORE", index, "0", "0", names=(index,)),
    ]


def _script_needs(
    prefix: str, user: str, recs: str, segment: str, blocklist: str, churn: str
) -> list[Need]:
    """The commands inside `tailor.operators.redis.scripts` and
    `tailor.operators.redis.erasure.ERASE_SCRIPT`."""
    updates, channel = updates_stream(prefix), updates_channel(prefix)
    needs = [
        _need("SCARD", blocklist, names=(blocklist,)),
        _need("SISMEMBER", blocklist, "", names=(blocklist,)),
        _need("HGETALL", user, names=(user,)),
        _need("HMGET", user, "version", "aged_to", names=(user,)),
        _need("HDEL", user, "", names=(user,)),
        _need("GET", recs, names=(recs,)),
        _need("SET", recs, "", "EX", "1", names=(recs,)),
        _need("DEL", user, recs, names=(user, recs)),
        _need("SADD", segment, "", names=(segment,)),
        _need("SREM", segment, "", names=(segment,)),
        _need("SCARD", segment, names=(segment,)),
        _need("PUBLISH", channel, "", names=(channel,)),
        _need("XADD", updates, "MAXLEN", "~", "1", "*", "notice", "", names=(updates,)),
        _need(
            "XADD",
            segment_history_key(prefix),
            "MAXLEN",
            "~",
            "1",
            "*",
            "v",
            "",
            names=(segment_history_key(prefix),),
        ),
    ]
    hashes = (user, model_key(prefix), churn, segments_key(prefix), quality_key(prefix))
    for key in hashes:
        needs.append(_need("HGET", key, "", names=(key,)))
        needs.append(_need("HSET", key, "", "", names=(key,)))
    return needs


def _fallback_needs(prefix: str) -> list[Need]:
    """`tailor.operators.redis.scripts.FALLBACK_SCRIPT`: a published list, the hash of their
    versions, the blocklist."""
    found, versions, blocklist = (
        fallback_key(prefix, "*"),
        fallbacks_key(prefix),
        blocklist_key(prefix),
    )
    return [
        _need("EVALSHA", _SHA, "3", found, versions, blocklist, names=(found, versions, blocklist)),
        _need("HGET", versions, "", names=(versions,)),
        _need("HSET", versions, "", "", names=(versions,)),
        _need("SET", found, "", names=(found,)),
    ]


def acl_rules(prefix: str) -> list[str]:
    """The least a worker's ACL user needs: its keys and channel, and each command it sends.

    >>> " ".join(acl_rules("shop")[:7])
    'resetkeys ~shop:* resetchannels &shop:* -@all +ping +multi'
    """
    commands = dict.fromkeys(need.command for need in worker_needs(prefix, 1))
    return [
        "resetkeys",
        f"~{prefix}:*",
        "resetchannels",
        f"&{prefix}:*",
        "-@all",
        *(f"+{command}" for command in commands),
    ]


def denials(client: redis.Redis, needs: Sequence[Need]) -> tuple[str | None, list[Denial]]:
    """The connected user's name (None when Redis will not say) and the needs it may not use.

    Connection errors are raised: the caller retries them like any other.
    """
    user = _whoami(client)
    if user is not None:
        found = _by_dryrun(client, user, needs)
        if found is not None:
            return user, found
    return user, _by_queueing(client, needs)


def _whoami(client: redis.Redis) -> str | None:
    try:
        return _text(client.execute_command("ACL", "WHOAMI"))
    except redis.ResponseError:  # refused, or a Redis without ACLs
        return None


def _by_dryrun(client: redis.Redis, user: str, needs: Sequence[Need]) -> list[Denial] | None:
    """Denials from ``ACL DRYRUN``; None when it cannot say (refused to this user, or a Redis
    before 7), so the caller probes instead. DRYRUN replies "OK" or says what it would refuse."""
    pipe = client.pipeline(transaction=False)
    for need in needs:
        pipe.execute_command("ACL", "DRYRUN", user, *need.args)
    replies = pipe.execute(raise_on_error=False)
    if any(isinstance(reply, Exception) for reply in replies):
        return None
    return [
        Denial(need, _kind(_text(reply)))
        for need, reply in zip(needs, replies, strict=True)
        if _text(reply) != "OK"
    ]


def _by_queueing(client: redis.Redis, needs: Sequence[Need]) -> list[Denial]:
    """Denials found by queueing each need in a transaction that never runs.

    ``MULTI``, ``EXEC`` (on an empty transaction: it runs nothing) and ``MULTI`` again come
    first; without ``MULTI`` nothing else can be checked safely, so that is the only denial
    then. A refused ``EXEC`` leaves the transaction open, so the rest is still only queued.
    """
    queued = [need for need in needs if need not in TRANSACTION]
    connection = client.connection_pool.get_connection()
    try:
        multi, exec_, again = _send(connection, [("MULTI",), ("EXEC",), ("MULTI",)])
        if isinstance(multi, Exception):
            return [Denial(TRANSACTION[0], _kind(str(multi)))]
        if isinstance(again, Exception) and "nested" not in str(again):  # not in MULTI: stop
            raise redis.ResponseError(f"could not open a transaction to check ACLs: {again}")
        found = [Denial(TRANSACTION[1], _kind(str(exec_)))] if isinstance(exec_, Exception) else []
        replies = _send(connection, [need.args for need in queued])
        return found + [
            Denial(need, _kind(str(reply)))
            for need, reply in zip(queued, replies, strict=True)
            if isinstance(reply, Exception)
        ]
    finally:
        connection.disconnect()  # discards the queued transaction, unexecuted
        client.connection_pool.release(connection)


def _send(connection: Any, commands: Sequence[tuple[str, ...]]) -> list[Any]:
    """Send `commands` in one write and read every reply, error replies as exceptions."""
    connection.send_packed_command(connection.pack_commands(commands))
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(connection.read_response())
        except redis.ResponseError as exc:
            replies.append(exc)
    return replies


def _kind(message: str) -> str:
    """What a refusal is about, from its text (Redis 6.2 to 7.4 word them differently)."""
    lowered = message.lower()
    if "channel" in lowered:
        return "channel"
    if "key" in lowered:
        return "key"
    return "command"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def describe(user: str | None, denied: Sequence[Denial], prefix: str) -> str:
    """One line naming every missing command, key pattern and channel; ``<prefix>:*`` when
    no key the worker uses is allowed (the user is restricted to other keys)."""
    commands = sorted({d.need.command for d in denied if d.kind == "command"})
    keys = sorted({name for d in denied if d.kind == "key" for name in d.need.names})
    if set(keys) >= _all_keys(prefix):
        keys = [f"{prefix}:*"]
    channels = sorted({name for d in denied if d.kind == "channel" for name in d.need.names})
    parts = [
        f"{label} {', '.join(items)}"
        for label, items in (("commands", commands), ("keys", keys), ("channels", channels))
        if items
    ]
    who = f"Redis user {user!r}" if user else "the Redis user"
    return (
        f"{who} lacks permissions the worker needs: {'; '.join(parts)} "
        "(grant them, e.g. with the ACL SETUSER line in the README, Redis permissions)"
    )


def _all_keys(prefix: str) -> set[str]:
    """Every key (and channel) name the worker's needs touch, input partitions aside."""
    return {name for need in worker_needs(prefix, 0) for name in need.names}
