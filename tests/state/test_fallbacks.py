"""The published lists in the models: which changed, their versions, their contents, worked out
by hand on a few interactions (`tailor.state.recs.fallbacks`, `LiveRecs.fallback_lists`)."""

from __future__ import annotations

import pytest

from tailor.state import snapshots
from tailor.state.recs.base import Interaction
from tailor.state.recs.fallbacks import FallbackChanges, FallbackSources
from tailor.state.recs.live_recs import LiveRecs
from tailor.state.recs.settings import build
from tests.settings_support import rec_settings

SETTINGS = rec_settings()
DAY = 86400.0  # recs.trending_halflife_s


def shop(**variants: str) -> LiveRecs:
    """The live recommenders, one variant per model named (the shipped hybrid by default)."""
    if not variants:
        return LiveRecs.build(settings=SETTINGS)
    shares = {name: 1.0 / len(variants) for name in variants}
    return LiveRecs.build(settings=SETTINGS, shares=shares, models=variants)


def view(recs: LiveRecs, user: str, item: str, ts: float, *categories: str) -> None:
    recs.learn(Interaction(user, item, ts, categories=categories), ())


def taken(recs: LiveRecs, length: int = 10) -> dict[str, tuple[int, float, list[str]]]:
    """What a refresh publishes now: name → (version, event time, items)."""
    return {
        f"{kind}:{group}" if group else kind: (version, at, [item for item, _ in items])
        for (kind, group), version, at, items in recs.fallback_lists(length)
    }


def test_each_list_has_the_place_of_its_last_change_as_version() -> None:
    recs = shop()
    view(recs, "u1", "boot", 0.0, "shoes")  # 1
    view(recs, "u2", "cap", 60.0, "hats")  # 2
    view(recs, "u1", "boot", 120.0, "shoes")  # 3
    view(recs, "u3", "sock", 180.0)  # 4: no category
    assert taken(recs) == {
        "popular": (4, 180.0, ["boot", "cap", "sock"]),
        "trending": (4, 180.0, ["boot", "sock", "cap"]),  # one view each: the newer first
        "category:hats": (2, 60.0, ["cap"]),
        "category:shoes": (3, 120.0, ["boot"]),
    }
    assert taken(recs) == {}  # nothing changed since
    view(recs, "u2", "cap", 240.0, "hats")  # 5
    assert taken(recs) == {
        "popular": (5, 240.0, ["boot", "cap", "sock"]),  # 2 each: ties by id
        "trending": (5, 240.0, ["cap", "boot", "sock"]),  # cap's views are the newer
        "category:hats": (5, 240.0, ["cap"]),
    }


def test_scores_are_weighted_counts_decayed_to_the_lists_newest_event() -> None:
    recs = shop()
    recs.learn(Interaction("u1", "old", 0.0, weight=3, categories=("a",)), ())
    recs.learn(Interaction("u2", "new", DAY, weight=2, categories=("a", "b")), ())
    lists = {kind + group: items for (kind, group), _, _, items in recs.fallback_lists(5)}
    assert lists["popular"] == (("old", 3.0), ("new", 2.0))
    assert lists["trending"] == (("new", 2.0), ("old", 1.5))  # old: 3, a day back: halved
    assert lists["categorya"] == (("new", 2.0), ("old", 1.5))
    assert lists["categoryb"] == (("new", 2.0),)


def test_segment_lists_count_the_events_of_the_users_in_each_segment() -> None:
    recs = shop()
    view(recs, "u1", "boot", 0.0)  # 1: no segment yet, counts in none
    recs.assign_segment("u1", "cluster:0")
    recs.assign_segment("u2", "cluster:1")
    view(recs, "u1", "cap", 60.0)  # 2
    view(recs, "u2", "boot", 120.0)  # 3
    view(recs, "u1", "cap", 180.0)  # 4
    view(recs, "u9", "sock", 240.0)  # 5: unassigned
    segments = {k: v for k, v in taken(recs).items() if k.startswith("segment:")}
    assert segments == {
        "segment:cluster:0": (4, 180.0, ["cap"]),
        "segment:cluster:1": (3, 120.0, ["boot"]),
    }


def test_a_block_changes_every_list_and_leaves_the_item_out() -> None:
    recs = shop()
    view(recs, "u1", "boot", 0.0, "shoes")
    view(recs, "u1", "sandal", 60.0, "shoes")
    view(recs, "u2", "cap", 120.0, "hats")
    recs.assign_segment("u2", "cluster:0")
    view(recs, "u2", "boot", 180.0)  # 4: boot's categories are those it first came with
    taken(recs)
    recs.block("boot")  # 5
    recs.block("boot")  # blocked already: nothing changes
    assert taken(recs) == {
        "popular": (5, 180.0, ["cap", "sandal"]),
        "trending": (5, 180.0, ["cap", "sandal"]),
        "segment:cluster:0": (5, 180.0, []),
        "category:hats": (5, 120.0, ["cap"]),
        "category:shoes": (5, 180.0, ["sandal"]),
    }
    recs.block("boot", blocked=False)  # 6
    assert taken(recs)["category:shoes"] == (6, 180.0, ["boot", "sandal"])


def test_a_remote_batch_gives_each_event_its_place() -> None:
    """A replica learns another worker's batch at once (`learn_many`): the same versions as
    one by one."""
    events = [
        Interaction(f"u{n % 3}", f"i{n % 4}", 60.0 * n, categories=(f"c{n % 2}",)) for n in range(9)
    ]
    one, many = shop(), shop()
    for event in events:
        one.learn(event, ())
    many.learn_many(events, [()] * len(events))
    assert taken(one) == taken(many)
    assert taken(one) == {}
    assert one.fallbacks.position == many.fallbacks.position == 9


@pytest.mark.parametrize(
    ("models", "kinds"),
    [
        ({"all": "hybrid"}, {"popular", "trending", "segment", "category"}),
        ({"all": "cooc"}, {"popular"}),  # its fill is all-time popularity
        ({"a": "trending", "b": "category"}, {"trending", "category"}),
        ({"all": "isgd"}, set()),
    ],
)
def test_the_lists_come_from_the_variants_models(models: dict[str, str], kinds: set[str]) -> None:
    sources = FallbackSources.of(build(name, SETTINGS) for name in sorted(set(models.values())))
    found = {kind for kind, present in vars(sources).items() if present is not None}
    named = {"popular": "popular", "trending": "trending"}
    named |= {"segments": "segment", "categories": "category"}
    assert {named[kind] for kind in found} == kinds
    recs = shop(**models)
    view(recs, "u1", "boot", 0.0, "shoes")
    assert {name.split(":")[0] for name in taken(recs)} == kinds - {"segment"}


def test_the_changes_are_snapshotted_and_resume_where_they_were() -> None:
    recs = shop()
    view(recs, "u1", "boot", 0.0, "shoes")
    taken(recs)
    view(recs, "u2", "cap", 60.0, "hats")
    recs.block("sock")
    blob = snapshots.encode("models", recs.to_snapshot())
    resumed = LiveRecs.from_snapshot(snapshots.decode(blob, "models"))
    assert resumed.fallbacks == recs.fallbacks
    assert taken(resumed) == taken(recs)
    assert FallbackChanges.from_snapshot(None) == FallbackChanges()  # a store from before
