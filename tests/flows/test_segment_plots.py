"""The pictures' colours: a batch cluster is drawn in the colour of the live segment it matches."""

from __future__ import annotations

from tailor.flows.segment_plots import _matched


def test_a_batch_cluster_takes_the_colour_of_the_live_segment_it_shares_most_users_with() -> None:
    live = ["a"] * 5 + ["b"] * 4 + ["c"] * 3
    batch = ["batch:1"] * 5 + ["batch:0"] * 3 + ["batch:2"] * 1 + ["batch:2"] * 3
    colours = {"a": 0, "b": 1, "c": 2}
    # batch:1 is all of a; batch:0 most of b; batch:2 holds c's three and one of b
    assert _matched(live, batch, colours) == {"batch:0": 1, "batch:1": 0, "batch:2": 2}
    # a batch cluster with no live segment left to match gets a colour no segment has
    extra = _matched(["a", "a", "a"], ["batch:0", "batch:0", "batch:1"], {"a": 0})
    assert extra == {"batch:0": 0, "batch:1": 1}
