"""When the models step publishes the lists (`tailor.operators.fallbacks.FallbackCadence`): at
most once per interval of a clock given here, at once at the end of the input, only what
changed, and nothing from a replica that does not publish."""

from __future__ import annotations

from datetime import UTC, datetime

from tailor.operators.fallbacks import FallbackCadence
from tailor.operators.records import FallbackList
from tailor.state.recs.base import Interaction
from tailor.state.recs.live_recs import LiveRecs
from tests.settings_support import rec_settings


class Clock:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def learned(n: int) -> LiveRecs:
    recs = LiveRecs.build(settings=rec_settings())
    for i in range(n):
        recs.learn(Interaction(f"u{i}", f"i{i % 3}", 60.0 * i), ())
    return recs


def versions(lists: list[FallbackList]) -> dict[str, int]:
    return {f"{found.kind}{found.group}": found.version for found in lists}


def test_a_changed_list_goes_out_at_most_once_per_interval() -> None:
    clock = Clock()
    cadence = FallbackCadence(length=2, every_s=1.0, clock=clock)
    recs = learned(3)
    first = cadence.due(recs, publishes=True)
    assert versions(first) == {"popular": 3, "trending": 3}
    assert all(len(found.items) == 2 for found in first)
    recs.learn(Interaction("u9", "i0", 600.0), ())
    clock.now += 0.5
    assert cadence.due(recs, publishes=True) == []  # held back...
    assert cadence.wake_at(recs, publishes=True) == datetime.fromtimestamp(1_001.0, UTC)
    clock.now += 0.5
    assert versions(cadence.due(recs, publishes=True)) == {"popular": 4, "trending": 4}
    assert cadence.wake_at(recs, publishes=True) is None  # ... then nothing waits
    assert cadence.due(recs, publishes=True) == []  # nothing changed


def test_the_end_of_the_input_publishes_whatever_the_clock_says() -> None:
    clock = Clock()
    cadence = FallbackCadence(length=2, every_s=60.0, clock=clock)
    recs = learned(2)
    cadence.due(recs, publishes=True)
    recs.learn(Interaction("u9", "i0", 600.0), ())
    assert cadence.due(recs, publishes=True) == []
    assert versions(cadence.due(recs, publishes=True, force=True)) == {
        "popular": 3,
        "trending": 3,
    }


def test_every_batch_when_the_interval_is_zero() -> None:
    cadence = FallbackCadence(length=2, every_s=0.0, clock=Clock())
    recs = learned(1)
    assert versions(cadence.due(recs, publishes=True)) == {"popular": 1, "trending": 1}
    recs.learn(Interaction("u9", "i0", 600.0), ())
    assert cadence.wake_at(recs, publishes=True) is None  # the next batch publishes it
    assert versions(cadence.due(recs, publishes=True)) == {"popular": 2, "trending": 2}


def test_a_replica_not_publishing_drops_its_changes_one_not_knowing_yet_keeps_them() -> None:
    cadence = FallbackCadence(length=2, every_s=0.0, clock=Clock())
    recs = learned(2)
    assert cadence.due(recs, publishes=None) == []
    assert cadence.wake_at(recs, publishes=None) is None
    assert recs.fallbacks.changed()  # kept: it may be the first replica
    assert cadence.due(recs, publishes=False) == []
    assert not recs.fallbacks.changed()  # dropped: another replica publishes them
