"""A profile aged to a later time with no new event equals the batch computation then.

The batch references are `test_features_exact`'s, taken at a `now` after the last event:
sessions closed after the gap, windows and RFM counted back from `now`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from tailor.state.profile.event import Event
from tailor.state.profile.user import UserState
from tests.state.test_features_exact import (
    DAY,
    GAP,
    assert_features,
    cdnow_events,
    generated_events,
    ref_context,
    ref_rfm,
    ref_sessions,
    ref_windows,
    replay,
)

AGES = (1.0, GAP + 1.0, 2 * DAY, 8 * DAY, 40 * DAY, 400 * DAY)


def test_aged_features_match_batch_at_later_times() -> None:
    """A profile aged to `now` (no new event) equals the batch computation at `now`, and
    aging leaves the state as it was: the next event sees everything it held."""
    events = generated_events()
    aged_values: dict[str, set[float]] = defaultdict(set)

    def check(state: UserState, seen: list[Event]) -> None:
        before = state.features()
        last = max(e.ts for e in seen)
        for age in AGES:
            now = last + age
            want = ref_sessions(seen, now) | ref_windows(seen, now) | ref_rfm(seen, now)
            want |= ref_context(seen)
            got = state.aged_features(now)
            assert_features(got, want, f"user {seen[-1].user_id} after {len(seen)} at +{age}")
            for name in ("session_events", "views_24h", "purchases_30d", "recency_days"):
                aged_values[name].add(got[name])
        assert state.aged_features(last) == before  # at the newest event: no aging
        assert state.features() == before

    replay(events, check, when=lambda n: n % 7 == 0)
    # the ages crossed every kind of boundary: sessions closed, windows and RFM emptied
    assert 0.0 in aged_values["session_events"] and 0.0 in aged_values["views_24h"]
    assert 0.0 in aged_values["purchases_30d"] and 365.0 in aged_values["recency_days"]
    assert len(aged_values["recency_days"]) > 100


def test_cdnow_aged_to_the_end_equals_an_event_at_the_end(data_dir: Path) -> None:
    """Aging a customer to the observation end gives the RFM an event there would."""
    users = replay(cdnow_events(data_dir), lambda state, seen: None)
    end = datetime(1998, 7, 1, tzinfo=UTC).timestamp()
    lapsed = 0
    for user, (state, seen) in users.items():
        got = state.aged_features(end)
        want = ref_sessions(seen, end) | ref_windows(seen, end) | ref_rfm(seen, end)
        assert_features(got, want | ref_context(seen), f"customer {user}")
        lapsed += got["recency_days"] > 180
    assert lapsed > len(users) // 2  # CDNOW: most first-quarter customers never came back
