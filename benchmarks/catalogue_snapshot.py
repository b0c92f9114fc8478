"""The models' snapshot taken apart: bytes and pickling time per part, and what changed.

`tailor.operators.models.ModelsLogic.snapshot` pickles the whole `ModelsState` at every epoch end.
To design a snapshot that costs what changed, two things matter: which parts the bytes are in,
and how much of each part a few seconds of traffic touch. The parts here follow the lines a
partitioned or incremental snapshot could cut along: per item (co-occurrence rows, ISGD item
factors, popularity scores), per user (ISGD user vectors and their touched items; the last list
shown and the provisional outputs now live in `tailor.operators.user_outputs`), and small global
state (the self-test, variants and rules, segments).

A part's *fingerprint* is a table of entries (an item's row, a user's vector, ...) with one
comparable value each; two fingerprints taken some traffic apart say how many entries changed,
which is what an incremental snapshot would have to write. Pickled separately, parts repeat
the id strings they share, so their bytes add up to more than the whole snapshot.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tailor.operators.models import ModelsState
from tailor.state.recs.cooc_counts import CoOccurrence
from tailor.state.recs.cooccurrence import CoocRecommender
from tailor.state.recs.group_trending import CategoryPopular
from tailor.state.recs.hybrid import Hybrid
from tailor.state.recs.isgd import ISGD, ISGDRecommender
from tailor.state.recs.trending import Trending, TrendingRecommender

__all__ = [
    "Change",
    "Fingerprint",
    "Part",
    "changed_pairs",
    "changes",
    "cooc_pairs",
    "fingerprints",
    "parts",
    "timed_pickle",
]

FloatArray = npt.NDArray[np.float64]
#: Entry values of one part: an array indexed by a stable row, or a dict by key.
Fingerprint = FloatArray | dict[Any, Any]
#: ISGD state that belongs to users rather than items.
ISGD_USER_FIELDS = ("_users", "_seen")


@dataclass(frozen=True)
class Part:
    """One piece of the snapshot: what to pickle, and how to fingerprint its entries."""

    name: str
    payload: Callable[[], object]
    fingerprint: Callable[[], Fingerprint]
    weights: Callable[[], FloatArray] | None = None  # relative bytes per entry (rows only)


@dataclass(frozen=True)
class Change:
    """How many of a part's entries changed between two fingerprints."""

    entries: int  # after
    changed: int  # changed or new (a removed entry counts too)
    weight_share: float  # the changed entries' share of the part's weight (bytes)


def timed_pickle(obj: object) -> tuple[int, float]:
    """(bytes, seconds) of pickling `obj` as the models step does."""
    started = time.perf_counter()
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data), time.perf_counter() - started


def _whole(obj: object) -> Callable[[], Fingerprint]:
    """A small part fingerprinted as one entry: its pickle."""
    return lambda: {"whole": pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)}


def _cooc_rows(cooc: CoOccurrence) -> FloatArray:
    """Per item row: its count, neighbour count and neighbour total, packed in one float (a
    learn adds to the total; a prune that keeps the total changes the neighbour count)."""
    n = len(cooc._ids)
    sizes = cooc._pool.size[:n].astype(np.float64)
    totals = np.fromiter((cooc._pool.view(row)[1].sum() for row in range(n)), np.float64, n)
    return cooc._counts[:n] * 1e12 + sizes * 1e9 + totals


def _cooc_weights(cooc: CoOccurrence) -> FloatArray:
    """Bytes per row in a snapshot: 8 per neighbour (32-bit row and count) plus the row's id."""
    sizes = cooc._pool.size[: len(cooc._ids)].astype(np.float64)
    return 8.0 * sizes + 24.0


def _isgd_items(model: ISGD) -> FloatArray:
    """Per item row: its factors and bias, projected on a fixed random vector."""
    n = model.n_items
    probe = np.random.default_rng(0).normal(size=model.n_factors)
    return model._items[:n] @ probe + np.pi * model._bias[:n]


def _isgd_users(model: ISGD) -> dict[str, tuple[float, int]]:
    probe = np.random.default_rng(0).normal(size=model.n_factors)
    return {user: (float(u @ probe), len(model._seen[user])) for user, u in model._users.items()}


def _without(obj: object, fields: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in vars(obj).items() if k not in fields}


def _only(obj: object, fields: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in vars(obj).items() if k in fields}


def _component_parts(name: str, model: object) -> list[Part]:
    """The parts of one recommender, by its type."""
    if isinstance(model, CoocRecommender):
        cooc = model.cooc
        return [Part(name, lambda: model, lambda: _cooc_rows(cooc), lambda: _cooc_weights(cooc))]
    if isinstance(model, ISGDRecommender):
        isgd = model.model
        return [
            Part(
                f"{name} items", lambda: _without(isgd, ISGD_USER_FIELDS), lambda: _isgd_items(isgd)
            ),
            Part(f"{name} users", lambda: _only(isgd, ISGD_USER_FIELDS), lambda: _isgd_users(isgd)),
        ]
    if isinstance(model, TrendingRecommender):
        return [Part(name, lambda: model, lambda: _stored(model.trending))]
    if isinstance(model, CategoryPopular):
        return [Part(name, lambda: model, lambda: _category_scores(model))]
    return [Part(name, lambda: model, _whole(model))]


def _category_scores(model: CategoryPopular) -> dict[tuple[str, str], float]:
    return {
        (category, item): score
        for category, trending in model.popular.items()
        for item, score in _stored(trending).items()
    }


def _stored(trending: Trending) -> dict[str, float]:
    """Item → stored weight (rows in order of first sight)."""
    return dict(zip(trending._ids, trending._weights, strict=True))


def parts(state: ModelsState) -> list[Part]:
    """Every part of the snapshot, the recommenders' components one by one."""
    recs = state.recs
    out: list[Part] = []
    for name, model in recs.models.items():
        if isinstance(model, Hybrid):
            for component, inner in model.components.items():
                out += _component_parts(component, inner)
            selftest = _without(model, ("components",))
            out.append(Part(f"{name} self-test", lambda m=selftest: m, _whole(selftest)))
        else:
            out += _component_parts(name, model)
    rest = _without(recs, ("models",))
    out += [
        Part("variants and rules", lambda: rest, _whole(rest)),
        Part("segments", lambda: state.segments, _whole(state.segments)),
    ]
    return out


def fingerprints(state: ModelsState) -> dict[str, tuple[Fingerprint, FloatArray | None]]:
    """Each part's fingerprint now, with its row weights where it has them."""
    return {
        part.name: (part.fingerprint(), None if part.weights is None else part.weights())
        for part in parts(state)
    }


def _changed_rows(before: FloatArray, after: FloatArray, weights: FloatArray | None) -> Change:
    """Rows are stable: row r before is row r after, new rows are appended."""
    n = len(before)
    mask = np.concatenate([before != after[:n], np.ones(len(after) - n, bool)])
    w = np.ones(len(after)) if weights is None else weights
    total = float(w.sum())
    share = float(w[mask].sum()) / total if total else 0.0
    return Change(len(after), int(mask.sum()), share)


def _changed_keys(before: dict[Any, Any], after: dict[Any, Any]) -> Change:
    changed = sum(1 for key, value in after.items() if before.get(key, _MISSING) != value)
    removed = sum(1 for key in before if key not in after)
    entries = len(after)
    return Change(entries, changed + removed, (changed + removed) / max(entries, 1))


_MISSING = object()


def changes(
    before: dict[str, tuple[Fingerprint, FloatArray | None]],
    after: dict[str, tuple[Fingerprint, FloatArray | None]],
) -> dict[str, Change]:
    """What changed in each part between two fingerprints of the same state."""
    out: dict[str, Change] = {}
    for name, (new, weights) in after.items():
        old = before[name][0]
        if isinstance(new, np.ndarray) and isinstance(old, np.ndarray):
            out[name] = _changed_rows(old, new, weights)
        elif isinstance(new, dict) and isinstance(old, dict):
            out[name] = _changed_keys(old, new)
    return out


def cooc_pairs(cooc: CoOccurrence) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Every (item row, neighbour row) pair as one sorted key, with its count: finer than a
    row, the unit an increment log of co-occurrence would write."""
    packed = cooc.to_snapshot()
    sizes, rows, counts = packed["sizes"], packed["rows"], packed["pairs"]
    owners = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    keys = (owners << 32) | rows.astype(np.int64)
    order = np.argsort(keys)
    return keys[order], counts.astype(np.int64)[order]


def changed_pairs(
    before: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
    after: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
) -> Change:
    """Pairs new, removed (pruned) or with another count between two `cooc_pairs`."""
    (old_keys, old_counts), (keys, counts) = before, after
    at = np.minimum(np.searchsorted(old_keys, keys), max(len(old_keys) - 1, 0))
    found = (old_keys[at] == keys) if len(old_keys) else np.zeros(len(keys), bool)
    changed = int((~found).sum() + (old_counts[at][found] != counts[found]).sum())
    changed += len(old_keys) - int(found.sum())
    return Change(len(keys), changed, changed / max(len(keys), 1))
