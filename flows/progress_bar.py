"""A tiny terminal progress bar for long replays (`tailor produce`, `tailor demo`).

It writes to stderr with `\\r` so stdout stays clean for pipes, and it is silent when stderr
is not a terminal (CI logs, redirected output) or when disabled, so callers never branch.
Redraws are rate-limited: updating per event must cost nothing measurable. Hand-made rather
than tqdm: ~100 lines against a dependency every install would carry for two commands.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO


def _duration(seconds: float) -> str:
    """Compact h:mm:ss / m:ss.

    >>> _duration(75), _duration(3725)
    ('1:15', '1:02:05')
    """
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def render(label: str, done: int, total: int | None, elapsed_s: float) -> str:
    """One status line: count, percentage and ETA when the total is known, and the rate.

    >>> render("events", 500, 1000, 2.0)
    'events 500/1,000 50.0% 250/s ETA 0:02'
    >>> render("events", 500, None, 2.0)
    'events 500 250/s'
    """
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    parts = [label]
    if total and done <= total:
        eta = _duration((total - done) / rate) if rate > 0 else "?"
        parts += [
            f"{done:,}/{total:,}",
            f"{100 * done / total:.1f}%",
            f"{rate:,.0f}/s",
            f"ETA {eta}",
        ]
    else:
        parts += [f"{done:,}", f"{rate:,.0f}/s"]
    return " ".join(parts)


class ProgressBar:
    """Progress of a count towards an optional total, drawn on one terminal line."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        enabled: bool = True,
        stream: TextIO | None = None,
        min_interval_s: float = 0.2,
    ) -> None:
        self.label = label
        self.total = total
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled and self.stream.isatty()
        self.min_interval_s = min_interval_s
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._done = 0

    def update(self, done: int) -> None:
        """Record that `done` items are finished; redraw at most every `min_interval_s`."""
        self._done = done
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last_draw >= self.min_interval_s:
            self._last_draw = now
            self._draw(now)

    def close(self) -> None:
        """Draw the final count and end the line."""
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, now: float) -> None:
        line = render(self.label, self._done, self.total, now - self._start)
        self.stream.write(f"\r{line}\x1b[K")
        self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
