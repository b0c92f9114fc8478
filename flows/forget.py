"""`tailor forget USER [--opt-out]`: erase a user everywhere Tailor keeps anything.

The worker erases what it derived (its state, the profile, recommendations, memberships,
notifications, co-occurrence contributions) when the request reaches it through the control
stream. This command also removes the raw input Tailor was given: the user's entries in the
event streams and in the dead-letter stream, which the worker never rewrites. That scan is
linear in the streams' length: erasure is rare, and correctness beats speed here.
"""

from __future__ import annotations

import redis

from operators.control import request_forget
from operators.erasure import delete_mentions
from operators.keys import deadletter_stream
from operators.pseudonym import pseudonym
from operators.routing import partition_for, stream_key


def forget(
    client: redis.Redis,
    prefix: str,
    partitions: int,
    user_id: str,
    opt_out: bool = False,
    secret: bytes | None = None,
) -> dict[str, int]:
    """Ask the worker to erase the user, and delete the user's raw input; returns counts."""
    stored_id = pseudonym(secret, user_id) if secret else user_id
    events = stream_key(prefix, partition_for(user_id, partitions))
    ids = {user_id, stored_id}  # late events are dead-lettered under the stored id
    # Input first, so no unread event of the user can re-create them after the erasure.
    counts = {
        "input_entries": delete_mentions(client, events, b"payload", ids),
        "dead_letters": delete_mentions(client, deadletter_stream(prefix), b"payload", ids),
    }
    request_forget(client, prefix, stored_id, opt_out)
    return counts
