"""A user's output from the models step: drafted at their last update, finished with segments.

The models step drafts an output (profile, variant, recommendations) at a user's last full
update of a batch, from the recommenders as they stand right after that event, and fills in
the segments at the end of the batch, once it knows whether the update's place in event-time
order was reached (`operators.models`). A settled correction re-derives what depends on the
segments: the rule segments.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from operators.records import Recommendation, UserOutput, UserUpdate
from state.rules import RuleSet
from state.segmentation import Settled

__all__ = ["Draft", "corrected", "draft", "user_output"]


@dataclass(frozen=True, slots=True)
class Draft:
    """A user's output before its segments are filled in (at the end of the batch)."""

    updates: list[UserUpdate]
    profile: dict[str, Any]
    recs: tuple[Recommendation, ...]


def draft(updates: list[UserUpdate], variant: str, recs: tuple[Recommendation, ...]) -> Draft:
    """The draft of the user's last update in `updates` (all reflected, for latency)."""
    last = updates[-1]
    profile = _profile(last, _features(last))
    profile["variant"] = variant
    return Draft(updates, profile, recs)


def user_output(d: Draft, rules: RuleSet, segment: str, name: str, rfm: str | None) -> UserOutput:
    """The output of a draft with its segments ("" during the segmenter's warm-up)."""
    last, profile = d.updates[-1], d.profile
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
        read_ats=tuple(u.read_at for u in d.updates),
        event_times=tuple(u.event.ts for u in d.updates),
    )


def corrected(sent: UserOutput, s: Settled, rules: RuleSet) -> UserOutput:
    """`sent` with its segments as settled: same version, no latency samples (counted once)."""
    values = _rule_values(sent.profile, s.segment, s.segment_name, s.rfm_segment)
    return dataclasses.replace(
        sent,
        segment=s.segment,
        segment_name=s.segment_name,
        rfm_segment=s.rfm_segment or "",
        rule_segments=rules.matching(values),
        read_ats=(),
        event_times=(),
        settled=True,
    )


def _features(u: UserUpdate) -> dict[str, float]:
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
