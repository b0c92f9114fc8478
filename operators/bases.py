"""Model bases: the large, rarely rewritten part of a replica's snapshot, each under its own key.

Bytewax snapshots a key whole at the end of every epoch in which it was touched, so the replica
step wrote its whole models every epoch. With bases (`tailor.state.increments`), each large
component (co-occurrence, FISM's item table, popularity) is written now and then as a *base*, a
record the replica emits to the `bases` step under a key of its own, which Bytewax snapshots once
(the epoch it arrives) and then leaves alone; the replica's own snapshot holds a reference to
each base and only the changes since. Both are written in the same epoch, and Bytewax commits
an epoch for every step at once, so a resume finds the base that its replica snapshot names.

When a base is taken (`ReplicaBases.due`, at the end of a batch, never at the epoch end where
the stream waits): a component's first base at the first batch after it was written whole (a
fresh start or a resume), then, one a batch, those whose changes at the last snapshot had
grown past `RECUT` times their base. A new base gets a new key (a serial number); the key it
replaces is discarded in the same epoch (a tombstone), which a resume from an earlier epoch
does not see. Base keys are chosen to be placed on the replica's own worker
(`tailor.operators.redis.routing.worker_of`), so a base never crosses a process.

At a resume the replica reads the bases its snapshot names through `ModelParams.base_loader`
(`tailor.flows.store`: the newest row before the resume epoch, as Bytewax loads its own keys); the
`bases` step's own copies are not kept in memory.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bytewax.operators import StatefulBatchLogic

from tailor.operators.redis.routing import worker_of
from tailor.state import snapshots
from tailor.state.crossing import crossing
from tailor.state.increments import Reference, Writing

__all__ = ["RECUT", "BaseCut", "KeepBase", "ReplicaBases", "StoredBases", "base_key"]

#: A component gets a new base once the changes since its base pass this share of it.
RECUT = 0.5
_SERIAL = re.compile(r"/(\d+)#\d+$")

BaseLoader = Callable[[str], bytes | None]


@crossing
@dataclass(frozen=True, slots=True)
class BaseCut:
    """A base for the `bases` step: `blob` None discards the key (a base no longer named)."""

    key: str
    blob: bytes | None


def base_key(replica: str, name: str, serial: int, workers: int) -> str:
    """A key for a base of `replica`'s part `name` that Bytewax places on the replica's worker.

    >>> key = base_key("replica:0", "0.CoOccurrence", 7, 3)
    >>> key.startswith("replica:0/0.CoOccurrence/7#")
    True
    >>> worker_of(key, 3) == worker_of("replica:0", 3)
    True
    """
    home = worker_of(replica, workers)
    for suffix in itertools.count():
        key = f"{replica}/{name}/{serial}#{suffix}"
        if worker_of(key, workers) == home:
            return key
    raise AssertionError("unreachable")


class KeepBase(StatefulBatchLogic[bytes | None, None, bytes]):
    """One base key: holds its blob until the epoch-end snapshot writes it, then lets go.

    Bytewax snapshots only keys that received input in the epoch, so a base is written once
    and its store row stays; the copy in memory would only double the models' footprint. A
    resumed key starts empty for the same reason (the replica reads what it needs itself).
    """

    def __init__(self, _resume: bytes | None) -> None:
        self.blob: bytes | None = None

    def on_batch(self, values: list[bytes | None]) -> tuple[list[None], bool]:
        self.blob = values[-1]
        if self.blob is None:
            return [], StatefulBatchLogic.DISCARD
        return [], StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[None], bool]:
        """At the end of input Bytewax snapshots every key; the replica has just replaced
        every base it names (`ReplicaBases.at_eof`), so a key without a new blob is named by
        no snapshot: it goes."""
        return (
            [],
            StatefulBatchLogic.RETAIN if self.blob is not None else StatefulBatchLogic.DISCARD,
        )

    def snapshot(self) -> bytes:
        blob, self.blob = self.blob, None
        if blob is None:  # Bytewax 0.21 never asks an untouched key; refuse to write nothing
            raise RuntimeError("a base key was snapshotted without a new base")
        return blob


class StoredBases(Mapping[str, Mapping[str, Any]]):
    """The bases a resuming replica names, read on demand (`tailor.state.increments.reading`)."""

    def __init__(self, loader: BaseLoader) -> None:
        self._loader = loader
        self.read: dict[str, Mapping[str, Any]] = {}

    def __getitem__(self, key: str) -> Mapping[str, Any]:
        if key not in self.read:
            blob = self._loader(key)
            if blob is None:
                raise KeyError(key)
            self.read[key] = snapshots.decode(blob, "base")
        return self.read[key]

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.read)

    def __len__(self) -> int:
        return len(self.read)


class ReplicaBases:
    """One replica's bases: what its snapshot references, and when to take a new one."""

    def __init__(self, workers: int, resumed_from: StoredBases | None = None) -> None:
        self.workers = workers
        self.writing = Writing()
        self.replica: str | None = None  # learnt from the first batch (`Copy.replica`)
        loaded = list(resumed_from.read) if resumed_from is not None else []
        #: Keys the resumed snapshot named: discarded once this run has its own bases.
        self.stale = set(loaded)
        self.serial = 1 + max((_serial(key) for key in loaded), default=-1)

    def due(self) -> list[BaseCut]:
        """New bases (and tombstones) to emit after a batch: every part not yet based, else
        the part whose changes (at the last snapshot) grew most past `RECUT`, one a batch."""
        if self.replica is None:
            return []
        known = self.writing.references
        names = [name for name in self.writing.pending if name not in known]
        if not names:
            grown = [
                (r.changed / r.size, n) for n, r in known.items() if r.changed > RECUT * r.size
            ]
            names = [max(grown)[1]] if grown else []
        cuts = [cut for name in names for cut in self._cut(name)]
        if self.stale:  # this run's snapshots never name them (its serials are newer)
            cuts += [BaseCut(key, None) for key in sorted(self.stale)]
            self.stale.clear()
        return cuts

    def _cut(self, name: str) -> list[BaseCut]:
        assert self.replica is not None
        component = self.writing.pending[name]
        whole = component.to_snapshot()
        mark = component.mark()
        blob = snapshots.encode("base", {"name": name, "mark": mark, "whole": whole})
        key = base_key(self.replica, name, self.serial, self.workers)
        self.serial += 1
        old = self.writing.references.get(name)
        self.writing.references[name] = Reference(key, mark, len(blob), id(component))
        return [BaseCut(key, blob)] + ([BaseCut(old.key, None)] if old is not None else [])

    def at_eof(self) -> list[BaseCut]:
        """At the end of input: a new base for every part the snapshots name, the old keys
        discarded. Bytewax snapshots every key at the end, and a base key no longer holds
        its blob after its first snapshot (`KeepBase`), so each must get a new one."""
        cuts = [cut for name in list(self.writing.pending) for cut in self._cut(name)]
        cuts += [BaseCut(key, None) for key in sorted(self.stale)]
        self.stale.clear()
        return cuts


def _serial(key: str) -> int:
    found = _SERIAL.search(key)
    return int(found.group(1)) if found else -1
