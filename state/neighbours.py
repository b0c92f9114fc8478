"""One item's co-occurrence neighbours, kept as numpy arrays so scoring is vectorised.

Scoring a user's recent items sums their neighbour counts: with 300 neighbours per item and
ten recent items, 3,000 additions per recommendation. As Python dict updates that was ~500 µs;
as one `np.concatenate` + `np.bincount` over arrays kept ready here, it is a few dozen.
Learning touches one count at a time (a dict lookup for the slot, then one array element), ~20
per event: the arrays are `array.array`s, whose elements Python updates about twice as fast
as a numpy array's, and `view` wraps them in numpy without a copy (`np.frombuffer`).

>>> n = Neighbours()
>>> n.add(7, 2)
>>> n.add(3, 1)
>>> n.add(7, 1)
>>> n.as_dict()
{7: 3, 3: 1}
>>> rows, counts = n.view()
>>> rows.tolist(), counts.tolist()
([7, 3], [3, 1])
"""

from __future__ import annotations

from array import array
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

__all__ = ["Neighbours"]

IntArray = npt.NDArray[np.int64]

_INITIAL = 8


class Neighbours:
    """Neighbour rows and their counts, parallel arrays with a row → slot index.

    Slots are filled in order of first pairing; a removed neighbour's slot is filled by the
    last one, so the arrays stay dense and `view` is two slices, never a copy. An array is
    never resized in place (growing makes a new one), so a view still held stays valid.
    """

    __slots__ = ("_counts", "_rows", "_slot")

    def __init__(self) -> None:
        self._slot: dict[int, int] = {}
        self._rows = _zeros(_INITIAL)
        self._counts = _zeros(_INITIAL)

    @classmethod
    def of(cls, rows: IntArray, counts: IntArray) -> Neighbours:
        """Neighbours with these (distinct) rows and counts, in that slot order."""
        made = cls()
        made.__setstate__((rows, counts))
        return made

    def add(self, row: int, weight: int) -> None:
        """Count `weight` more pairings with `row`."""
        slot = self._slot.get(row)
        if slot is None:
            slot = self._slot[row] = len(self._slot)
            if slot == len(self._rows):
                self._grow()
            self._rows[slot] = row
            self._counts[slot] = weight
        else:
            self._counts[slot] += weight

    def add_many(self, rows: list[int], weight: int) -> None:
        """Count `weight` more pairings with each of `rows` (distinct), in that order: `add`
        for each, without a call per row (co-occurrence pairs a new item with ~10 at once)."""
        slots, counts = self._slot, self._counts
        for row in rows:
            slot = slots.get(row)
            if slot is None:
                slot = slots[row] = len(slots)
                if slot == len(self._rows):
                    self._grow()
                    counts = self._counts
                self._rows[slot] = row
                counts[slot] = weight
            else:
                counts[slot] += weight

    def subtract(self, row: int, weight: int) -> None:
        """Take back `weight` pairings with `row`; at zero the neighbour goes."""
        slot = self._slot.get(row)
        if slot is None:
            return
        left = int(self._counts[slot]) - weight
        if left > 0:
            self._counts[slot] = left
            return
        last = len(self._slot) - 1
        del self._slot[row]
        if slot != last:
            moved = int(self._rows[last])
            self._rows[slot], self._counts[slot] = moved, self._counts[last]
            self._slot[moved] = slot

    def count(self, row: int) -> int:
        """Pairings with `row` (0 when none, or pruned)."""
        slot = self._slot.get(row)
        return 0 if slot is None else int(self._counts[slot])

    def view(self) -> tuple[IntArray, IntArray]:
        """(rows, counts) of every neighbour: views into the arrays, valid until the next change."""
        n = len(self._slot)
        return np.frombuffer(self._rows, np.int64, n), np.frombuffer(self._counts, np.int64, n)

    def prune(self, keep: int, name: Callable[[int], str]) -> None:
        """Keep the `keep` largest counts; ties at the cut-off go to the smaller `name(row)`.

        Deterministic whatever the insertion order, so replays prune alike.
        """
        rows, counts = self.view()
        if len(rows) <= keep:
            return
        cutoff = np.partition(counts, len(counts) - keep)[len(counts) - keep]
        above = np.flatnonzero(counts > cutoff)
        tied = np.flatnonzero(counts == cutoff)
        wanted = keep - len(above)  # 1..len(tied): the cut-off is the keep-th largest count
        if wanted < len(tied):  # names are distinct: the order of the smallest is total
            slot = self._slot
            named = sorted(rows[tied].tolist(), key=name)[:wanted]
            tied = np.fromiter((slot[row] for row in named), np.int64, wanted)
        chosen = np.concatenate([above, tied])
        chosen.sort()  # keep slots in their first-pairing order
        kept_rows, kept_counts = rows[chosen], counts[chosen]  # copies (fancy indexing)
        n = len(chosen)
        rows[:n], counts[:n] = kept_rows, kept_counts  # writable views of the arrays
        self._slot = dict(zip(kept_rows.tolist(), range(n), strict=True))

    def as_dict(self) -> dict[int, int]:
        """Row → count, in slot order."""
        rows, counts = self.view()
        return dict(zip(rows.tolist(), counts.tolist(), strict=True))

    def __len__(self) -> int:
        return len(self._slot)

    def _grow(self) -> None:
        """Twice the room, in new arrays (views of the old ones stay valid)."""
        size = len(self._rows)
        self._rows = self._rows + _zeros(size)
        self._counts = self._counts + _zeros(size)

    def __getstate__(self) -> tuple[IntArray, IntArray]:
        """Only the filled part is pickled (snapshots stay as small as the data)."""
        rows, counts = self.view()
        return rows.copy(), counts.copy()

    def __setstate__(self, state: tuple[IntArray, IntArray]) -> None:
        """From (rows, counts) of any integer type (snapshots pack them as 32-bit ones)."""
        rows, counts = state
        self._rows = array("q", rows.astype(np.int64).tobytes())
        self._counts = array("q", counts.astype(np.int64).tobytes())
        if len(self._rows) == 0:
            self._rows, self._counts = _zeros(_INITIAL), _zeros(_INITIAL)
        self._slot = dict(zip(rows.tolist(), range(len(rows)), strict=True))


def _zeros(n: int) -> array[int]:
    """`n` zero 64-bit integers (the layout `view` reads)."""
    return array("q", bytes(8 * n))
