"""The one event schema: every source, adapter and step agrees on this shape.

An event arrives as a JSON object. `event_from_dict` turns it into a frozen `Event` or says,
with a machine-readable reason, why it cannot: the reason codes are part of the dead-letter
contract that users alert on, so they are listed once here (`REASONS`) and never invented ad hoc.

>>> e = event_from_dict({"event_id": "e1", "user_id": "u1", "type": "click", "ts": 1700000000},
...                     DEFAULT_EVENT_TYPES)
>>> e.user_id, e.ts, e.quantity
('u1', 1700000000.0, 1)
>>> event_from_dict({"user_id": "u1"}, DEFAULT_EVENT_TYPES)
Invalid(reason='missing_field', detail='event_id')
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

from tailor.state.crossing import crossing
from tailor.state.profile.zones import zone_of

DEFAULT_EVENT_TYPES: frozenset[str] = frozenset(
    {
        "page_view",
        "product_view",
        "click",
        "add_to_cart",
        "remove_from_cart",
        "purchase",
        "scroll",
        "search",
    }
)

#: The event type that is a purchase: it moves RFM values, so it always carries a profile.
PURCHASE = "purchase"

#: Every machine-readable reason an input can be refused for, with what it means.
REASONS: dict[str, str] = {
    "not_utf8": "payload bytes are not valid UTF-8",
    "too_large": "payload is larger than validation.max_payload_bytes",
    "malformed_json": "payload is not parseable JSON",
    "not_object": "payload is JSON but not an object",
    "missing_field": "a required field is absent or null",
    "wrong_type": "a field has the wrong JSON type or an unusable value",
    "too_long": "an id or text field is longer than its limit (ids: MAX_ID_LENGTH characters)",
    "out_of_range": "a number is outside its range (price < 0 or > MAX_PRICE, quantity < 1 or "
    "> MAX_QUANTITY)",
    "unknown_type": "the event type is not in validation.event_types",
    "ts_future": "event time is further in the future than validation.max_future_s",
    "ts_past": "event time is before validation.min_ts",
    "late": "event time is behind the user's watermark by more than the allowed lateness",
}

#: Longest accepted id (event, user, item, session ids, type, device), in characters: ids
#: become parts of Redis keys and set members, so an unbounded one is a memory attack.
MAX_ID_LENGTH = 256
#: Longest accepted referrer, and category name, in characters; most categories per event.
MAX_REFERRER_LENGTH = 2048
MAX_CATEGORY_LENGTH = 128
MAX_CATEGORIES = 32
#: Largest accepted quantity and price: beyond them a spend is a producer bug, not a sale.
MAX_QUANTITY = 1_000_000
MAX_PRICE = 1e9


@crossing
@dataclass(frozen=True, slots=True)
class Event:
    """One validated user event; `ts` is event time in epoch seconds (UTC)."""

    event_id: str
    user_id: str
    type: str
    ts: float
    item_id: str | None = None
    category: tuple[str, ...] = ()
    price: float | None = None
    quantity: int = 1
    session_id: str | None = None
    device: str | None = None
    referrer: str | None = None
    consent: bool | None = None
    tz: str | None = (
        None  # the user's time zone at the event (`tailor.state.profile.zones`), else UTC
    )

    @property
    def amount(self) -> float:
        """Money this event moves: price times quantity (0 when there is no price)."""
        return 0.0 if self.price is None else self.price * self.quantity


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why a payload was refused: `reason` is a key of `REASONS`, `detail` names the field."""

    reason: str
    detail: str


class _Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.invalid = Invalid(reason, detail)


def parse_ts(value: Any) -> float:
    """Event time as epoch seconds from a number or an ISO-8601 string.

    Naive ISO strings are read as UTC: a stream mixing zones silently would shift sessions.
    Raises ValueError on anything else, including NaN, infinities and booleans.
    """
    if value.__class__ is int or value.__class__ is float:  # the common case, bool excluded
        ts = float(value)
    elif isinstance(value, bool):
        raise ValueError("boolean timestamp")
    elif isinstance(value, int | float):
        ts = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ts = parsed.timestamp()
    else:
        raise ValueError("timestamp must be a number or an ISO-8601 string")
    if not math.isfinite(ts):
        raise ValueError("timestamp is not finite")
    return ts


def event_from_dict(obj: dict[str, Any], event_types: frozenset[str]) -> Event | Invalid:
    """Validate one decoded JSON object against the schema."""
    try:
        return _build(obj, event_types)
    except _Refused as refused:
        return refused.invalid


def _build(obj: dict[str, Any], event_types: frozenset[str]) -> Event:
    event_id = _required_id(obj, "event_id")
    user_id = _required_id(obj, "user_id")
    event_type = _required_id(obj, "type")
    if event_type not in event_types:
        raise _Refused("unknown_type", event_type[:64])
    raw_ts = obj.get("ts")
    if raw_ts is None:
        raise _Refused("missing_field", "ts")
    try:
        ts = parse_ts(raw_ts)
    except (ValueError, OverflowError, OSError) as exc:
        raise _Refused("wrong_type", "ts") from exc
    # positional, in field order: keywords cost a third more on the hottest path
    return Event(
        event_id,
        user_id,
        event_type,
        ts,
        _item_id(obj),
        _categories(obj.get("category")),
        _optional_price(obj.get("price")),
        _quantity(obj.get("quantity")),
        _optional_id(obj, "session_id"),
        _optional_id(obj, "device"),
        _optional_text(obj, "referrer"),
        _optional_bool(obj.get("consent")),
        _optional_tz(obj.get("tz")),
    )


def _plain_id(value: Any) -> TypeGuard[str]:
    """The common case, decided in one expression: a non-empty, printable, short enough str.

    Everything else takes the full path, which refuses or converts it with a reason.
    """
    return value.__class__ is str and 0 < len(value) <= MAX_ID_LENGTH and value.isprintable()


def _required_id(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if _plain_id(value):
        return value
    if value is None or value == "":
        raise _Refused("missing_field", name)
    return _as_id(value, name)


def _optional_id(obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None or value == "":
        return None
    if _plain_id(value):
        return value
    return _as_id(value, name)


def _as_id(value: Any, name: str) -> str:
    """Ids may be strings or integers (datasets use both); integers are kept as their digits."""
    if isinstance(value, bool):
        raise _Refused("wrong_type", name)
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not value.isprintable():
        raise _Refused("wrong_type", name)
    if len(value) > MAX_ID_LENGTH:
        raise _Refused("too_long", name)
    return value


def _item_id(obj: dict[str, Any]) -> str | None:
    """The item id, interned: every event of a popular item then shares one string, which the
    models' co-occurrence dicts hold thousands of times (less memory, faster snapshots)."""
    item = _optional_id(obj, "item_id")
    return None if item is None else sys.intern(item)


def _optional_text(obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Refused("wrong_type", name)
    if len(value) > MAX_REFERRER_LENGTH:
        raise _Refused("too_long", name)
    return value


def _optional_tz(value: Any) -> str | None:
    """An IANA zone name or a ±HH:MM offset that `tailor.state.profile.zones.zone_of` knows."""
    if value is None or value == "":
        return None
    if not _plain_id(value) or zone_of(value) is None:
        raise _Refused("wrong_type", "tz")
    return value


def _categories(value: Any) -> tuple[str, ...]:
    """A category is a string, or a list of strings for items in several (movie genres)."""
    if value is None or value == "":
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise _Refused("wrong_type", "category")
    if len(items) > MAX_CATEGORIES:
        raise _Refused("too_long", "category")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item or not item.isprintable():
            raise _Refused("wrong_type", "category")
        if len(item) > MAX_CATEGORY_LENGTH:
            raise _Refused("too_long", "category")
        if item not in out:
            out.append(item)
    return tuple(out)


def _optional_price(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Refused("wrong_type", "price")
    price = float(value)
    if not math.isfinite(price):
        raise _Refused("wrong_type", "price")
    if price < 0 or price > MAX_PRICE:
        raise _Refused("out_of_range", "price")
    return price


def _quantity(value: Any) -> int:
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Refused("wrong_type", "quantity")
    if not 0 < value <= MAX_QUANTITY:  # JSON's 1e30 or 10**30 (a float to orjson) included
        raise _Refused("out_of_range", "quantity")
    if not isinstance(value, int):
        raise _Refused("wrong_type", "quantity")
    return value


def _optional_bool(value: Any) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _Refused("wrong_type", "consent")
    return value


def event_to_dict(event: Event) -> dict[str, Any]:
    """The canonical JSON form of an event, as `tailor produce` writes it (None fields omitted)."""
    out: dict[str, Any] = {
        "event_id": event.event_id,
        "user_id": event.user_id,
        "type": event.type,
        "ts": event.ts,
    }
    optional: dict[str, Any] = {
        "item_id": event.item_id,
        "category": list(event.category) if event.category else None,
        "price": event.price,
        "quantity": event.quantity if event.quantity != 1 else None,
        "session_id": event.session_id,
        "device": event.device,
        "referrer": event.referrer,
        "consent": event.consent,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    return out
