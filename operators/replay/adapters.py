"""Turn dataset files into canonical event payloads (JSON bytes that `tailor.state.profile.event`
reads).

Each adapter is a small named function `Path -> Iterator[bytes]`; `tailor produce` and the
replay source pick one by name or by file name (`detect_adapter`). Adapters only reshape:
they never validate, so a hostile input reaches the worker's validation step intact and is
dead-lettered there with a reason, instead of vanishing in a loader.

Streams must be in event-time order (per-user windows and watermarks assume it), so the
adapters of files sorted by something else (MovieLens by user, OTTO by session, CDNOW by
customer) read the file whole and sort it; the big online-retail file is already in time
order and is streamed row by row.

>>> sorted(ADAPTERS)
['cdnow', 'csv', 'jsonl', 'movielens', 'online-retail', 'otto']
>>> detect_adapter(Path("data/movielens-latest-small/ratings.csv"))
'movielens'
>>> detect_adapter(Path("events.jsonl"))
'jsonl'
"""

from __future__ import annotations

import calendar
import csv
import gzip
import math
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from tailor.operators.replay.adapter_checks import AdapterError, check_file, refusal

__all__ = ["ADAPTERS", "AdapterError", "detect_adapter", "read_payloads"]

Adapter = Callable[[Path], Iterator[bytes]]

#: The canonical CSV header: the schema's field names.
CSV_COLUMNS = (
    "event_id",
    "user_id",
    "type",
    "ts",
    "item_id",
    "category",
    "price",
    "quantity",
    "session_id",
    "device",
    "referrer",
    "consent",
)
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
OTTO_TYPES = {"clicks": "product_view", "carts": "add_to_cart", "orders": "purchase"}
NO_GENRES = "(no genres listed)"


def _dump(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)


# --- jsonl -------------------------------------------------------------------------------


def read_jsonl(path: Path) -> Iterator[bytes]:
    """One canonical event per line, as raw bytes: a broken line must reach validation as it is."""
    with path.open("rb") as fh:
        for line in fh:
            if line.endswith(b"\n"):
                line = line[:-1]
            if line.strip():
                yield line


# --- canonical csv -----------------------------------------------------------------------


def _number(text: str) -> int | float | str:
    """An int or finite float when the cell is one; otherwise the text, for validation to judge."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def _csv_cell(column: str, text: str) -> Any:
    if column in ("ts", "price", "quantity"):
        return _number(text)
    if column == "category":
        return text.split("|") if "|" in text else text
    if column == "consent":
        lowered = text.lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else text
    return text


def read_csv(path: Path) -> Iterator[bytes]:
    """Canonical CSV (`CSV_COLUMNS`): numbers typed, empty cell = absent, `a|b` = category list.

    A cell that does not convert stays a string, so validation refuses it as `wrong_type`.
    """
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            obj = {
                column: _csv_cell(column, text)
                for column in CSV_COLUMNS
                if (text := row.get(column)) is not None and text != ""
            }
            yield _dump(obj)


# --- MovieLens ---------------------------------------------------------------------------


def _movie_genres(path: Path) -> dict[str, list[str]]:
    genres: dict[str, list[str]] = {}
    if not path.exists():
        return genres
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            listed = [g for g in row["genres"].split("|") if g and g != NO_GENRES]
            if listed:
                genres[row["movieId"]] = listed
    return genres


def read_movielens(path: Path) -> Iterator[bytes]:
    """ratings.csv → one `product_view` per rating, genres from movies.csv as categories.

    The file is sorted by user; it is sorted here by (timestamp, userId, movieId), numerically,
    so the stream is in time order and ties break the same way on every replay. The rating
    itself is not part of the event schema and is left out.
    """
    genres = _movie_genres(path.with_name("movies.csv"))
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = [(int(r["timestamp"]), int(r["userId"]), int(r["movieId"])) for r in reader]
    rows.sort()
    for ts, user, movie in rows:
        obj: dict[str, Any] = {
            "event_id": f"ml-{user}-{movie}-{ts}",
            "user_id": str(user),
            "type": "product_view",
            "ts": ts,
            "item_id": str(movie),
        }
        category = genres.get(str(movie))
        if category:
            obj["category"] = category
        yield _dump(obj)


# --- OTTO --------------------------------------------------------------------------------

# (ts_ms, session, position in session, aid, otto type)
_OttoRow = tuple[int, int, int, int, str]


def _otto_rows_jsonl(path: Path) -> list[_OttoRow]:
    rows: list[_OttoRow] = []
    with path.open("rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            session = orjson.loads(line)
            sid = int(session["session"])
            for pos, ev in enumerate(session["events"]):
                rows.append((int(ev["ts"]), sid, pos, int(ev["aid"]), str(ev["type"])))
    return rows


def _otto_rows_csv(path: Path) -> list[_OttoRow]:
    rows: list[_OttoRow] = []
    seen: dict[int, int] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            sid = int(row["session"])
            pos = seen.get(sid, 0)
            seen[sid] = pos + 1
            rows.append((int(row["ts"]), sid, pos, int(row["aid"]), row["type"]))
    return rows


def read_otto(path: Path) -> Iterator[bytes]:
    """OTTO sessions (train.jsonl or the flattened train_events.csv) as a time-ordered stream.

    clicks → product_view, carts → add_to_cart, orders → purchase (any other type is passed
    through so validation dead-letters it); user = session, ts = ms / 1000. The event id is
    the session plus the event's position in that session, identical for both file formats.
    Sorting needs the whole file in memory: fine for the sample, not for the 216M-event set.
    """
    loader = _otto_rows_jsonl if path.suffix == ".jsonl" else _otto_rows_csv
    rows = loader(path)
    rows.sort()
    for ts_ms, sid, pos, aid, kind in rows:
        obj = {
            "event_id": f"otto-{sid}-{pos}",
            "user_id": str(sid),
            "type": OTTO_TYPES.get(kind, kind),
            "ts": ts_ms / 1000,
            "item_id": str(aid),
        }
        yield _dump(obj)


# --- CDNOW -------------------------------------------------------------------------------


def _day_start(yyyymmdd: str) -> int:
    return calendar.timegm((int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]), 0, 0, 0))


def read_cdnow(path: Path) -> Iterator[bytes]:
    """cdnow_master.csv → one `purchase` per row at 00:00 UTC of its day.

    price = dollar_value and quantity 1: `number_of_cds` is kept out on purpose, so a
    customer's spend (price × quantity) equals the dollar values exactly. Rows are stably
    sorted by date (file order within a day); event ids keep the 0-based data-row index.
    """
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = [
            (row["date"], i, row["customer_id"], row["dollar_value"])
            for i, row in enumerate(reader)
        ]
    rows.sort(key=lambda row: row[0])
    days: dict[str, int] = {}
    for date, index, customer, dollars in rows:
        ts = days.get(date)
        if ts is None:
            ts = days[date] = _day_start(date)
        obj = {
            "event_id": f"cdnow-{index}",
            "user_id": customer,
            "type": "purchase",
            "ts": ts,
            "price": float(dollars),
        }
        yield _dump(obj)


# --- UCI Online Retail -------------------------------------------------------------------


def _customer(text: str) -> str:
    return text[:-2] if text.endswith(".0") else text


def read_online_retail(path: Path) -> Iterator[bytes]:
    """online_retail.csv.gz → `purchase` events for the usual RFM-clean subset, streamed.

    Kept: a known customer, an invoice not starting with "C" (cancellation), Quantity > 0 and
    UnitPrice > 0 (397,884 of 541,909 lines). InvoiceDate has no zone and is read as UTC. The
    event id keeps the 0-based index of the line among all data rows, so it points at the source.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        col = {name: i for i, name in enumerate(header)}
        c_inv, c_stock, c_qty = col["InvoiceNo"], col["StockCode"], col["Quantity"]
        c_date, c_price, c_cust = col["InvoiceDate"], col["UnitPrice"], col["CustomerID"]
        last_date, last_ts = "", 0
        for index, row in enumerate(reader):
            customer = row[c_cust]
            if not customer or row[c_inv].startswith("C"):
                continue
            quantity, price = int(row[c_qty]), float(row[c_price])
            if quantity <= 0 or price <= 0:
                continue
            if row[c_date] != last_date:
                last_date = row[c_date]
                last_ts = calendar.timegm(datetime.fromisoformat(last_date).timetuple())
            obj = {
                "event_id": f"retail-{index}",
                "user_id": _customer(customer),
                "type": "purchase",
                "ts": last_ts,
                "item_id": row[c_stock],
                "price": price,
                "quantity": quantity,
            }
            yield _dump(obj)


ADAPTERS: dict[str, Adapter] = {
    "jsonl": read_jsonl,
    "csv": read_csv,
    "movielens": read_movielens,
    "otto": read_otto,
    "cdnow": read_cdnow,
    "online-retail": read_online_retail,
}

_BY_NAME = {
    "ratings.csv": "movielens",
    "cdnow_master.csv": "cdnow",
    "online_retail.csv.gz": "online-retail",
}


def detect_adapter(path: Path) -> str:
    """The adapter for a file, from its name (and, for OTTO's generic names, its folder).

    >>> detect_adapter(Path("shared/data/otto-sample/train.jsonl"))
    'otto'
    >>> detect_adapter(Path("elsewhere/train.jsonl"))
    'jsonl'
    """
    name = path.name.lower()
    if name in _BY_NAME:
        return _BY_NAME[name]
    if name in ("train_events.csv", "train.jsonl") and "otto" in path.parent.name.lower():
        return "otto"
    if name.endswith(".jsonl"):
        return "jsonl"
    if name.endswith(".csv"):
        return "csv"
    raise AdapterError(f"no adapter for {path.name!r}; name one of {sorted(ADAPTERS)}")


def checked_adapter(path: Path, adapter: str | None = None) -> str:
    """The adapter for `path` (`adapter`, or the one its name implies), once the file looks
    like what it reads (`tailor.operators.replay.adapter_checks`); raises `AdapterError`
    otherwise."""
    name = adapter or detect_adapter(path)
    if name not in ADAPTERS:
        raise AdapterError(f"unknown adapter {name!r}; choose one of {sorted(ADAPTERS)}")
    check_file(path, name)
    return name


def read_payloads(path: Path, adapter: str | None = None) -> Iterator[bytes]:
    """Canonical payloads of `path`, with `adapter` or the one its name implies.

    The file's layout is checked now, before the first payload is asked for; a row the
    adapter cannot convert later on (a sorted dataset reads every row before its first
    payload) is an `AdapterError` too, naming the file.
    """
    name = checked_adapter(path, adapter)
    return _guarded(path, name, ADAPTERS[name](path))


def _guarded(path: Path, adapter: str, payloads: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from payloads
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        if isinstance(exc, AdapterError):
            raise
        found = f"got a row it cannot read ({type(exc).__name__}: {exc})"
        raise refusal(path, adapter, found) from exc
