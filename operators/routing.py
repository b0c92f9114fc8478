"""Which Redis stream partition a user's events go to.

Producer and worker must agree on this for ever: a user's events have to land on one stream
so one partition sees them in order, and per-user state lives with that partition. Python's
`hash()` is salted per process, so routing uses CRC-32, which any language computes the same.

>>> partition_for("u1", 4)
2
>>> partition_for("u1", 4) == partition_for("u1", 4)
True
>>> stream_key("tailor", 2)
'tailor:events:2'
"""

from __future__ import annotations

import zlib


def partition_for(user_id: str, partitions: int) -> int:
    """The partition of `user_id` among `partitions`: stable across processes and languages.

    >>> [partition_for(u, 8) for u in ("alice", "bob", "carol")]
    [7, 0, 3]
    """
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    return zlib.crc32(user_id.encode("utf-8")) % partitions


def stream_key(prefix: str, partition: int) -> str:
    """The Redis stream holding one partition's events.

    >>> stream_key("shop", 0)
    'shop:events:0'
    """
    return f"{prefix}:events:{partition}"
