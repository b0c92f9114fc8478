from __future__ import annotations

from collections.abc import Callable

from tailor.state.segments.names import SegmentNamer, describe, feature_label


def test_describe_picks_the_strongest_deviations_in_words() -> None:
    z = {"spend_30d": 2.0, "purchases_total": 1.5, "bounce_rate": -0.7, "views_1h": 0.2}
    assert describe(z, "mobile") == "big spenders · frequent buyers · mobile"
    assert describe(z, None) == "big spenders · frequent buyers · engaged"
    assert describe(z, None, max_parts=4) == "big spenders · frequent buyers · engaged"
    assert describe({"views_1h": 0.1}, None) == "typical"
    assert feature_label("views_7d", True) == "many views (7d)"
    assert feature_label("custom", False) == "low custom"


def test_names_are_unique_by_adding_detail_then_a_number() -> None:
    namer = SegmentNamer()
    details = {
        0: ["big spenders", "big spenders · mobile"],
        1: ["big spenders", "big spenders · desktop"],
    }

    def candidate(segment: int) -> Callable[[int], str]:
        return lambda parts: details[segment][0 if parts <= 3 else 1]

    assert namer.update(0, [1.0], candidate(0))
    assert namer.update(1, [5.0], candidate(1))
    assert namer.names == {0: "big spenders", 1: "big spenders · desktop"}
    assert namer.update(2, [9.0], lambda parts: "big spenders")
    assert namer.names[2] == "big spenders #2"


def test_the_same_words_in_another_order_are_the_same_name() -> None:
    """A person reads "buying now · frequent buyers" and "frequent buyers · buying now" as
    one segment: the second gets the next strongest deviation added."""
    namer = SegmentNamer()
    namer.update(0, [1.0], lambda parts: "buying now · frequent buyers · many sessions")
    more = ["many sessions · buying now · frequent buyers", "long sessions"]
    namer.update(1, [5.0], lambda parts: " · ".join(more[: 1 if parts <= 3 else 2]))
    assert namer.names[1] == "many sessions · buying now · frequent buyers · long sessions"


def test_names_stay_until_the_segment_really_moves() -> None:
    namer = SegmentNamer(rename_distance=1.0)
    namer.update(0, [0.0, 0.0], lambda parts: "typical")
    assert not namer.update(0, [0.6, 0.6], lambda parts: "high x")  # 0.85 std: noise
    assert namer.names[0] == "typical"
    assert namer.update(0, [1.0, 1.0], lambda parts: "high x")  # 1.4 std: a real move
    assert namer.names[0] == "high x"
    namer.forget(0)
    assert namer.names == {}
