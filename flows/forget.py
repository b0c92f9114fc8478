"""`tailor forget USER [--opt-out]`: erase a user everywhere Tailor keeps anything.

The worker erases what it derived (its state, the profile, recommendations, memberships,
notifications, co-occurrence contributions) when the request reaches it through the control
stream. This command also removes the raw input Tailor was given: the user's entries in the
event streams and in the dead-letter stream, which the worker never rewrites. That scan is
linear in the streams' length: erasure is rare, and correctness beats speed here.

The user must be named as the worker stores them. With pseudonyms the worker stores the
HMAC of the id, and a forget run without the worker's key would erase nothing it derived
while reporting success; so the command compares its id mode with the one the worker
recorded (`tailor.operators.pseudonym.recorded_id_mode`) and refuses, before deleting anything,
when they differ.
"""

from __future__ import annotations

import logging

import redis

from tailor.flows.config import SECRET_ENV, ConfigError
from tailor.operators.pseudonym import PLAIN, id_mode, pseudonym, recorded_id_mode
from tailor.operators.redis.control import request_forget
from tailor.operators.redis.erasure import delete_mentions
from tailor.operators.redis.keys import deadletter_stream, meta_key, stream_key
from tailor.operators.redis.routing import partition_for

log = logging.getLogger("tailor")


def forget(
    client: redis.Redis,
    prefix: str,
    partitions: int,
    user_id: str,
    opt_out: bool = False,
    secret: bytes | None = None,
    workers: int = 1,
) -> dict[str, int]:
    """Ask the worker to erase the user, and delete the user's raw input; returns counts.

    Raises `ConfigError` (and changes nothing) when `secret` does not match the worker's
    id mode: see the module docstring.
    """
    check_id_mode(client, prefix, secret)
    stored_id = pseudonym(secret, user_id) if secret else user_id
    # the partition of either routing rule: a producer may route by crc32 alone
    routed = {partition_for(user_id, partitions), partition_for(user_id, partitions, workers)}
    ids = {user_id, stored_id}  # late events are dead-lettered under the stored id
    # Input first, so no unread event of the user can re-create them after the erasure.
    counts = {
        "input_entries": sum(
            delete_mentions(client, stream_key(prefix, p), b"payload", ids) for p in sorted(routed)
        ),
        "dead_letters": delete_mentions(client, deadletter_stream(prefix), b"payload", ids),
    }
    request_forget(client, prefix, stored_id, opt_out)
    return counts


def check_id_mode(
    client: redis.Redis, prefix: str, secret: bytes | None, command: str = "forget"
) -> None:
    """Refuse when `command` would name users otherwise than the worker stores them.

    No recorded mode means no worker has started under the prefix: nothing derived exists
    yet, so the command's own settings are used (an opt-out recorded now must still match
    the worker that starts later: hence the warning).
    """
    recorded = recorded_id_mode(client, prefix)
    mine = id_mode(secret)
    if recorded is None:
        log.warning(
            "no worker has recorded how it stores user ids under prefix %r (%s): "
            "%s with this command's settings (%s)",
            prefix,
            meta_key(prefix),
            command,
            mine,
        )
        return
    if recorded == mine:
        return
    changed = "; nothing was deleted" if command == "forget" else ""
    raise ConfigError(f"{command}: {_mismatch(recorded, mine)}{changed}")


def _mismatch(recorded: str, mine: str) -> str:
    """One line naming both sides of an id-mode mismatch and what to change."""
    if mine == PLAIN:
        return (
            f"the worker stores pseudonymous user ids ({recorded}) but this command runs "
            f"without them: set privacy.pseudonymize = true and {SECRET_ENV} as the worker does"
        )
    if recorded == PLAIN:
        return (
            "the worker stores raw user ids but this command has privacy.pseudonymize on: "
            "run it with the worker's settings (privacy.pseudonymize = false)"
        )
    return (
        f"{SECRET_ENV} is not the worker's pseudonym key (fingerprint {mine}, the worker's "
        f"is {recorded}): set the worker's key"
    )
