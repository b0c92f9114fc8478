"""FISM's snapshots (`tailor.state.recs.fism.FISM`): whole, and as the changes since a mark.

The whole snapshot is the settings, the generator's state, the item ids and the item arrays
(p, q, bias) in row order, and the recency queue as rows from the head: no user appears in
it. FISM is `Incremental` (`tailor.state.increments`): rows are only ever appended, so the changes
since a mark are the ids appended since, the arrays' rows written since and the generator and
queue whole (8 bytes a row). The compiled step stamps every row it writes with the current
generation (`tailor.state.recs.fism_kernel`), q's and bias's (the item and its negatives) apart from
p's (the history's rows): sixteen recency negatives per event walk the whole queue every few
thousand events, so under steady traffic q and bias change in every row between two
snapshots, while p changes only in recently seen items (half of them in ten seconds at
5,000 events a second over 100,000 items). Past `ALL_ROWS` of the rows an array goes whole,
without row numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tailor.state.recs.fism_kernel import SOURCE, TARGET, new_queue, queue_order

if TYPE_CHECKING:
    from tailor.state.recs.fism import FISM

__all__ = ["ALL_ROWS", "SETTINGS", "changes", "mark", "patched", "restored", "snapshot", "written"]

SETTINGS: tuple[str, ...] = ("n_factors", "learning_rate", "regularization", "negatives")
SETTINGS += ("init_std", "bias_learning_rate", "alpha", "history", "seed")
#: Past this share of the rows written, the changes carry the arrays whole (a row number
#: costs 8 bytes against a row's 16 * n_factors + 8).
ALL_ROWS = 0.9
IntArray = npt.NDArray[np.int64]


def snapshot(model: FISM) -> dict[str, Any]:
    """Settings, the generator's state and the item arrays: no user appears in it."""
    n = len(model._item_ids)
    return {
        **{name: getattr(model, name) for name in SETTINGS},
        "rng": model._rng.bit_generator.state,
        "item_ids": list(model._item_ids),
        "p": model._p[:n].copy(),
        "q": model._q[:n].copy(),
        "bias": model._bias[:n].copy(),
        "queue": queue_order(model._links),
    }


def restored(cls: type[FISM], data: Mapping[str, Any], initial_rows: int) -> FISM:
    """A model from a whole snapshot (arrays with room for at least `initial_rows`)."""
    made = cls(**{name: data[name] for name in SETTINGS})
    made._rng.bit_generator.state = data["rng"]
    ids: list[str] = list(data["item_ids"])
    rows = max(initial_rows, len(ids))
    for name in ("p", "q"):
        array = np.zeros((rows, made.n_factors), dtype=np.float64)
        array[: len(ids)] = data[name]
        setattr(made, f"_{name}", array)
    made._bias = np.zeros(rows, dtype=np.float64)
    made._bias[: len(ids)] = data["bias"]
    made._item_ids = ids
    made._item_row = {item: row for row, item in enumerate(ids)}
    order = np.asarray(data["queue"], dtype=np.int64)
    made._links = new_queue(order, rows)
    return made


def mark(model: FISM) -> int:
    """The current generation (node 0's), after which the next one starts."""
    generation = int(model._links[0, TARGET])
    model._lengths[generation] = len(model._item_ids)
    model._links[0, TARGET] = generation + 1
    return generation


def written(model: FISM, row: int) -> None:
    """Stamp `row`'s p and q as written now (outside the compiled step: a warm start)."""
    model._links[row + 1, [TARGET, SOURCE]] = model._links[0, TARGET]


def changes(model: FISM, mark: int) -> dict[str, Any]:
    """The ids appended since `mark`; the rows of q and bias, and those of p, written since
    (all rows, unnumbered, past `ALL_ROWS` of them; new rows after them); the generator and
    the queue."""
    length = model._lengths[mark]
    target, target_rows = _taken(model, TARGET, mark, length)
    source, source_rows = _taken(model, SOURCE, mark, length)
    return {
        "rng": model._rng.bit_generator.state,
        "item_ids": model._item_ids[length:],
        "rows": target_rows,
        "q": model._q[target].copy(),
        "bias": model._bias[target].copy(),
        "p_rows": source_rows,
        "p": model._p[source].copy(),
        "queue": queue_order(model._links),
    }


def _taken(
    model: FISM, column: int, mark: int, length: int
) -> tuple[slice | IntArray, IntArray | None]:
    """What to take of an array (rows written since `mark` in `column`, then the new rows; or
    all) and the old rows written (None: all rows)."""
    n = len(model._item_ids)
    rows = np.flatnonzero(model._links[1 : length + 1, column] > mark)
    if len(rows) > ALL_ROWS * length:
        return slice(0, n), None
    return np.concatenate([rows, np.arange(length, n, dtype=np.int64)]), rows


def patched(whole: Mapping[str, Any], changed: Mapping[str, Any]) -> dict[str, Any]:
    """`whole` (the snapshot at a mark) with `changes` since that mark applied."""
    arrays = {}
    for name, rows in (("p", changed["p_rows"]), ("q", changed["rows"]), ("bias", changed["rows"])):
        if rows is None:
            arrays[name] = changed[name]
        else:
            array = np.concatenate([whole[name], changed[name][len(rows) :]])
            array[rows] = changed[name][: len(rows)]
            arrays[name] = array
    return {
        **{name: whole[name] for name in SETTINGS},
        "rng": changed["rng"],
        "item_ids": [*whole["item_ids"], *changed["item_ids"]],
        **arrays,
        "queue": changed["queue"],
    }
