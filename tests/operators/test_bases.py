"""Model bases (`tailor.operators.bases`, `tailor.state.increments`): when a replica takes a base,
what its snapshot then names, and that a resume from a base plus changes gives the state back."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any

import pytest

from tailor.operators.bases import RECUT, BaseCut, KeepBase, ReplicaBases, StoredBases, base_key
from tailor.operators.redis.routing import worker_of
from tailor.state import increments, snapshots


class Rows:
    """A toy incremental component: a list of numbers, stamped per row."""

    def __init__(self) -> None:
        self.values: list[int] = []
        self.stamps: list[int] = []
        self.generation = 0

    def add(self, row: int, value: int) -> None:
        while len(self.values) <= row:
            self.values.append(0)
            self.stamps.append(self.generation)
        self.values[row] += value
        self.stamps[row] = self.generation

    def to_snapshot(self) -> dict[str, Any]:
        return {"values": list(self.values)}

    def mark(self) -> int:
        self.generation += 1
        return self.generation - 1

    def changes_since(self, mark: int) -> dict[str, Any]:
        rows = [r for r, s in enumerate(self.stamps) if s > mark]
        return {"n": len(self.values), "rows": rows, "values": [self.values[r] for r in rows]}

    @classmethod
    def patched(cls, whole: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
        values = list(whole["values"]) + [0] * (changes["n"] - len(whole["values"]))
        for row, value in zip(changes["rows"], changes["values"], strict=True):
            values[row] = value
        return {"values": values}

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> Rows:
        data = increments.whole(data, cls)
        made = cls()
        made.values = list(data["values"])
        made.stamps = [0] * len(made.values)
        return made


class Holder:
    """A parent that stores its child with `increments.part`."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows

    def to_snapshot(self) -> dict[str, Any]:
        return {"rows": increments.part(self.rows), "small": 1}


def snapshot(bases: ReplicaBases, holder: Holder) -> bytes:
    with increments.writing(bases.writing):
        return pickle.dumps(holder.to_snapshot())


def test_a_part_is_written_whole_until_its_base_is_taken_then_as_changes() -> None:
    rows = Rows()
    for r in range(1000):
        rows.add(r, r)
    bases, holder = ReplicaBases(workers=2), Holder(rows)
    first = pickle.loads(snapshot(bases, holder))
    assert first["rows"] == {"values": list(range(1000))}  # no base yet: whole
    assert bases.due() == []  # the replica's key is not known yet
    bases.replica = "replica:1"
    cuts = bases.due()
    assert len(cuts) == 1 and cuts[0].blob is not None
    assert worker_of(cuts[0].key, 2) == worker_of("replica:1", 2)
    rows.add(3, 7)
    rows.add(1000, 5)
    blob = snapshot(bases, holder)
    data = pickle.loads(blob)
    assert data["rows"]["incremental"] == "0.Rows" and data["rows"]["base"] == cuts[0].key
    assert len(blob) < len(pickle.dumps(first)) / 10  # changes, not the whole
    stored = StoredBases({cuts[0].key: cuts[0].blob}.get)
    with increments.reading(stored):
        back = Rows.from_snapshot(data["rows"])
    assert back.values == rows.values


def test_a_base_is_taken_again_once_its_changes_grow_past_recut_and_the_old_key_goes() -> None:
    rows = Rows()
    for r in range(1000):
        rows.add(r, 1000)
    bases, holder = ReplicaBases(workers=1), Holder(rows)
    bases.replica = "replica:0"
    snapshot(bases, holder)
    (first,) = bases.due()
    for r in range(int(1000 * RECUT / 20)):  # changes well under RECUT of the base
        rows.add(r, 1)
    snapshot(bases, holder)
    assert bases.due() == []
    for r in range(1000):
        rows.add(r, 1)
    snapshot(bases, holder)
    new, gone = bases.due()
    assert new.blob is not None and new.key != first.key
    assert gone == BaseCut(first.key, None)
    assert bases.due() == []  # the new base has no changes yet
    data = pickle.loads(snapshot(bases, holder))["rows"]
    assert data["base"] == new.key and data["changes"]["rows"] == []


def test_a_resumed_replica_discards_the_bases_it_resumed_from_with_newer_serials() -> None:
    key = base_key("replica:0", "0.Rows", 4, 1)
    blob = snapshots.encode("base", {"name": "0.Rows", "mark": 0, "whole": {"values": [1, 2]}})
    stored = StoredBases({key: blob}.get)
    ref = {"incremental": "0.Rows", "base": key, "mark": 0}
    ref["changes"] = {"n": 3, "rows": [2], "values": [9]}
    with increments.reading(stored):
        rows = Rows.from_snapshot(ref)
    assert rows.values == [1, 2, 9]
    bases = ReplicaBases(workers=1, resumed_from=stored)
    bases.replica = "replica:0"
    snapshot(bases, Holder(rows))
    cut, gone = bases.due()
    assert gone == BaseCut(key, None)
    assert "/5#" in cut.key  # serials go on from the newest the store had


def test_a_missing_or_other_generation_base_is_refused() -> None:
    ref = {"incremental": "0.Rows", "base": "k", "mark": 3, "changes": {}}
    with pytest.raises(LookupError, match="missing"), increments.reading({}):
        Rows.from_snapshot(ref)
    with (
        pytest.raises(LookupError, match="generation 2"),
        increments.reading({"k": {"mark": 2, "whole": {"values": []}}}),
    ):
        Rows.from_snapshot(ref)


def test_a_base_key_holds_its_blob_only_until_its_snapshot() -> None:
    keep = KeepBase(b"resumed, not kept")
    assert keep.blob is None
    assert keep.on_batch([b"old", b"new"]) == ([], KeepBase.RETAIN)
    assert keep.snapshot() == b"new" and keep.blob is None
    with pytest.raises(RuntimeError):
        keep.snapshot()
    assert keep.on_batch([None]) == ([], KeepBase.DISCARD)


def test_at_the_end_of_input_every_named_base_is_replaced_and_unnamed_keys_go() -> None:
    """Bytewax snapshots every key at the end of input; a base key has let go of its blob."""
    rows = Rows()
    for r in range(1000):
        rows.add(r, r)
    bases, holder = ReplicaBases(workers=1), Holder(rows)
    bases.replica = "replica:0"
    snapshot(bases, holder)
    (first,) = bases.due()
    new, gone = bases.at_eof()
    assert new.blob is not None and new.key != first.key and gone == BaseCut(first.key, None)
    data = pickle.loads(snapshot(bases, holder))["rows"]
    assert data["base"] == new.key
    kept, emptied = KeepBase(None), KeepBase(None)
    kept.on_batch([new.blob])
    assert kept.on_eof() == ([], KeepBase.RETAIN) and kept.snapshot() == new.blob
    assert emptied.on_eof() == ([], KeepBase.DISCARD)
