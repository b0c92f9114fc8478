"""Replay dataset files as a stream: one Bytewax partition per file.

Used by `tailor demo`, benchmarks and tests to drive the same dataflow as production without
Redis on the input side. The snapshot is the number of records already emitted (and of
batches, for `tailor.operators.progress`), so a resumed partition skips exactly those (adapters are
deterministic, so the same records) and carries on. A file's end is announced (`END`).

Batches are bounded like the Redis source's (`tailor.operators.payload_limits`): by entries and by
bytes, and a line longer than `max_payload_bytes` is kept as its prefix, length and SHA-1 as
soon as it is read, so a batch never holds a huge line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from tailor.operators import lifecycle
from tailor.operators.metrics import SOURCE_BATCH
from tailor.operators.payload_limits import Bounded, PayloadLimits
from tailor.operators.progress import BatchStamper
from tailor.operators.records import RawRecord
from tailor.operators.replay.adapters import read_payloads

#: Records emitted, batches stamped.
ReplayState = tuple[int, int]


class _ReplayPartition(StatefulSourcePartition[RawRecord, ReplayState]):
    def __init__(
        self,
        name: str,
        payloads: Iterator[bytes],
        resume: ReplayState,
        batch_size: int,
        *,
        limits: PayloadLimits,
    ) -> None:
        self._origin = f"file:{name}"
        done, seq = resume
        self._done = done
        self._stamper = BatchStamper(name, seq, self._origin)
        self._ended = False
        self._batch_size = batch_size
        self._limits = limits
        self._payloads = payloads
        #: A payload read but left for the next batch (it would have passed the byte budget);
        #: not counted in `_done`, so a resume reads it again.
        self._pending: tuple[Bounded, int] | None = None
        # Skip what an earlier run already emitted: consume without keeping.
        for _ in islice(self._payloads, done):
            pass

    def next_batch(self) -> list[RawRecord]:
        if lifecycle.stop_requested() or self._ended:
            raise StopIteration
        chunk = self._take()
        read_at = time.time()
        if not chunk:
            self._ended = True
            return [self._stamper.end(read_at)]
        start = self._done
        self._done += len(chunk)
        SOURCE_BATCH.labels("replay").observe(len(chunk))
        stamp = self._stamper.data(len(chunk))
        return [
            RawRecord(payload, self._origin, str(start + i), read_at, stamp, size, sha1)
            for i, (payload, size, sha1) in enumerate(chunk)
        ]

    def _take(self) -> list[Bounded]:
        """Up to `batch_size` payloads whose whole lengths fit the byte budget (at least one)."""
        chunk: list[Bounded] = []
        used, budget = 0, self._limits.batch_max_bytes
        while len(chunk) < self._batch_size and used < budget:
            if self._pending is None:
                payload = next(self._payloads, None)
                if payload is None:
                    break
                self._pending = (self._limits.bound(payload), len(payload))
            bounded, length = self._pending
            if chunk and used + length > budget:
                break
            chunk.append(bounded)
            used += length
            self._pending = None
        return chunk

    def snapshot(self) -> ReplayState:
        return (self._done, self._stamper.seq)

    def close(self) -> None:
        close = getattr(self._payloads, "close", None)
        if close is not None:
            close()


def part_names(paths: Sequence[Path]) -> list[str]:
    """File names, made unique with a `#n` suffix: partition names key Bytewax's snapshots.

    >>> part_names([Path("a/x.csv"), Path("b/x.csv"), Path("y.csv")])
    ['x.csv', 'x.csv#2', 'y.csv']
    """
    names: list[str] = []
    seen: dict[str, int] = {}
    for path in paths:
        count = seen.get(path.name, 0) + 1
        seen[path.name] = count
        names.append(path.name if count == 1 else f"{path.name}#{count}")
    return names


class ReplaySource(FixedPartitionedSource[RawRecord, ReplayState]):
    """Payloads from files through `tailor.operators.replay.adapters`; `offset` is the 0-based
    record number.

    `limits` bounds each batch in bytes and cuts oversized lines
    (`tailor.operators.payload_limits`).

    Each partition ends at end of file, or at the next read after `lifecycle.request_stop()`.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        adapter: str | None = None,
        batch_size: int = 1000,
        *,
        limits: PayloadLimits,
    ) -> None:
        self.paths = list(paths)
        self.adapter = adapter
        self.batch_size = batch_size
        self.limits = limits

    def list_parts(self) -> list[str]:
        return part_names(self.paths)

    def build_part(
        self, step_id: str, for_part: str, resume_state: ReplayState | int | None
    ) -> _ReplayPartition:
        path = self.paths[self.list_parts().index(for_part)]
        payloads = read_payloads(path, self.adapter)
        if resume_state is None or isinstance(resume_state, int):  # int: before batch stamps
            resume_state = (resume_state or 0, 0)
        return _ReplayPartition(
            for_part, payloads, resume_state, self.batch_size, limits=self.limits
        )
