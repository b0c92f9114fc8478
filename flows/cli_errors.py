"""What the `tailor` command says when it fails: one line on stderr, and an exit code.

Every failure a user can cause or fix maps here to a line naming the problem (and what to do
where it is obvious) and a code: `USAGE` (2) for the command line and the configuration (an
unknown adapter, a bad settings file, a missing input file, credentials or permissions Redis
refuses: waiting never fixes those), `RUNTIME` (1) for what went wrong while working (Redis
unreachable or failing, a disk error), `INTERRUPTED` (130) for Ctrl-C. Anything else is a bug
and keeps its traceback: a crashed worker cannot be re-run with a debug switch, and the
traceback is what its report needs.

>>> explain(redis.AuthenticationError("invalid username-password pair")).code
2
>>> print(explain(redis.ConnectionError("Connection refused")).message)
cannot reach Redis (Connection refused); is it running, and is REDIS_URL right?
>>> explain(RuntimeError("a bug")) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from tailor.flows.settings import ConfigError
from tailor.operators.replay.adapter_checks import AdapterError

__all__ = ["INTERRUPTED", "RUNTIME", "USAGE", "Failure", "explain", "one_line"]

USAGE = 2
RUNTIME = 1
INTERRUPTED = 130  # 128 + SIGINT, as shells report it
#: A path the user gave that is not there or not theirs: their command line to fix.
_BAD_PATH = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)
#: How Redis says a connection brought no credentials where it needs some.
_NO_CREDENTIALS = ("NOAUTH", "HELLO must be called with the client already authenticated")


@dataclass(frozen=True, slots=True)
class Failure:
    """An exit code and the line that explains it (without the leading ``tailor: ``)."""

    code: int
    message: str


def explain(exc: BaseException) -> Failure | None:
    """The line and code for a failure a user can act on; None for a bug."""
    if isinstance(exc, ConfigError):
        return Failure(USAGE, f"configuration error: {exc}")
    if isinstance(exc, AdapterError):  # a file its adapter cannot read: nothing was published
        return Failure(USAGE, str(exc))
    if isinstance(exc, redis.RedisError):
        return _redis_failure(exc)
    if isinstance(exc, OSError):
        return _os_failure(exc)
    if isinstance(exc, KeyboardInterrupt):
        return Failure(INTERRUPTED, "interrupted")
    return None


def _redis_failure(exc: redis.RedisError) -> Failure:
    """Credentials, permissions and TLS are configuration; the rest happened at run time."""
    text = str(exc)
    if isinstance(exc, redis.AuthenticationError):
        if any(marker in text for marker in _NO_CREDENTIALS):
            return _config(
                "redis.url: Redis requires a password and the URL gives none "
                "(redis://USER:PASSWORD@host:port/db)"
            )
        return _config(
            f"redis.url: Redis refused the credentials ({text}); check the user name and password"
        )
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return _config(
            f"redis.url: the Redis user lacks a permission ({text}); "
            "`tailor acl` prints the ones Tailor needs"
        )
    if isinstance(exc, redis.ConnectionError) and ("SSL" in text or "certificate" in text):
        return _config(f"redis.url: TLS handshake failed ({text})")
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return Failure(
            RUNTIME, f"cannot reach Redis ({text}); is it running, and is REDIS_URL right?"
        )
    return Failure(RUNTIME, f"Redis failed: {text}")


def _os_failure(exc: OSError) -> Failure:
    """A path the user named that does not work is usage; any other OS error is run time."""
    reason = exc.strerror or str(exc)
    if exc.filename is None:
        return Failure(RUNTIME, reason)
    code = USAGE if isinstance(exc, _BAD_PATH) else RUNTIME
    return Failure(code, f"{exc.filename}: {reason}")


def _config(message: str) -> Failure:
    return Failure(USAGE, f"configuration error: {message}")


def one_line(text: str) -> str:
    """`text` on one line: a quoted server reply or TOML error may span several."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())
