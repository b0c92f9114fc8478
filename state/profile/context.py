"""When and through what a user comes: time of day and week, devices and channels, as shares.

The seeds' segments ask for context, not only for how much a user does: an evening mobile
shopper and a weekday desktop buyer can have the same counts. Every event adds to lifetime
tallies, read as features that are bounded and comparable between users:

- ``hour_sin``, ``hour_cos``: the mean of the unit vectors of the events' local times of day
  (cyclical: 23:00 and 01:00 are neighbours; the direction is the typical hour, the length
  how concentrated the hours are); ``weekday_sin``, ``weekday_cos`` likewise for the day of
  the week; ``weekend_share``: the share of events on a Saturday or Sunday.
- ``desktop_share``, ``mobile_share``, ``tablet_share``: the share of events from each
  device (events without a device count as neither).
- ``direct_share``, ``search_share``, ``social_share``, ``email_share``, ``ads_share``,
  ``referral_share``: the share of events per channel, read from the referrer
  (`channel_of`).

Local time is the event's `tz` when it carries one (an IANA zone such as ``Europe/Paris``,
or a fixed offset such as ``+02:00``), else UTC.

>>> from tailor.state.profile.event import Event
>>> mix = ContextMix()
>>> friday_8pm = 1_704_484_800.0  # 2024-01-05 20:00 UTC
>>> mix.update(Event("1", "u", "page_view", friday_8pm, device="mobile", referrer="google.com"))
>>> mix.update(Event("2", "u", "page_view", friday_8pm + 86400, device="mobile", tz="-05:00"))
>>> f = mix.features()  # the second is on Saturday, 15:00 local time
>>> f["mobile_share"], f["search_share"], f["direct_share"], f["weekend_share"]
(1.0, 0.5, 0.5, 0.5)
>>> round(f["hour_sin"], 3), round(f["hour_cos"], 3)  # mean of 20:00 (300°) and 15:00 (225°)
(-0.787, -0.104)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from tailor.state.profile.event import Event
from tailor.state.profile.zones import zone_of

__all__ = ["CHANNELS", "CONTEXT_FEATURES", "DEVICES", "ContextMix", "channel_of"]

DEVICES = ("desktop", "mobile", "tablet")
CHANNELS = ("direct", "search", "social", "email", "ads", "referral")
CONTEXT_FEATURES: tuple[str, ...] = (
    "hour_sin",
    "hour_cos",
    "weekday_sin",
    "weekday_cos",
    "weekend_share",
    *(f"{device}_share" for device in DEVICES),
    *(f"{channel}_share" for channel in CHANNELS),
)

_SEARCH = frozenset({"google", "bing", "duckduckgo", "yahoo", "baidu", "yandex", "ecosia", "qwant"})
_SOCIAL = frozenset(
    {"facebook", "fb", "instagram", "twitter", "tiktok", "linkedin", "lnkd"}
    | {"pinterest", "reddit", "youtube", "snapchat", "threads", "mastodon"}
)
_SOCIAL_HOSTS = frozenset({"x.com", "t.co"})  # names too short to match as a label
_EMAIL = frozenset({"mail", "email", "newsletter", "outlook", "gmail"})
_ADS_MARKS = ("utm_medium=cpc", "utm_medium=paid", "gclid=", "fbclid=", "doubleclick.")


@lru_cache(maxsize=4096)
def channel_of(referrer: str | None) -> str:
    """The channel an event came through: a channel's own name as given ("search"), else read
    from a referrer URL, domain or site name (ad click ids and paid campaign tags first, then
    the site's names: a mail site, a search engine, a social network); no referrer is
    "direct", any other site "referral".

    >>> [channel_of(r) for r in (None, "email", "https://l.facebook.com/x", "shop.example")]
    ['direct', 'email', 'social', 'referral']
    >>> [channel_of(r) for r in ("google", "https://mail.google.com/", "https://t.co/a?gclid=1")]
    ['search', 'email', 'ads']
    >>> [channel_of(r) for r in ("https://t.co/xyz", "x.example.com", "https://www.x.com/p")]
    ['social', 'referral', 'social']
    """
    if not referrer:
        return "direct"
    text = referrer.strip().lower()
    if text in CHANNELS:
        return text
    if "utm_medium=email" in text:
        return "email"
    if any(mark in text for mark in _ADS_MARKS):
        return "ads"
    host = text.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0].removeprefix("www.")
    if host in _SOCIAL_HOSTS:
        return "social"
    labels = host.split(".")
    names = set(labels[:-1]) if len(labels) > 1 else set(labels)
    for channel, known in (("email", _EMAIL), ("search", _SEARCH), ("social", _SOCIAL)):
        if names & known:
            return channel
    return "referral"


_TAU = 2 * math.pi


def _local(ts: float, tz: str | None) -> tuple[int, int]:
    """(weekday, Monday 0; whole seconds since local midnight) of `ts` in `tz` (UTC when
    None), as `datetime.fromtimestamp` would give them, without building a datetime for the
    common cases: the offset is looked up once per zone and UTC hour."""
    offset = 0 if tz is None else _offset(tz, math.floor(ts / 3600))
    if offset is None:  # the offset changes within that hour: ask the zone for this instant
        zone = zone_of(tz) if tz else None
        utcoffset = datetime.fromtimestamp(ts, UTC).astimezone(zone).utcoffset()
        offset = int(utcoffset.total_seconds()) if utcoffset is not None else 0
    frac, whole = math.modf(ts + offset)
    seconds = int(whole) + (1 if round(frac * 1e6) >= 1_000_000 else 0)  # datetime's rounding
    days, in_day = divmod(seconds, 86400)
    return (days + 3) % 7, in_day  # 1970-01-01 was a Thursday


@lru_cache(maxsize=4096)
def _offset(tz: str, hour: int) -> int | None:
    """The zone's UTC offset (seconds) throughout UTC hour `hour`, None if it changes in it."""
    zone = zone_of(tz)
    if zone is None:
        return 0
    start, end = (datetime.fromtimestamp(h * 3600, UTC).astimezone(zone) for h in (hour, hour + 1))
    before, after = start.utcoffset(), end.utcoffset()
    if before != after or before is None:
        return None
    return int(before.total_seconds())


class ContextMix:
    """Lifetime tallies of one user's times, devices and channels (module docstring)."""

    def __init__(self) -> None:
        self.events = 0
        self.hour = [0.0, 0.0]  # sums of sin, cos
        self.weekday = [0.0, 0.0]
        self.weekend = 0
        self.devices: dict[str, int] = {}
        self.channels: dict[str, int] = {}

    def update(self, event: Event) -> None:
        weekday, seconds = _local(event.ts, event.tz)
        hour = _TAU * seconds / 86400
        week = _TAU * (weekday * 86400 + seconds) / (7 * 86400)
        self.hour[0] += math.sin(hour)
        self.hour[1] += math.cos(hour)
        self.weekday[0] += math.sin(week)
        self.weekday[1] += math.cos(week)
        self.weekend += weekday >= 5
        self.events += 1
        if event.device in DEVICES:
            self.devices[event.device] = self.devices.get(event.device, 0) + 1
        channel = channel_of(event.referrer)
        self.channels[channel] = self.channels.get(channel, 0) + 1

    def features(self) -> dict[str, float]:
        """The shares and mean directions (all 0 before the first event)."""
        n = self.events or 1
        out = {
            "hour_sin": self.hour[0] / n,
            "hour_cos": self.hour[1] / n,
            "weekday_sin": self.weekday[0] / n,
            "weekday_cos": self.weekday[1] / n,
            "weekend_share": self.weekend / n,
        }
        out.update((f"{d}_share", self.devices.get(d, 0) / n) for d in DEVICES)
        out.update((f"{c}_share", self.channels.get(c, 0) / n) for c in CHANNELS)
        return out

    def to_snapshot(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "hour": list(self.hour),
            "weekday": list(self.weekday),
            "weekend": self.weekend,
            "devices": dict(self.devices),
            "channels": dict(self.channels),
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> ContextMix:
        made = cls()
        made.events, made.weekend = data["events"], data["weekend"]
        made.hour, made.weekday = list(data["hour"]), list(data["weekday"])
        made.devices, made.channels = dict(data["devices"]), dict(data["channels"])
        return made
