"""Pseudonymous user ids: a keyed HMAC replaces every user id before anything is stored.

With `privacy.pseudonymize` on, the worker never keeps a raw user id: state, profiles,
recommendations, memberships and notifications all use `pseudonym(secret, user_id)`. The
secret comes from the environment (`TAILOR_PSEUDONYM_SECRET`), never from the config file,
so whoever reads Redis or a recovery snapshot cannot reverse or recompute the mapping without
it. The same secret must be used by every worker and by `tailor inspect`; rotating it starts
every user afresh. Dead letters keep the raw payload (they exist to debug producers): keep
that stream short (`output.deadletter_maxlen`) and behind an ACL.

Whoever erases a user must store-side name them as the worker does, so the worker records its
id mode in the hash ``{prefix}:meta`` (field ``ids``) when it starts: ``plain``, or
``hmac-sha256:`` and a fingerprint of the key, the HMAC of a fixed label. The fingerprint
tells two keys apart without revealing either; it helps guess a weak secret no more than
any stored pseudonym of a known user id already does.

>>> id_mode(None), id_mode(b"k") == id_mode(b"k") != id_mode(b"other")
('plain', True)

>>> pseudonym(b"k", "alice") == pseudonym(b"k", "alice") != pseudonym(b"other", "alice")
True
>>> len(pseudonym(b"k", "alice"))
32
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging

import bytewax.operators as op
import redis
from bytewax.dataflow import Stream, operator

from tailor.operators.records import Accepted
from tailor.operators.redis.keys import META_IDS, meta_key

log = logging.getLogger("tailor")

#: Hex digits kept of the HMAC-SHA256 (128 bits): unique for any realistic user count.
DIGITS = 32
#: The id mode of a worker without pseudonyms: raw user ids are stored.
PLAIN = "plain"
#: What the key's fingerprint is the HMAC of: never a user id the worker would store.
FINGERPRINT_LABEL = b"tailor:pseudonym-key-fingerprint"


def pseudonym(secret: bytes, user_id: str) -> str:
    """The stable pseudonym of `user_id` under `secret` (hex of a truncated HMAC-SHA256)."""
    return hmac.new(secret, user_id.encode("utf-8"), hashlib.sha256).hexdigest()[:DIGITS]


def id_mode(secret: bytes | None) -> str:
    """``plain``, or ``hmac-sha256:<fingerprint of the key>`` (16 hex digits, 64 bits)."""
    if secret is None:
        return PLAIN
    digest = hmac.new(secret, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]
    return f"hmac-sha256:{digest}"


def recorded_id_mode(client: redis.Redis, prefix: str) -> str | None:
    """The id mode the worker recorded under `prefix`, None when no worker has started yet."""
    value = client.hget(meta_key(prefix), META_IDS)
    return value.decode() if isinstance(value, bytes) else value


def record_id_mode(client: redis.Redis, prefix: str, mode: str) -> None:
    """Record this worker's id mode (see the module docstring); say so when it changed.

    A change means the data already under the prefix is keyed by other ids (a new key
    starts every user afresh, README, "Security and privacy"): worth a warning, not a
    refusal, since rotating the key is a legitimate choice.
    """
    previous = recorded_id_mode(client, prefix)
    if previous is not None and previous != mode:
        log.warning(
            "user ids under prefix %r were stored as %s, this worker stores them as %s: "
            "users already stored are not found under their new ids",
            prefix,
            previous,
            mode,
        )
    client.hset(meta_key(prefix), META_IDS, mode)


@operator
def pseudonymize(step_id: str, up: Stream[Accepted], secret: bytes) -> Stream[Accepted]:
    """Replace each event's user id with its pseudonym, before it is keyed or stored."""

    def replace(accepted: Accepted) -> Accepted:
        event = dataclasses.replace(
            accepted.event, user_id=pseudonym(secret, accepted.event.user_id)
        )
        return dataclasses.replace(accepted, event=event)

    return op.map("hmac", up, replace)
