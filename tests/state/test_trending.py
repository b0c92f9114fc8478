from __future__ import annotations

import pickle
import random

import pytest

from tailor.state.recs.trending import RENORM_EXPONENT, Trending


def naive_scores(events: list[tuple[str, float]], halflife: float) -> dict[str, float]:
    """The definition: each event counts 2**-(now - ts)/halflife at the newest ts seen."""
    now = max(ts for _, ts in events)
    scores: dict[str, float] = {}
    for item, ts in events:
        scores[item] = scores.get(item, 0.0) + 2.0 ** ((ts - now) / halflife)
    return scores


def test_decay_equals_a_hand_computation() -> None:
    t = Trending(halflife_s=100.0)
    t.add("a", 1000.0)
    t.add("b", 1100.0)
    t.add("a", 1200.0)
    t.add("c", 1150.0)  # out of order is fine
    # at now=1200: a = 2**-2 + 1 = 1.25, b = 2**-1 = 0.5, c = 2**-0.5
    assert t.score("a") == pytest.approx(1.25)
    assert t.score("b") == pytest.approx(0.5)
    assert t.score("c") == pytest.approx(2**-0.5)
    top = t.top(3)
    assert [i for i, _ in top] == ["a", "c", "b"]
    assert [s for _, s in top] == pytest.approx([1.25, 2**-0.5, 0.5])
    assert t.score("unknown") == 0.0


def test_matches_the_definition_at_every_prefix() -> None:
    rng = random.Random(7)
    t = Trending(halflife_s=3600.0, cache_size=5)
    events: list[tuple[str, float]] = []
    ts = 0.0
    for _ in range(300):
        ts += rng.expovariate(1 / 600)
        event = (f"i{rng.randrange(30)}", ts - rng.uniform(0, 300))
        events.append(event)
        t.add(*event)
        expected = naive_scores(events, 3600.0)
        ranked = sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))
        got = t.top(4, exclude={"i0"})
        want = [kv for kv in ranked if kv[0] != "i0"][:4]
        assert [i for i, _ in got] == [i for i, _ in want]
        assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-9)


def test_renormalisation_keeps_values_and_never_overflows() -> None:
    t = Trending(halflife_s=1.0)
    t.add("old", 0.0)
    t.add("a", 10.0)
    t.add("a", RENORM_EXPONENT + 100.0)  # jumps past the renormalisation point
    t.add("b", 5000.0)  # 2**5000 would overflow without renormalising first
    t.add("b", 5000.0)
    assert t.score("b") == pytest.approx(2.0)
    assert t.score("a") == pytest.approx(2.0 ** (RENORM_EXPONENT + 100.0 - 5000.0), abs=1e-300)
    assert t.score("old") == 0.0 and len(t) == 1  # forgotten below 1e-9
    assert t.top(5) == [("b", pytest.approx(2.0))]


def test_exclusions_beyond_the_cache_fall_back_to_a_full_ranking() -> None:
    t = Trending(halflife_s=10.0, cache_size=2)
    for i, item in enumerate(["a", "b", "c", "d"]):
        for _ in range(4 - i):
            t.add(item, 0.0)
    t.refresh()
    assert t.top(2) == [("a", 4.0), ("b", 3.0)]
    assert t.top(2, exclude={"a", "b"}) == [("c", 2.0), ("d", 1.0)]
    assert t.top(10, exclude={"c"}) == [("a", 4.0), ("b", 3.0), ("d", 1.0)]
    assert t.top(0) == []


def test_the_cache_is_exact_after_every_event_so_batching_never_matters() -> None:
    t = Trending(halflife_s=10.0, cache_size=2)
    t.add("a", 0.0)
    assert t.top(1) == [("a", 1.0)]
    t.add("b", 0.0)
    t.add("b", 0.0)
    assert t.top(2) == [("b", 2.0), ("a", 1.0)]
    t.add("c", 10.0)  # a, b halve; c = 1 displaces a from the 2-item cache
    assert t.top(2) == [("b", 1.0), ("c", 1.0)]
    t.add("a", 10.0)  # a = 1.5 comes back from outside the cache
    assert t.top(3) == [("a", 1.5), ("b", 1.0), ("c", 1.0)]
    t.refresh()  # a rebuild finds the same list
    assert t.top(3) == [("a", 1.5), ("b", 1.0), ("c", 1.0)]


def test_ties_break_by_id_and_pickle_round_trip() -> None:
    t = Trending(halflife_s=60.0)
    for item in ["z", "m", "a"]:
        t.add(item, 30.0)
    assert [i for i, _ in t.top(3)] == ["a", "m", "z"]
    clone = pickle.loads(pickle.dumps(t))
    t.add("q", 90.0)
    clone.add("q", 90.0)
    assert clone.top(4) == t.top(4)
    with pytest.raises(ValueError):
        Trending(halflife_s=0.0)


def test_exclusions_that_eat_the_cache_grow_it_and_rank_exactly() -> None:
    t = Trending(halflife_s=1e9, cache_size=3)
    for n in range(20):
        for _ in range(20 - n):  # i0 most popular, then i1, ...
            t.add(f"i{n}", 0.0)
    heavy = {f"i{n}" for n in range(5)}
    assert [item for item, _ in t.top(2, heavy)] == ["i5", "i6"]
    assert t.cache_size == 7  # k + exclusions: the next such call is a cache hit
    t.add("i19", 0.0)  # the grown cache is kept exact like the small one
    assert [item for item, _ in t.top(3, heavy)] == ["i5", "i6", "i7"]
