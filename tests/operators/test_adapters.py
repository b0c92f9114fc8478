"""Adapters on the real datasets: counts, time order, schema validity, and raw pass-through."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from pathlib import Path

import orjson
import pytest

from tailor.operators.replay.adapters import ADAPTERS, detect_adapter, read_payloads
from tailor.state.profile.event import DEFAULT_EVENT_TYPES, Event, event_from_dict


def events(path: Path, adapter: str | None = None) -> list[Event]:
    out = []
    for payload in read_payloads(path, adapter):
        event = event_from_dict(orjson.loads(payload), DEFAULT_EVENT_TYPES)
        assert isinstance(event, Event), (payload, event)
        out.append(event)
    return out


def assert_time_ordered(evs: list[Event]) -> None:
    assert all(a.ts <= b.ts for a, b in pairwise(evs))


def test_movielens_all_ratings_in_time_order_with_genres(data_dir: Path) -> None:
    evs = events(data_dir / "movielens-latest-small" / "ratings.csv")
    assert len(evs) == 100_836
    assert_time_ordered(evs)
    assert {e.type for e in evs} == {"product_view"}
    assert len({e.user_id for e in evs}) == 610
    assert len({e.event_id for e in evs}) == len(evs)
    toy_story = next(e for e in evs if e.item_id == "1")
    assert toy_story.category == ("Adventure", "Animation", "Children", "Comedy", "Fantasy")
    assert toy_story.event_id == f"ml-{toy_story.user_id}-1-{int(toy_story.ts)}"
    # movie 114335 is "(no genres listed)": no category, not a fake genre
    assert all(e.category == () for e in evs if e.item_id == "114335")
    assert evs[0].ts == 828124615.0


def test_otto_both_formats_give_the_same_funnel(data_dir: Path) -> None:
    folder = data_dir / "otto-sample"
    from_csv = list(read_payloads(folder / "train_events.csv"))
    from_jsonl = list(read_payloads(folder / "train.jsonl"))
    assert from_csv == from_jsonl
    evs = events(folder / "train_events.csv")
    assert len(evs) == 862
    assert_time_ordered(evs)
    assert Counter(e.type for e in evs) == {"product_view": 800, "add_to_cart": 52, "purchase": 10}
    assert len({e.user_id for e in evs}) == 20
    assert len({e.event_id for e in evs}) == 862
    first = orjson.loads(from_csv[0])
    assert first == {
        "event_id": "otto-0-0",
        "user_id": "0",
        "type": "product_view",
        "ts": 1659304800.025,
        "item_id": "1517085",
    }


def test_cdnow_spend_equals_dollar_values(data_dir: Path) -> None:
    evs = events(data_dir / "cdnow" / "cdnow_master.csv")
    assert len(evs) == 69_659
    assert_time_ordered(evs)
    assert {e.type for e in evs} == {"purchase"}
    assert {e.quantity for e in evs} == {1}
    assert round(sum(e.amount for e in evs), 2) == 2_500_315.63
    assert len({e.user_id for e in evs}) == 23_570
    assert evs[0].event_id == "cdnow-0"
    assert (evs[0].user_id, evs[0].ts, evs[0].price) == ("00001", 852076800.0, 11.77)
    assert evs[-1].ts == 899164800.0  # 1998-06-30


@pytest.mark.slow
def test_online_retail_rfm_clean_subset(data_dir: Path) -> None:
    evs = events(data_dir / "online-retail" / "online_retail.csv.gz")
    assert len(evs) == 397_884
    assert_time_ordered(evs)
    assert len({e.user_id for e in evs}) == 4_338
    assert round(sum(e.amount for e in evs), 2) == 8_911_407.90
    assert all(e.quantity > 0 and e.price is not None and e.price > 0 for e in evs)
    assert all(e.category == () for e in evs)
    first = evs[0]
    assert (first.event_id, first.user_id, first.item_id) == ("retail-0", "17850", "85123A")
    assert first.ts == 1291191960.0  # 2010-12-01 08:26 read as UTC
    assert (first.price, first.quantity) == (2.55, 6)


def test_jsonl_passes_raw_bytes_through(tmp_path: Path) -> None:
    lines = [
        b'{"event_id":"e1","user_id":"u1","type":"click","ts":1700000000}',
        b"",
        b"   ",
        b"\xff\xfe not utf-8",
        b'{"deep": ' + b"[" * 50 + b"]" * 50 + b"}",
        b"NaN",
        b'{"event_id":"e2"}\r',
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines))  # no newline after the last line
    assert list(read_payloads(path)) == [lines[0], *lines[3:]]


def test_canonical_csv_types_cells_and_drops_empty_ones(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "event_id,user_id,type,ts,item_id,category,price,quantity,session_id,device,referrer,consent\n"
        "e1,u1,purchase,1700000000,i1,shoes|sale,19.5,2,s1,mobile,ads,true\n"
        "e2,u2,click,2024-01-01T00:00:00Z,,,,,,,,\n"
        "e3,u3,click,1700000000.5,i3,,abc,1.5,,,,maybe\n",
        encoding="utf-8",
    )
    objs = [orjson.loads(p) for p in read_payloads(path)]
    assert objs[0] == {
        "event_id": "e1",
        "user_id": "u1",
        "type": "purchase",
        "ts": 1700000000,
        "item_id": "i1",
        "category": ["shoes", "sale"],
        "price": 19.5,
        "quantity": 2,
        "session_id": "s1",
        "device": "mobile",
        "referrer": "ads",
        "consent": True,
    }
    assert objs[1] == {
        "event_id": "e2",
        "user_id": "u2",
        "type": "click",
        "ts": "2024-01-01T00:00:00Z",
    }
    second = event_from_dict(objs[1], DEFAULT_EVENT_TYPES)
    assert isinstance(second, Event) and second.ts == 1704067200.0
    # cells that do not convert stay strings, so validation refuses them instead of guessing
    assert (
        objs[2]["price"] == "abc" and objs[2]["quantity"] == 1.5 and objs[2]["consent"] == "maybe"
    )
    refused = event_from_dict(objs[2], DEFAULT_EVENT_TYPES)
    assert not isinstance(refused, Event) and refused.reason == "wrong_type"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("x/movielens-latest-small/ratings.csv", "movielens"),
        ("x/cdnow/cdnow_master.csv", "cdnow"),
        ("x/online-retail/online_retail.csv.gz", "online-retail"),
        ("x/otto-sample/train_events.csv", "otto"),
        ("x/otto-sample/train.jsonl", "otto"),
        ("x/other/train.jsonl", "jsonl"),
        ("x/other/train_events.csv", "csv"),
        ("events.JSONL", "jsonl"),
        ("events.csv", "csv"),
    ],
)
def test_detect_adapter(path: str, expected: str) -> None:
    assert detect_adapter(Path(path)) == expected
    assert expected in ADAPTERS


def test_unknown_names_are_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no adapter"):
        detect_adapter(tmp_path / "events.parquet")
    with pytest.raises(ValueError, match="unknown adapter"):
        read_payloads(tmp_path / "events.csv", "parquet")
