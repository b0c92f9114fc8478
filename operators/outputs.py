"""A user's output: drafted by the models step, finished by the user's outputs step.

The models step drafts what only the global models know (variant, recommendations) at a
user's last full update of a batch, from the recommenders as they stand right after that
event, and fills in the segments at the end of the batch, once it knows whether the update's
place in event-time order was reached (`tailor.operators.models`). The user-keyed outputs step
(`tailor.operators.user_outputs`) turns the draft into a `UserOutput`: the profile from the update,
the rule segments, the latency samples. A settled correction re-derives what depends on the
segments: the rule segments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tailor.operators.records import (
    AgedDraft,
    Drafted,
    Erasure,
    ForUser,
    Settlement,
    UserOutput,
    UserUpdate,
)
from tailor.state.segments.rules import RuleSet

__all__ = ["BatchNews", "UserNews", "aged_output", "corrected", "features_of", "user_output"]


@dataclass
class UserNews:
    """One user's `ForUser` while the models step reads its batch (frozen at its end)."""

    user_id: str
    updates: list[tuple[float, float]] = field(default_factory=list)
    tests: list[tuple[int, str, int]] = field(default_factory=list)
    draft: Drafted | None = None
    drafted_at: int = -1
    settlements: list[Settlement] = field(default_factory=list)
    aged: list[AgedDraft] = field(default_factory=list)

    def frozen(self) -> ForUser:
        return ForUser(
            self.user_id,
            tuple(self.updates),
            tuple(self.tests),
            self.draft,
            self.drafted_at,
            tuple(self.settlements),
            tuple(self.aged),
        )


class BatchNews:
    """A models batch's per-user records in order: each user's news, split by erasures."""

    def __init__(self) -> None:
        self.records: list[UserNews | Erasure] = []
        self.open: dict[str, UserNews] = {}

    def news(self, user: str) -> UserNews:
        """The user's open record (a new one at their first update or after an erasure)."""
        found = self.open.get(user)
        if found is None:
            found = self.open[user] = UserNews(user)
            self.records.append(found)
        return found

    def erase(self, erasure: Erasure) -> None:
        self.open.pop(erasure.user_id, None)  # news after it go in a new record
        self.records.append(erasure)

    def frozen(self) -> list[ForUser | Erasure]:
        return [r.frozen() if isinstance(r, UserNews) else r for r in self.records]


def user_output(d: Drafted, rules: RuleSet, timings: Sequence[tuple[float, float]]) -> UserOutput:
    """The output of a draft; `timings` are the (read_at, event time) of every update it
    reflects (for latency). Segments are "" during the segmenter's warm-up."""
    last = d.update
    profile = _profile(last, features_of(last))
    profile["variant"] = d.variant
    segment, name, rfm = d.segment, d.segment_name, d.rfm_segment
    return UserOutput(
        user_id=last.user_id,
        version=last.version,
        updated_at=last.event.ts,
        profile=profile,
        segment=segment,
        segment_name=name,
        rfm_segment=rfm or "",
        rule_segments=rules.matching(_rule_values(profile, segment, name, rfm)),
        recs=d.recs,
        read_ats=tuple(read_at for read_at, _ in timings),
        event_times=tuple(ts for _, ts in timings),
        settled=d.settled,
    )


def aged_output(user_id: str, a: AgedDraft, rules: RuleSet) -> UserOutput:
    """The output of a profile aged to `a.at`: settled at its place, no recommendations (the
    sink leaves the stored list as it is), no latency samples (no event to time)."""
    profile = dict(a.profile)
    rfm = a.rfm_segment
    return UserOutput(
        user_id=user_id,
        version=a.version,
        updated_at=a.at,
        profile=profile,
        segment=a.segment,
        segment_name=a.segment_name,
        rfm_segment=rfm or "",
        rule_segments=rules.matching(_rule_values(profile, a.segment, a.segment_name, rfm)),
        recs=(),
        settled=True,
        aged_to=a.at,
    )


def corrected(sent: UserOutput, s: Settlement, rules: RuleSet) -> UserOutput:
    """`sent` with its segments as settled: same version, no latency samples (counted once)."""
    _version, segment, name, rfm = s
    values = _rule_values(sent.profile, segment, name, rfm)
    return dataclasses.replace(
        sent,
        segment=segment,
        segment_name=name,
        rfm_segment=rfm or "",
        rule_segments=rules.matching(values),
        read_ats=(),
        event_times=(),
        settled=True,
    )


def features_of(u: UserUpdate) -> dict[str, float]:
    """The features of a full update; a light one here is a wiring bug, not bad data."""
    if u.features is None:
        raise ValueError(
            f"update {u.version} of user {u.user_id!r} is light where a full one is due: "
            "the user-state step's learn_every must equal the models step's"
        )
    return u.features


def _profile(u: UserUpdate, features: dict[str, float]) -> dict[str, Any]:
    """What the sink stores besides the reserved fields (segment_name is one of those)."""
    return {
        "features": dict(features),
        "device": u.device,
        "referrer": u.referrer,
        "top_categories": [[cat, score] for cat, score in u.top_categories],
        "last_event_type": u.event.type,
        "last_event_ts": u.event.ts,
    }


def _rule_values(
    profile: dict[str, Any], segment: str, name: str, rfm: str | None
) -> dict[str, float | str | None]:
    """What rules may refer to: the profile's features and context, and the segments."""
    top = profile["top_categories"]
    values: dict[str, float | str | None] = dict(profile["features"])
    values.update(
        segment=segment,
        segment_name=name,
        rfm=rfm,
        device=profile["device"],
        referrer=profile["referrer"],
        top_category=top[0][0] if top else None,
        last_event_type=profile["last_event_type"],
    )
    return values
