"""The snapshot format: an explicit version around plain data, and the one place it migrates.

What the stateful steps hand Bytewax at each epoch end (and read back on resume) is an
*envelope*: `MAGIC`, the format version (2 bytes, big-endian), the kind of state (`"models"`,
`"user"`) and a NUL, then the state as plain data (dicts, lists, tuples, str, int, float,
None, numpy arrays), pickled. Plain data, because each component says what it stores
(`to_snapshot`) and how it is rebuilt (`from_snapshot`), so a class can be renamed, split or
re-implemented without breaking the stores written before: the data stays readable and
`migrate` turns an older format into the current one. Pickle is only the byte encoding of
that data (numpy arrays travel as buffers, which JSON or msgpack would not do as fast).

A store from before the envelope (a bare pickle of the state objects: the release before
format 1) or from a newer release cannot be read: `decode` raises `SnapshotFormatError`, and
`tailor run` / `tailor store check` refuse such a store before Bytewax opens it
(`tailor.flows.store`), with one line that says what to do.

>>> blob = encode("models", {"n": 3})
>>> blob.startswith(MAGIC), header(blob), decode(blob, "models")
(True, (5, 'models'), {'n': 3})
>>> problem(b"\\x80\\x05K\\x03.")  # a bare pickle: what the release before wrote
'a snapshot without a format version (from a release before snapshot format 1)'
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

from tailor.state.profile.context import ContextMix
from tailor.state.profile.user import feature_horizons

__all__ = [
    "FORMAT",
    "MAGIC",
    "SnapshotFormatError",
    "decode",
    "encode",
    "header",
    "migrate",
    "problem",
]

#: The current snapshot format. Bump it when what a `to_snapshot` stores changes, and
#: teach `migrate` to turn the previous format into the new one. Format 2: the models'
#: large parts may be references to bases plus changes (`tailor.state.increments`), which a
#: release of format 1 must refuse rather than misread. Format 3: a user's state holds its
#: context mix. Format 4: a user's state holds its last event's type and time; a user's
#: outputs, their output's `aged_to` and the last settled segments. Format 5: the segment
#: model keeps a sample of users' profiles (its scaler) and re-fits.
FORMAT = 5
#: Every envelope starts with these bytes (a pickle starts with b"\x80", never with NUL).
MAGIC = b"\x00tailor-snapshot\x00"
_VERSION = struct.Struct(">H")


class SnapshotFormatError(ValueError):
    """A snapshot this release cannot read: no envelope (an earlier release), or newer."""


def encode(kind: str, data: Any) -> bytes:
    """`data` (plain data) in an envelope of the current format."""
    body = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
    return b"".join((MAGIC, _VERSION.pack(FORMAT), kind.encode(), b"\x00", body))


def header(blob: object) -> tuple[int, str]:
    """(format, kind) of an envelope; `SnapshotFormatError` when `blob` is none."""
    if not isinstance(blob, bytes | bytearray | memoryview) or not bytes(
        blob[: len(MAGIC)]
    ).startswith(MAGIC):
        raise SnapshotFormatError(
            "a snapshot without a format version (from a release before snapshot format 1)"
        )
    start = len(MAGIC)
    (version,) = _VERSION.unpack_from(blob, start)
    end = bytes(blob[start + 2 : start + 66]).find(b"\x00")
    kind = bytes(blob[start + 2 : start + 2 + end]).decode() if end >= 0 else "?"
    return version, kind


def problem(blob: object) -> str | None:
    """Why this release cannot resume from `blob`, or None when it can (a store check)."""
    try:
        version, _kind = header(blob)
    except SnapshotFormatError as exc:
        return str(exc)
    if version > FORMAT:
        return f"a snapshot of format {version}, newer than this release's {FORMAT}"
    return None


def decode(blob: object, kind: str) -> Any:
    """The plain data of an envelope of `kind`, migrated to the current format.

    Raises `SnapshotFormatError` for a bare pickle, a newer format or another kind.
    """
    reason = problem(blob)
    if reason is not None:
        raise SnapshotFormatError(reason)
    assert isinstance(blob, bytes | bytearray | memoryview)
    version, found = header(blob)
    if found != kind:
        raise SnapshotFormatError(f"a snapshot of {found!r} state where {kind!r} was expected")
    body = memoryview(blob)[len(MAGIC) + 2 + len(found.encode()) + 1 :]
    data = pickle.loads(body)  # our own store, never foreign input
    return migrate(version, kind, data)


def migrate(version: int, kind: str, data: Any) -> Any:
    """Turn the data of an older format into the current one: every format change is
    handled here, one step per format (``if version < 2: data = _to_2(kind, data)`` ...).

    Format 1 is the first; the bare pickles before it are not migrated, because they are
    the state objects themselves, readable only while every class keeps its old layout,
    which is what the format exists to stop depending on: a store that old is refused,
    and the streams are replayed.
    """
    if version < 1:
        raise SnapshotFormatError(f"snapshot format {version} is not supported")
    # 1 -> 2: format 1 data is format 2 data without references to bases; a trending's
    # stored top cache is rebuilt on load (`Trending.from_snapshot` ignores it).
    if version < 3 and kind == "user" and "mix" not in data:
        # 2 -> 3: users gain the context mix (`tailor.state.profile.context`); one resumed from an
        # older store starts it empty, so its shares count the events from the resume on.
        data = {**data, "mix": ContextMix().to_snapshot()}
    if version < 4 and kind == "user" and "last_event" not in data:
        # 3 -> 4: users gain their last event (aged outputs show it); unknown until the
        # user's next event, so an aged output before it shows none.
        data = {**data, "last_event": None}
    if version < 4 and kind == "user_outputs" and "settled" not in data:
        # 3 -> 4: outputs gain `aged_to` (0: an event's) and the last settled segments (none
        # known: the user's first aged profile is sent whatever it changes).
        provisional = data["provisional"]
        aged = None if provisional is None else (*provisional, 0.0)
        data = {**data, "provisional": aged, "settled": None}
    if version < 5 and kind == "models" and "next_refit" not in data["segments"]:
        data = {**data, "segments": _segments_to_5(data["segments"])}
    return data


def _segments_to_5(segments: dict[str, Any]) -> dict[str, Any]:
    """4 -> 5: the segment model gains re-fits, as shipped (weekly, 1% floor, the default
    windows' horizons), and its segmenter a profile sample, empty: the old point-weighted
    scaler standardises until the sample holds `warmup` users (`Segmenter`), so the
    resumed model keeps meaning what it meant."""
    segmenter = segments["segmenter"]
    registry = {**segmenter["registry"], "retired": [], "held": False}
    new = {"sample": None, "points": 0, "refits": 0, "refit_changes": 0, "registry": registry}
    new["refit_min_changes"] = 4096 // 8  # the shipped sample's eighth
    segmenter = {**segmenter, **new}
    refits = {"refit_every_s": 604800.0, "min_share": 0.01, "horizons": feature_horizons()}
    return {**segments, **refits, "next_refit": None, "segmenter": segmenter}
