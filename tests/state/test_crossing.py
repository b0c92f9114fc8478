"""Records that cross processes pickle as a constructor call (`tailor.state.crossing`), round-trip
equal (nested ones too). (Pickles of records written before `crossing` are no longer read:
recovery snapshots hold plain data since format 1, `tailor.state.snapshots`, and `Event` has gained
a
field since.)"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, fields

import pytest

from tailor.operators import records
from tailor.operators.records import (
    Accepted,
    Block,
    DeadLetter,
    Erasure,
    Forget,
    InputDeletion,
    Progress,
    QualityReport,
    RawRecord,
    Recommendation,
    SegmentInfo,
    SegmentModel,
    Stamp,
    UserOutput,
    UserUpdate,
)
from tailor.state.crossing import crossing
from tailor.state.profile.event import Event

EVENT = Event(
    "e1",
    "u1",
    "click",
    1700000000.0,
    "i9",
    ("Drama", "Comedy"),
    9.5,
    2,
    "s1",
    "mobile",
    "https://x",
    True,
    "Europe/Paris",
)
STAMP = Stamp("tailor:events:0", 7, 1000)

#: One of each record, as the flow makes them, nested where they nest.
RECORDS: list[object] = [
    RawRecord(b'{"a":1}', "tailor:events:0", "1-0", 1.5, STAMP, None, None),
    Accepted(EVENT, 1.5, STAMP, "tailor:events:0", "1-0"),
    Progress(STAMP, 3.0),
    DeadLetter("late", "5s", b"{}", "o", "1-1", STAMP, 10, "ab"),
    InputDeletion("o", "1-2"),
    UserUpdate(
        "u1",
        3,
        EVENT,
        1.5,
        ("i1", "i2", "i9"),
        {"f1": 0.5, "f2": 1.0},
        "mobile",
        None,
        (("Drama", 0.7),),
        frozenset({"i1"}),
        STAMP,
    ),
    UserOutput(
        "u1",
        3,
        1.0,
        {"a": 1},
        "cluster:2",
        "Fans",
        ("vip",),
        (Recommendation("i3", 0.9, "cooc", "because"),),
        "champions",
        (1.5,),
        (1700000000.0,),
        True,
    ),
    Forget("u1", "forget", True),
    Block("i3", False),
    Erasure("u1", "forget", ("i1",)),
    SegmentInfo("cluster:1", "Fans", {"f": 1.0}, 4, 2.0),
    SegmentModel(4, {"k": 1}),
    QualityReport(9, {}),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
def test_round_trip_equal(record: object, protocol: int) -> None:
    back = pickle.loads(pickle.dumps(record, protocol=protocol))
    assert back == record
    assert type(back) is type(record)
    for f in fields(record):  # type: ignore[arg-type]
        assert type(getattr(back, f.name)) is type(getattr(record, f.name))


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_pickles_as_constructor_call(record: object) -> None:
    """The cheap shape: no NEWOBJ + state, just the class and its field values."""
    cls, values = record.__reduce_ex__(pickle.DEFAULT_PROTOCOL)  # type: ignore[misc]
    assert cls is type(record)
    assert values == tuple(getattr(record, f.name) for f in fields(record))  # type: ignore[arg-type]


def test_every_frozen_record_crosses_cheaply() -> None:
    """A record type added to `tailor.operators.records` later gets the cheap shape too."""
    for value in vars(records).values():
        params = getattr(value, "__dataclass_params__", None)
        if isinstance(value, type) and params is not None and params.frozen:
            assert "__reduce__" in vars(value), value.__name__


def test_records_stay_frozen_with_slots() -> None:
    back = pickle.loads(pickle.dumps(RECORDS[1]))
    assert not hasattr(back, "__dict__")
    with pytest.raises(AttributeError):
        back.read_at = 0.0  # type: ignore[misc]


def test_refuses_a_post_init() -> None:
    with pytest.raises(TypeError, match="__post_init__"):

        @crossing
        @dataclass(frozen=True, slots=True)
        class Checked:
            x: int

            def __post_init__(self) -> None:
                pass


def test_single_field_record() -> None:
    @crossing
    @dataclass(frozen=True, slots=True)
    class One:
        x: int

    assert One(3).__reduce__() == (One, (3,))
