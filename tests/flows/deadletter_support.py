"""What a dead letter should hold for a payload, for tests that compare letters with input."""

from __future__ import annotations

import hashlib
from typing import Any

#: The defaults of `validation.max_payload_bytes` and `validation.too_large_prefix_bytes`.
MAX_PAYLOAD_BYTES = 65536
PREFIX_BYTES = 1024

#: A letter's (payload, size, sha1) fields; the last two only for a payload cut to its prefix.
Held = tuple[bytes, bytes | None, bytes | None]


def as_lettered(payload: bytes) -> Held:
    """`payload` as its dead letter should hold it: a too-large one is cut to its prefix,
    with its whole length and SHA-1."""
    if len(payload) <= MAX_PAYLOAD_BYTES:
        return payload, None, None
    digest = hashlib.sha1(payload).hexdigest().encode()
    return payload[:PREFIX_BYTES], str(len(payload)).encode(), digest


def held(letter: dict[bytes, Any]) -> Held:
    """A dead-letter stream entry's (payload, size, sha1)."""
    return letter[b"payload"], letter.get(b"size"), letter.get(b"sha1")
