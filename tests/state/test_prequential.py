from __future__ import annotations

import math
import pickle
import random
from collections.abc import Sequence

import pytest

from tailor.state.recs.prequential import Hit, Prequential, difference_ci, score_one

# k = 3 throughout the hand-made stream. Each entry: (item the user chose, list recommended).
STREAM: list[tuple[str, list[str]]] = [
    ("a", ["a", "b", "c"]),  # 1: rank 1 -> recall 1, ndcg 1/log2(2) = 1, rr 1
    ("b", ["a", "b", "c"]),  # 2: rank 2 -> recall 1, ndcg 1/log2(3) = 0.63093, rr 1/2
    ("z", ["a", "b", "c"]),  # 3: absent -> 0, 0, 0
    ("c", ["d", "e", "c", "a"]),  # 4: rank 3 -> recall 1, ndcg 1/log2(4) = 0.5, rr 1/3
    ("g", ["d", "e", "f", "g"]),  # 5: position 4 > k=3 -> miss: 0, 0, 0
    ("b", ["b", "e"]),  # 6: rank 1 (short list) -> 1, 1, 1
]
NDCG2 = 0.6309297535714575  # 1/log2(3)


def test_score_one_by_hand() -> None:
    assert score_one("a", ["a", "b", "c"], k=3) == Hit(recall=1.0, ndcg=1.0, rr=1.0, rank=1)
    hit = score_one("b", ["a", "b", "c"], k=3)
    assert hit.rank == 2 and hit.recall == 1.0
    assert hit.ndcg == pytest.approx(0.63093, abs=1e-5)  # 1/log2(3)
    assert hit.rr == 0.5
    hit = score_one("c", ["d", "e", "c"], k=3)
    assert (hit.rank, hit.ndcg, hit.rr) == (3, 0.5, pytest.approx(1 / 3))  # 1/log2(4) = 0.5
    assert score_one("z", ["a", "b"], k=3) == Hit(recall=0.0, ndcg=0.0, rr=0.0, rank=None)
    assert score_one("a", [], k=3).rank is None


def test_score_one_truncates_at_k() -> None:
    recommended = ["d", "e", "f", "g"]
    assert score_one("g", recommended, k=4).rank == 4
    assert score_one("g", recommended, k=3) == Hit(0.0, 0.0, 0.0, None)
    # k = 1: only the first entry counts
    assert score_one("e", recommended, k=1).rank is None
    assert score_one("d", recommended, k=1).rank == 1


def test_score_one_takes_the_first_duplicate() -> None:
    assert score_one("b", ["a", "b", "b"], k=3).rank == 2


def test_frozen_hit() -> None:
    hit = score_one("a", ["a"], k=1)
    with pytest.raises(AttributeError):
        hit.rank = 2  # type: ignore[misc]


@pytest.mark.parametrize("k", [0, -1])
def test_rejects_non_positive_k(k: int) -> None:
    with pytest.raises(ValueError):
        score_one("a", ["a"], k=k)
    with pytest.raises(ValueError):
        Prequential(k=k)


def test_rejects_non_positive_window() -> None:
    with pytest.raises(ValueError):
        Prequential(window=0)


def test_update_returns_the_hit() -> None:
    p = Prequential(window=3, k=3)
    ranks = [p.update(item, rec).rank for item, rec in STREAM]
    assert ranks == [1, 2, None, 3, None, 1]


def test_totals_by_hand() -> None:
    p = Prequential(window=100, k=3)
    for item, rec in STREAM:
        p.update(item, rec)
    t = p.totals()
    assert t["n"] == 6
    assert t["recall"] == pytest.approx(4 / 6)  # events 1, 2, 4, 6 hit
    # (1 + 0.63093 + 0 + 0.5 + 0 + 1) / 6 = 3.13093 / 6 = 0.52182
    assert t["ndcg"] == pytest.approx(0.5218216255952429)
    assert t["ndcg"] == pytest.approx((2.5 + NDCG2) / 6)
    # (1 + 1/2 + 0 + 1/3 + 0 + 1) / 6 = 2.83333 / 6 = 0.47222
    assert t["mrr"] == pytest.approx(0.4722222222222222)
    # the window is larger than the stream, so it holds the same events
    assert p.window_means() == t


def test_window_slides_by_hand() -> None:
    p = Prequential(window=3, k=3)
    expected = [
        # events in window -> (recall, ndcg, mrr)
        (1, 1.0, 1.0, 1.0),  # {1}
        (2, 1.0, (1 + NDCG2) / 2, 0.75),  # {1,2}: ndcg 1.63093/2 = 0.81546, mrr 1.5/2
        (3, 2 / 3, 0.5436432511904858, 0.5),  # {1,2,3}: ndcg 1.63093/3, mrr 1.5/3
        (3, 2 / 3, 0.37697658452381916, 0.2777777777777778),  # {2,3,4}: 1.13093/3, (5/6)/3
        (3, 1 / 3, 0.5 / 3, 1 / 9),  # {3,4,5}: ndcg 0.5/3 = 0.16667, mrr (1/3)/3
        (3, 2 / 3, 0.5, 0.4444444444444444),  # {4,5,6}: ndcg (0.5+0+1)/3, mrr (1/3+0+1)/3
    ]
    for (item, rec), (n, recall, ndcg, mrr) in zip(STREAM, expected, strict=True):
        p.update(item, rec)
        w = p.window_means()
        assert w["n"] == n
        assert w["recall"] == pytest.approx(recall)
        assert w["ndcg"] == pytest.approx(ndcg)
        assert w["mrr"] == pytest.approx(mrr)
    # totals still cover all six events, not just the window
    assert p.totals()["n"] == 6
    assert p.totals()["mrr"] == pytest.approx(0.4722222222222222)


def test_empty_means_are_zero_with_n_zero() -> None:
    p = Prequential(window=3, k=3)
    assert p.window_means() == {"recall": 0.0, "ndcg": 0.0, "mrr": 0.0, "n": 0}
    assert p.totals() == {"recall": 0.0, "ndcg": 0.0, "mrr": 0.0, "n": 0}


def test_coverage_by_hand() -> None:
    p = Prequential(window=3, k=3)
    for item, rec in STREAM:
        p.update(item, rec)
    # top-3 lists: {a,b,c}, {a,b,c}, {a,b,c}, {d,e,c}, {d,e,f}, {b,e} -> a..f = 6 items;
    # "g" (position 4) and "a" in event 4 (position 4) are beyond k and do not count
    assert p.distinct_recommended == 6
    assert p.coverage(catalogue_size=10) == 0.6
    assert p.coverage(catalogue_size=6) == 1.0
    with pytest.raises(ValueError):
        p.coverage(catalogue_size=5)  # stale catalogue size
    with pytest.raises(ValueError):
        p.coverage(catalogue_size=0)


def test_pickle_round_trip_continues_identically() -> None:
    p = Prequential(window=3, k=3)
    for item, rec in STREAM[:4]:
        p.update(item, rec)
    q = pickle.loads(pickle.dumps(p))
    assert q.window_means() == p.window_means()
    assert q.totals() == p.totals()
    for item, rec in STREAM[4:]:
        assert q.update(item, rec) == p.update(item, rec)
    assert q.window_means() == p.window_means()
    assert q.totals() == p.totals()
    assert q.coverage(10) == p.coverage(10) == 0.6


def naive_means(hits: Sequence[Hit]) -> tuple[float, float, float]:
    """The definition: plain means of the per-event scores."""
    n = len(hits)
    return (
        math.fsum(h.recall for h in hits) / n,
        math.fsum(h.ndcg for h in hits) / n,
        math.fsum(h.rr for h in hits) / n,
    )


def test_matches_the_definition_on_a_long_random_stream() -> None:
    rng = random.Random(11)
    catalogue = [f"i{j}" for j in range(30)]
    window, k = 37, 5
    p = Prequential(window=window, k=k)
    hits: list[Hit] = []
    for step in range(20_000):
        rec = rng.sample(catalogue, rng.randint(0, 8))
        item = rng.choice(catalogue)
        hits.append(p.update(item, rec))
        if step % 97 == 0 or step > 19_900:
            w, t = p.window_means(), p.totals()
            assert w["n"] == min(step + 1, window)
            assert (w["recall"], w["ndcg"], w["mrr"]) == pytest.approx(
                naive_means(hits[-window:]), abs=1e-12
            )
            assert t["n"] == step + 1
            assert (t["recall"], t["ndcg"], t["mrr"]) == pytest.approx(naive_means(hits), abs=1e-12)


def test_same_window_gives_identical_means_whatever_came_before() -> None:
    # No drift: a window reached after a long history equals a fresh instance's bit for bit.
    rng = random.Random(3)
    events = [(rng.choice("abcdef"), rng.sample("abcdef", 4)) for _ in range(5_000)]
    long = Prequential(window=10, k=4)
    for item, rec in events:
        long.update(item, rec)
    fresh = Prequential(window=10, k=4)
    for item, rec in events[-10:]:
        fresh.update(item, rec)
    assert long.window_means() == fresh.window_means()


def test_difference_ci_by_hand() -> None:
    a = [0.0, 1.0, 0.0, 1.0]  # mean 0.5, var = 4 * 0.25 / 3 = 1/3
    b = [1.0, 1.0, 1.0, 0.0]  # mean 0.75, var = (3 * 0.0625 + 0.5625) / 3 = 0.25
    # se = sqrt(1/3 / 4 + 0.25 / 4) = sqrt(1/12 + 1/16) = sqrt(7/48) = 0.381881
    # half width = 1.96 * 0.381881 = 0.748487
    diff, lower, upper = difference_ci(a, b)
    assert diff == 0.25
    assert lower == pytest.approx(-0.4984873635094538)
    assert upper == pytest.approx(0.9984873635094538)
    assert upper - diff == pytest.approx(1.96 * math.sqrt(7 / 48))


def test_difference_ci_sign_z_and_unequal_sizes() -> None:
    a = [1.0, 2.0, 3.0]  # mean 2, var 1
    b = [2.0, 4.0]  # mean 3, var 2
    # se = sqrt(1/3 + 2/2) = sqrt(4/3) = 1.154701; z = 1 -> 1 ± 1.154701
    diff, lower, upper = difference_ci(a, b, z=1.0)
    assert diff == 1.0
    assert lower == pytest.approx(1 - math.sqrt(4 / 3))
    assert upper == pytest.approx(1 + math.sqrt(4 / 3))
    # swapping the arms flips the difference: b - a is the convention
    diff2, lower2, upper2 = difference_ci(b, a, z=1.0)
    assert diff2 == -1.0
    assert (lower2, upper2) == pytest.approx((-upper, -lower))


def test_difference_ci_constant_samples_have_zero_width() -> None:
    assert difference_ci([0.5, 0.5], [1.0, 1.0, 1.0]) == (0.5, 0.5, 0.5)


def test_difference_ci_needs_two_per_arm() -> None:
    with pytest.raises(ValueError):
        difference_ci([1.0], [1.0, 0.0])
    with pytest.raises(ValueError):
        difference_ci([1.0, 0.0], [])
