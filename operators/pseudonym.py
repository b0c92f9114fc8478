"""Pseudonymous user ids: a keyed HMAC replaces every user id before anything is stored.

With `privacy.pseudonymize` on, the worker never keeps a raw user id: state, profiles,
recommendations, memberships and notifications all use `pseudonym(secret, user_id)`. The
secret comes from the environment (`TAILOR_PSEUDONYM_SECRET`), never from the config file,
so whoever reads Redis or a recovery snapshot cannot reverse or recompute the mapping without
it. The same secret must be used by every worker and by `tailor inspect`; rotating it starts
every user afresh. Dead letters keep the raw payload (they exist to debug producers): keep
that stream short (`output.deadletter_maxlen`) and behind an ACL.

>>> pseudonym(b"k", "alice") == pseudonym(b"k", "alice") != pseudonym(b"other", "alice")
True
>>> len(pseudonym(b"k", "alice"))
32
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac

import bytewax.operators as op
from bytewax.dataflow import Stream, operator

from operators.records import Accepted

#: Hex digits kept of the HMAC-SHA256 (128 bits): unique for any realistic user count.
DIGITS = 32


def pseudonym(secret: bytes, user_id: str) -> str:
    """The stable pseudonym of `user_id` under `secret` (hex of a truncated HMAC-SHA256)."""
    return hmac.new(secret, user_id.encode("utf-8"), hashlib.sha256).hexdigest()[:DIGITS]


@operator
def pseudonymize(step_id: str, up: Stream[Accepted], secret: bytes) -> Stream[Accepted]:
    """Replace each event's user id with its pseudonym, before it is keyed or stored."""

    def replace(accepted: Accepted) -> Accepted:
        event = dataclasses.replace(
            accepted.event, user_id=pseudonym(secret, accepted.event.user_id)
        )
        return dataclasses.replace(accepted, event=event)

    return op.map("hmac", up, replace)
