"""What each adapter reads, checked before it reads: a wrong file is refused, not published.

An adapter given a file of another shape would otherwise turn every row into ``{}`` (the
canonical CSV adapter on MovieLens' movies.csv) or crash half-way with a traceback. So
`check_file` looks at the start of the file (the header of a CSV, the first lines of JSON
lines) and raises `AdapterError` naming the file, what the adapter reads and what it found,
before anything is published or replayed. Only the layout is checked: the rows themselves
still reach validation as they are, and a bad one is dead-lettered there with a reason.

>>> EXPECTS["movielens"]
'ratings.csv (userId,movieId,rating,timestamp)'
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import orjson

#: What each adapter reads, as its refusals say it.
EXPECTS: dict[str, str] = {
    "jsonl": "JSON lines (one event object per line)",
    "csv": "canonical CSV with a header (event_id,user_id,type,ts and optional columns)",
    "movielens": "ratings.csv (userId,movieId,rating,timestamp)",
    "otto": 'train.jsonl (one {"session", "events"} object per line) or '
    "train_events.csv (session,aid,ts,type)",
    "cdnow": "cdnow_master.csv (customer_id,date,number_of_cds,dollar_value)",
    "online-retail": "online_retail.csv.gz (InvoiceNo,StockCode,Description,Quantity,"
    "InvoiceDate,UnitPrice,CustomerID,Country)",
}

#: The header columns a CSV adapter cannot do without.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "csv": ("event_id", "user_id", "type", "ts"),
    "movielens": ("userId", "movieId", "rating", "timestamp"),
    "otto": ("session", "aid", "ts", "type"),
    "cdnow": ("customer_id", "date", "dollar_value"),
    "online-retail": (
        "InvoiceNo",
        "StockCode",
        "Quantity",
        "InvoiceDate",
        "UnitPrice",
        "CustomerID",
    ),
}

#: Files people pass by mistake, with what they meant.
HINTS = {"movies.csv": "MovieLens events are in ratings.csv, which reads movies.csv for genres"}

#: JSON lines looked at for one event object before a file is called not JSON lines.
JSONL_PROBE_LINES = 1000
MAX_PROBE_LINE = 1 << 20


class AdapterError(ValueError):
    """A file its adapter cannot read; the message says what was expected and what was found."""


def check_file(path: Path, adapter: str) -> None:
    """Raise `AdapterError` unless `path` looks like what `adapter` reads and has data."""
    if not path.is_file():
        raise AdapterError(
            f"{path}: {'a directory, not a file' if path.is_dir() else 'no such file'}"
        )
    if adapter == "jsonl" or (adapter == "otto" and path.suffix == ".jsonl"):
        _check_json_lines(path, adapter)
    else:
        _check_csv(path, adapter)


def refusal(path: Path, adapter: str, found: str) -> AdapterError:
    """The one-line refusal: file, adapter, what it reads, what was found, and a hint."""
    hint = HINTS.get(path.name.lower())
    return AdapterError(
        f"{path.name}: the {adapter} adapter reads {EXPECTS[adapter]}; {found}"
        + (f" ({hint})" if hint else "")
    )


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", newline="", encoding="utf-8")
    return path.open(newline="", encoding="utf-8")


def _check_csv(path: Path, adapter: str) -> None:
    try:
        with _open_text(path) as fh:
            rows = csv.reader(fh)
            header = next(rows, None)
            has_data = any(any(cell.strip() for cell in row) for row in rows)
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, csv.Error) as exc:
        raise refusal(path, adapter, f"got unreadable bytes ({exc})") from exc
    if header is None or not any(cell.strip() for cell in header):
        raise refusal(path, adapter, "got an empty file")
    missing = [c for c in REQUIRED_COLUMNS[adapter] if c not in header]
    if missing:
        raise refusal(path, adapter, f"got columns {','.join(header)[:200]}")
    if not has_data:
        raise refusal(path, adapter, "got a header and no rows")


def _check_json_lines(path: Path, adapter: str) -> None:
    """JSON lines: some line among the first ones is an object (an OTTO session for otto).

    Broken lines are allowed (validation dead-letters them, one by one); a file none of whose
    first `JSONL_PROBE_LINES` lines is an object is not JSON lines at all.
    """
    first: bytes | None = None
    for line in _first_lines(path, JSONL_PROBE_LINES):
        first = line if first is None else first
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        if adapter == "otto" and not {"session", "events"} <= obj.keys():
            raise refusal(path, adapter, f"got a line {line[:80]!r}")
        return
    if first is None:
        raise refusal(path, adapter, "got an empty file")
    raise refusal(path, adapter, f"got no JSON object in its first lines, the first {first[:80]!r}")


def _first_lines(path: Path, limit: int) -> Iterator[bytes]:
    """Up to `limit` non-blank lines, stripped, each read up to `MAX_PROBE_LINE` bytes (a
    binary file may have no line end at all)."""
    seen = 0
    with path.open("rb") as fh:
        while seen < limit:
            line = fh.readline(MAX_PROBE_LINE)
            if not line:
                return
            if line.strip():
                seen += 1
                yield line.strip()
