"""Which keys `tailor demo` may delete on a Redis it shares: only Tailor's, only its own.

The demo republishes the same sample on every run, so it starts from a cleared prefix. On the
embedded Redis the demo owns the whole server. On a Redis named by `REDIS_URL` the prefix may
hold someone else's data (a deployment's streams and profiles, or keys that merely share the
prefix), so the demo marks a prefix it starts on with ``<prefix>:demo`` and clears a prefix
only when that marker says an earlier demo wrote there, or when told to with ``--reset``.
Even then it deletes only the keys of Tailor's key schema (`tailor.operators.redis.keys`), never
other keys under the prefix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase

import redis

from tailor.operators.redis.keys import demo_marker_key, schema_patterns

#: Keys deleted per UNLINK: one round trip per batch, without one huge command.
UNLINK_BATCH = 500


def glob_escape(text: str) -> str:
    """`text` as a literal in a Redis SCAN pattern (a prefix may hold ``*``, ``?`` or ``[``).

    >>> glob_escape("shop*1")
    'shop\\\\*1'
    """
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)


#: Tailor's keys, the only ones the demo ever deletes.
SCHEMA_PATTERNS = schema_patterns()


def is_tailor_key(prefix: str, key: bytes) -> bool:
    """Whether `key` (found under ``<prefix>:``) is one of Tailor's keys."""
    rest = key[len(prefix.encode()) + 1 :].decode("utf-8", "replace")
    return any(fnmatchcase(rest, pattern) for pattern in SCHEMA_PATTERNS)


def keys_under(client: redis.Redis, prefix: str) -> Iterator[bytes]:
    """Every key whose name starts with ``<prefix>:``."""
    yield from client.scan_iter(match=glob_escape(prefix) + ":*", count=1000)


@dataclass(frozen=True)
class PrefixState:
    """What is under a prefix before the demo writes there."""

    prefix: str
    keys: int
    tailor_keys: int
    marked: bool

    @property
    def free(self) -> bool:
        """Whether the demo may take the prefix as it is: empty, or marked by a demo."""
        return self.marked or self.keys == 0

    def refusal(self) -> str:
        """One line: why the demo stopped, and the two ways on."""
        return (
            f"tailor demo: prefix {self.prefix!r} holds {self.keys} key(s) that no earlier demo "
            f"wrote ({self.tailor_keys} of them Tailor's); nothing was changed. Use an unused "
            "prefix (redis.prefix or TAILOR_REDIS_PREFIX), or pass --reset to delete those "
            f"{self.tailor_keys} Tailor key(s) (streams, profiles, recommendations, segments) "
            "and run the demo there; other keys are never deleted"
        )


def prefix_state(client: redis.Redis, prefix: str) -> PrefixState:
    keys = tailor = 0
    for key in keys_under(client, prefix):
        keys += 1
        tailor += is_tailor_key(prefix, key)
    return PrefixState(prefix, keys, tailor, bool(client.exists(demo_marker_key(prefix))))


def claim(client: redis.Redis, prefix: str) -> int:
    """Mark the prefix as the demo's, then delete its Tailor keys; returns how many.

    The marker goes first, so a demo stopped half-way is still recognised by the next run.
    """
    client.set(demo_marker_key(prefix), "written by `tailor demo`; it clears Tailor's keys here")
    doomed = [
        key
        for key in keys_under(client, prefix)
        if is_tailor_key(prefix, key) and key != demo_marker_key(prefix).encode()
    ]
    for start in range(0, len(doomed), UNLINK_BATCH):
        client.unlink(*doomed[start : start + UNLINK_BATCH])
    return len(doomed)
