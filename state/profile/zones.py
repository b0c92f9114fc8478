"""Time zones as events give them: an IANA name (``Europe/Paris``) or a fixed ``±HH:MM``
offset; what validation accepts and what local-time features read.

>>> zone_of("+05:30").utcoffset(None), zone_of("Europe/Paris") is not None, zone_of("Mars/Base")
(datetime.timedelta(seconds=19800), True, None)
"""

from __future__ import annotations

import re
from datetime import timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["zone_of"]

_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


@lru_cache(maxsize=512)
def zone_of(name: str) -> tzinfo | None:
    """The zone of an event's `tz` (an IANA name or a ±HH:MM offset), None when unknown."""
    found = _OFFSET.match(name)
    if found:
        sign, hours, minutes = found.groups()
        if int(hours) > 14 or int(minutes) > 59:
            return None
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
