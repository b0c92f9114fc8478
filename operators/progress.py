"""Source progress that travels with the data, for the models step's event-time order.

Bytewax has no in-band watermarks, so each source partition numbers its batches and stamps
every record with (partition, batch number, batch size): `tailor.state.segments.event_order` counts
the records of a batch as they reach the models step, by whatever path, and knows the batch is
complete when all are in. Every step on the way keeps one promise: a stamped record leaves
either as itself (an event, an update) or as a `Progress` mark (refused, duplicate, late).

A partition also announces, with a one-record batch of its own, that it ran dry (`IDLE`: it
stops holding the others back until its next batch) or that it ended (`END`).

>>> stamper = BatchStamper("tailor:events:0")
>>> stamper.data(3)
Stamp(origin='tailor:events:0', seq=0, size=3, kind='data')
>>> stamper.idle(0.0).stamp.kind, stamper.idle(0.0)  # announced once per idle spell
('idle', None)
>>> stamper.data(1).seq
2
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from tailor.operators.records import (
    Aged,
    DeadLetter,
    Learned,
    Progress,
    RawRecord,
    Stamp,
    UserUpdate,
)
from tailor.state.segments.event_order import DATA, END, IDLE

__all__ = [
    "BatchStamper",
    "announcement_progress",
    "dead_letter_progress",
    "dropped",
    "is_announcement",
    "keep_stamp",
]

#: The records the models step counts towards their batch (each carries its input's stamp).
CARRIERS = (UserUpdate, Aged, Learned, Progress)
T = TypeVar("T")


class BatchStamper:
    """One partition's batch numbering; `seq` is part of the partition's snapshot.

    `origin` names the partition (Bytewax's part name); `record_origin` is what the
    partition's records give as `RawRecord.origin`, if other (a file's "file:" prefix).
    """

    def __init__(self, origin: str, seq: int = 0, record_origin: str | None = None) -> None:
        self.origin = origin
        self.seq = seq
        self.record_origin = origin if record_origin is None else record_origin
        self._idle = False

    def data(self, size: int) -> Stamp:
        """The stamp of the next batch of `size` records."""
        self._idle = False
        return self._next(size, DATA)

    def idle(self, read_at: float) -> RawRecord | None:
        """The announcement that the partition ran dry, or None if already made."""
        if self._idle:
            return None
        self._idle = True
        return self._announce(IDLE, read_at)

    def end(self, read_at: float) -> RawRecord:
        """The announcement that the partition has ended."""
        return self._announce(END, read_at)

    def _announce(self, kind: str, read_at: float) -> RawRecord:
        return RawRecord(b"", self.record_origin, "", read_at, self._next(1, kind))

    def _next(self, size: int, kind: str) -> Stamp:
        stamp = Stamp(self.origin, self.seq, size, kind)
        self.seq += 1
        return stamp


def is_announcement(record: RawRecord) -> bool:
    """True for a partition's idle/end announcement, which is not a payload to validate."""
    return record.stamp is not None and record.stamp.kind != DATA


def announcement_progress(record: RawRecord) -> Progress:
    """The announcement as the models step counts it."""
    assert record.stamp is not None  # filtered by `is_announcement`
    return Progress(record.stamp)


def dropped(stamp: Stamp | None, ts: float | None = None) -> Progress | None:
    """What a step sends in place of a stamped record it drops (refused, duplicate, late,
    erased, an aging tick with nothing to age): the one promise every step keeps, or the
    models step's event-time order waits for the record for ever. `ts` moves the
    partition's clock (an event's time); None moves none (a tick, a refused payload).
    An unstamped record (a test's, a replica's own) needs nothing."""
    return None if stamp is None else Progress(stamp, ts)


def keep_stamp(stamp: Stamp | None, ts: float | None, outputs: Sequence[T]) -> list[T | Progress]:
    """What a step sends for one input record: its `outputs`, plus the `dropped` mark when
    none of them carries the input's stamp on to the models step (a dead letter or an
    erasure does not). A step that passes every input's outputs through this cannot break
    the promise, whatever it decides to drop.

    >>> stamp = Stamp("p", 0, 1, DATA)
    >>> keep_stamp(stamp, 5.0, [])
    [Progress(stamp=Stamp(origin='p', seq=0, size=1, kind='data'), ts=5.0)]
    >>> len(keep_stamp(stamp, 5.0, [Progress(stamp, 5.0)]))  # carried on already
    1
    >>> keep_stamp(None, 5.0, [])  # an unstamped input needs nothing
    []
    """
    kept: list[T | Progress] = list(outputs)
    if stamp is None or any(isinstance(o, CARRIERS) and o.stamp == stamp for o in outputs):
        return kept
    kept.append(Progress(stamp, ts))
    return kept


def dead_letter_progress(letter: DeadLetter) -> Progress | None:
    """A refused record still counts towards its batch (it has no event time)."""
    return dropped(letter.stamp)
