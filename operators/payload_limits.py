"""How much of its input a source may hold at once: the bounds that keep hostile load flat.

Validation refuses a payload longer than `max_payload_bytes` as ``too_large``, but that alone
bounds nothing: a source that reads a thousand 5 MB entries holds 5 GB before validation sees
one. So the sources enforce two bounds themselves:

- a batch stops before its payloads add up to more than `batch_max_bytes` (counting each
  payload's whole length, so a huge one is read alone), always taking at least one entry so
  a partition makes progress;
- a payload longer than `max_payload_bytes` is kept as its first `prefix_bytes` bytes, its
  length and its SHA-1 (`Bounded`): enough to find and compare it, never the payload itself. The
  Redis source cuts inside Redis (`tailor.operators.redis.stream_read`), so such a payload never
  even crosses the network; a file replay cuts each line as it is read.

>>> limits = PayloadLimits(max_payload_bytes=8, prefix_bytes=3, batch_max_bytes=100)
>>> limits.bound(b"small")
(b'small', None, None)
>>> limits.bound(b"far too large")[:2]
(b'far', 13)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

#: A payload as a source keeps it: (bytes kept, whole length, SHA-1 hex digest), the last two
#: None when the bytes kept are the whole payload.
Bounded = tuple[bytes, int | None, str | None]


@dataclass(frozen=True)
class PayloadLimits:
    """`validation.max_payload_bytes`, `validation.too_large_prefix_bytes` and
    `source.batch_max_bytes`, as the sources apply them (`tailor.flows.worker.payload_limits`)."""

    max_payload_bytes: int
    prefix_bytes: int
    batch_max_bytes: int

    def bound(self, payload: bytes) -> Bounded:
        """The payload whole, or cut to its prefix with its length and hash when too large."""
        if len(payload) <= self.max_payload_bytes:
            return payload, None, None
        return payload[: self.prefix_bytes], len(payload), sha1_hex(payload)


def sha1_hex(payload: bytes) -> str:
    """The digest Redis's `redis.sha1hex` gives, so either side of a cut agrees on it."""
    return hashlib.sha1(payload, usedforsecurity=False).hexdigest()
