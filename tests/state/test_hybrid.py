"""Hybrid: the pool re-ranked by hand, the fallback chain, the selection of the best list."""

from __future__ import annotations

import math
import pickle
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pytest

from tailor.state.recs.base import Interaction, Scored
from tailor.state.recs.hybrid import FUSED, Hybrid


class Fixed:
    """A component with a fixed ranked list (and scores), recording what it learned."""

    def __init__(self, scored: Sequence[str] | Mapping[str, float], reason: str = "") -> None:
        if isinstance(scored, Mapping):
            self.scores = dict(scored)
        else:
            self.scores = {item: float(len(scored) - rank) for rank, item in enumerate(scored)}
        self.reason = reason
        self.learned: list[tuple[str, str, int]] = []
        self.forgotten: list[str] = []

    def learn_one(
        self, event: Interaction, history: Sequence[str], exclude: Collection[str] = ()
    ) -> None:
        self.learned.append((event.user, event.item, event.weight))

    def recommend(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Scored]:
        ranked = sorted(self.scores.items(), key=lambda pair: (-pair[1], pair[0]))
        return [(item, score) for item, score in ranked if item not in exclude][:k]

    def score(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[float]:
        return [self.scores.get(item, 0.0) for item in items]

    def why(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[str]:
        return [self.reason] * len(items)

    def forget(self, user: str, history: Sequence[str]) -> None:
        self.forgotten.append(user)


def probing(
    components: Mapping[str, Fixed], weights: Mapping[str, float], pool: str, **settings: Any
) -> Hybrid:
    """A selecting hybrid that probes every testable interaction (unless told otherwise)."""
    return Hybrid(components, weights, pool=pool, **{"select": True, "probe_every": 1, **settings})


def test_the_pool_is_re_ranked_by_weighted_reciprocal_ranks() -> None:
    pool = Fixed(["x", "y", "z"], "from the pool")  # ranks x 1, y 2, z 3
    other = Fixed({"z": 5.0, "y": 4.0, "w": 9.0}, "from the other")  # of the pool: z 1, y 2, x 3
    hybrid = Hybrid({"p": pool, "o": other}, {"p": 1.0, "o": 0.5}, pool="p", c=1.0)
    got = hybrid.recommend_explained("u", ("h",), 0.0, 3, set())
    # x: 1/2 + 0.5/4 = 0.625; y: 1/3 + 0.5/3 = 0.5; z: 1/4 + 0.5/2 = 0.5 (tie: pool order, y)
    # w is not in the pool: never proposed, whatever the other model thinks of it
    assert [(r.item, round(r.score, 6), r.source) for r in got] == [
        ("x", 0.625, "p"),
        ("y", 0.5, "p"),
        ("z", 0.5, "p"),  # 1/4 from p = 0.25 from o: the first best keeps it
    ]
    assert hybrid.why("u", ("h",), ["x"]) == ["from the pool"]


def test_a_component_with_no_opinion_changes_nothing_and_depth_bounds_the_pool() -> None:
    pool = Fixed(["x", "y", "z"])
    flat = Fixed({})  # scores 0 for everything: no opinion
    hybrid = Hybrid({"p": pool, "f": flat}, {"p": 1.0, "f": 5.0}, pool="p", depth=2)
    got = hybrid.recommend_explained("u", ("h",), 0.0, 5, {"x"})
    assert [(r.item, r.source) for r in got] == [("y", "p"), ("z", "p")]
    assert got[0].score == pytest.approx(1.0 / 21.0)


def test_no_history_gets_the_first_fallback_that_answers_and_short_lists_are_filled() -> None:
    segment, trending, popular = Fixed({}), Fixed(["t1", "t2"]), Fixed(["p1"])
    components = {"cooc": Fixed(["c1"]), "seg": segment, "trending": trending, "pop": popular}
    hybrid = Hybrid(components, {"cooc": 1.0}, pool="cooc", fallback=("seg", "trending", "pop"))
    cold = hybrid.recommend_explained("new", (), 0.0, 2, set())
    assert [(r.item, r.source) for r in cold] == [("t1", "trending"), ("t2", "trending")]
    warm = hybrid.recommend_explained("old", ("h",), 0.0, 4, {"t2"})
    assert [(r.item, r.source) for r in warm] == [("c1", "cooc"), ("t1", "trending"), ("p1", "pop")]


def test_every_component_learns_and_forgets() -> None:
    a, b = Fixed([]), Fixed([])
    hybrid = Hybrid({"a": a, "b": b}, {"a": 1.0}, pool="a")
    hybrid.learn_one(Interaction("u", "i", 0.0, weight=3), ())
    assert a.learned == b.learned == [("u", "i", 3)]
    hybrid.forget("u", ())
    assert a.forgotten == b.forgotten == ["u"]


def test_select_serves_a_component_that_beats_the_fused_list_on_paired_probes() -> None:
    good, bad = Fixed(["hit", "g2"]), Fixed(["b1", "b2"])
    hybrid = probing({"good": good, "bad": bad}, {"bad": 1.0}, "bad", halflife=1e9, k=2)
    first = hybrid.recommend("u", ("h",), 0.0, 2, set())
    assert [item for item, _ in first] == ["b1", "b2"]  # nothing probed yet: the fused list
    for n in range(29):  # "good" ranks the item first (gain 1), the fused list misses it
        hybrid.learn_one(Interaction(f"u{n}", "hit", 1.0), ("h",))
    assert hybrid.paired[(FUSED, "good")] == pytest.approx((29, -29, 29))
    assert hybrid.leader() == FUSED  # 29 probes are too few for any verdict
    hybrid.learn_one(Interaction("u29", "hit", 1.0), ("h",))
    assert hybrid.t_stat("good", FUSED) > 2 and hybrid.t_stat(FUSED, "good") < -2
    assert hybrid.leader() == "good"  # it beat the fused list and the pool's order
    second = hybrid.recommend_explained("u", ("h",), 0.0, 2, {"hit"})
    assert [(r.item, r.source) for r in second] == [("g2", "good")]
    # a repeat of an item the user had is no test, nor is an interaction without history
    before = dict(hybrid.paired)
    hybrid.learn_one(Interaction("u", "h", 2.0), ("h",))
    hybrid.learn_one(Interaction("v", "hit", 2.0), ())
    assert hybrid.paired == before and hybrid.testable == 30 and hybrid.probes == 30


def test_select_serves_popularity_until_a_personal_list_beats_it() -> None:
    components = {"cooc": Fixed(["c1", "c2"]), "pop": Fixed(["p1", "p2"])}
    hybrid = probing(components, {"cooc": 1.0}, "cooc", fallback=("pop",), halflife=1e9, k=2)
    young = hybrid.recommend_explained("u", ("h",), 0.0, 2, set())
    assert [(r.item, r.source) for r in young] == [("p1", "pop"), ("p2", "pop")]
    for n in range(30):  # popular items are what users take next: popularity stays
        hybrid.learn_one(Interaction(f"u{n}", "p1", 0.0), ("h",))
    assert hybrid.leader() == "pop" and hybrid.t_stat("pop", FUSED) > 2
    for n in range(100):  # then co-occurrence's items, until its lead is significant
        hybrid.learn_one(Interaction(f"v{n}", "c1", 0.0), ("h",))
        if hybrid.leader() != "pop":
            break
    assert n == 47  # 48 wins against 30 losses: t = 2.09 on 78 probes (47 wins: 1.99)
    assert hybrid.leader() == FUSED  # the fused list comes before the pool's own order
    served = hybrid.recommend_explained("u", ("h",), 0.0, 3, set())
    assert [(r.item, r.source) for r in served] == [("c1", "cooc"), ("c2", "cooc"), ("p1", "pop")]


def test_popularity_is_no_longer_the_default_once_a_personal_list_has_led() -> None:
    components = {"cooc": Fixed(["c1", "c2"]), "pop": Fixed(["p1", "p2"])}
    hybrid = probing(components, {"cooc": 1.0}, "cooc", fallback=("pop",), halflife=1e9, k=2)
    for n in range(30):  # popularity leads...
        hybrid.learn_one(Interaction(f"u{n}", "p1", 0.0), ("h",))
    for n in range(48):  # ... until co-occurrence's items make the fused list beat it
        hybrid.learn_one(Interaction(f"v{n}", "c1", 0.0), ("h",))
    assert hybrid.leading == FUSED and hybrid.personal
    hybrid.learn_one(Interaction("w0", "p1", 0.0), ("h",))  # noise: the lead is no longer
    assert 0 < hybrid.t_stat(FUSED, "pop") <= hybrid.z  # significant, yet the fused list stays
    assert hybrid.leading == FUSED and hybrid.preference()[-1] == "pop"
    served = hybrid.recommend_explained("u", ("h",), 0.0, 2, set())
    assert [r.item for r in served] == ["c1", "c2"]
    for n in range(1, 100):  # popularity comes back only when it beats the fused list
        hybrid.learn_one(Interaction(f"w{n}", "p1", 0.0), ("h",))
        if hybrid.leading != FUSED:
            break
    assert hybrid.leading == "pop" and hybrid.t_stat("pop", FUSED) > hybrid.z


def test_probes_are_every_nth_testable_interaction_after_the_warm_ones() -> None:
    a = Fixed(["x"])
    hybrid = Hybrid({"a": a}, {"a": 1.0}, pool="a", select=True, probe_every=5, warm_probes=2, k=1)
    for _ in range(10):
        hybrid.learn_one(Interaction("u", "x", 0.0), ("h",))
    # probes at testable interactions 1, 2 (warm), 5 and 10: four, decayed
    decay = hybrid.decay
    expected = 0.0
    for _ in range(4):
        expected = decay * expected + 1.0
    assert hybrid.probes == 4
    assert hybrid.paired[(FUSED, "a")][0] == pytest.approx(expected)


def test_credit_decays_by_half_life_and_survives_pickling() -> None:
    a, b = Fixed(["x"]), Fixed(["y"])
    hybrid = probing({"a": a, "b": b}, {"a": 1.0}, "a", halflife=1.0, warm_probes=0, k=1)
    hybrid.learn_one(Interaction("u1", "x", 0.0), ("h",))  # fused (= a) holds it, b not
    hybrid.learn_one(Interaction("u2", "y", 0.0), ("h",))  # b holds it, fused not
    # fused − b: +1 then −1, the first halved by the decay: (0.5 + 1, 0.5 − 1, 0.5 + 1)
    assert hybrid.paired[(FUSED, "b")] == pytest.approx((1.5, -0.5, 1.5))
    assert hybrid.paired[(FUSED, "a")] == pytest.approx((1.5, 0.0, 0.0))
    clone = pickle.loads(pickle.dumps(hybrid))
    assert clone.paired == hybrid.paired and clone.leader() == hybrid.leader() == FUSED


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown components"):
        Hybrid({"a": Fixed([])}, {"b": 1.0}, pool="a")
    with pytest.raises(ValueError, match="unknown components"):
        Hybrid({"a": Fixed([])}, {"a": 1.0}, pool="a", fallback=("z",))
    with pytest.raises(ValueError, match="unknown components"):
        Hybrid({"a": Fixed([])}, {"a": 1.0}, pool="q")
    with pytest.raises(ValueError, match="depth"):
        Hybrid({"a": Fixed([])}, {"a": 1.0}, pool="a", depth=0)


def test_the_fallback_chain_keeps_its_order_until_a_later_list_beats_an_earlier() -> None:
    components = {"cooc": Fixed([]), "pop": Fixed(["p"]), "trending": Fixed(["t"])}
    chain = ("pop", "trending")
    hybrid = probing(components, {"cooc": 1.0}, "cooc", fallback=chain, halflife=1e9, k=1)
    cold = hybrid.recommend_explained("new", (), 0.0, 2, set())
    assert [(r.item, r.source) for r in cold] == [("p", "pop"), ("t", "trending")]
    for n in range(29):  # trending's top 1 holds the item, no other list's does
        hybrid.learn_one(Interaction(f"u{n}", "t", 0.0), ("h",))
    assert hybrid.leader() == "pop"  # too few probes to decide anything
    hybrid.learn_one(Interaction("u29", "t", 0.0), ("h",))
    assert hybrid.t_stat("trending", "pop") > hybrid.z and hybrid.leader() == "trending"
    cold = hybrid.recommend_explained("new", (), 0.0, 2, set())
    assert [(r.item, r.source) for r in cold] == [("t", "trending"), ("p", "pop")]
    short = hybrid._fill("new", (), 0.0, 2, set(), [])  # a short list still fills in order
    assert [(r.item, r.source) for r in short] == [("p", "pop"), ("t", "trending")]


def test_the_pools_own_order_is_served_when_it_ranks_the_item_better_on_probes() -> None:
    pool = Fixed(["x", "y"])  # the pool's order: x, y
    reranker = Fixed({"y": 2.0, "x": 1.0})  # re-ranks y first, with enough weight to win
    hybrid = probing({"p": pool, "r": reranker}, {"p": 1.0, "r": 3.0}, "p", halflife=1e9, k=2)
    assert [r.item for r in hybrid.recommend_explained("u", ("h",), 0.0, 2, set())] == ["y", "x"]
    for n in range(40):  # the item is x every time: rank 1 in the pool, rank 2 fused
        hybrid.learn_one(Interaction(f"u{n}", "x", 0.0), ("h",))
    probes, total, _ = hybrid.paired[(FUSED, "p")]
    assert probes == pytest.approx(40) and total == pytest.approx(40 * (1 / math.log2(3) - 1))
    assert hybrid.leader() == "p"  # it beats the fused list, and nothing beats it
    served = hybrid.recommend_explained("u", ("h",), 0.0, 2, set())
    assert [(r.item, r.source) for r in served] == [("x", "p"), ("y", "p")]


def test_no_rerank_verdict_before_enough_probes_or_without_a_difference() -> None:
    pool = Fixed(["x", "y"])
    hybrid = probing({"p": pool}, {"p": 1.0}, "p", k=2)
    for n in range(40):  # fused order = pool order: every difference is 0
        hybrid.learn_one(Interaction(f"u{n}", "x", 0.0), ("h",))
    assert hybrid.paired[(FUSED, "p")][1] == 0 and hybrid.leader() == FUSED
    young = probing({"p": pool, "r": Fixed({"y": 2.0, "x": 1.0})}, {"p": 1.0, "r": 3.0}, "p", k=2)
    for n in range(10):  # the pool is better, but 10 probes are too few to say so
        young.learn_one(Interaction(f"u{n}", "x", 0.0), ("h",))
    assert young.leader() == FUSED


class Definitional(Hybrid):
    """A probe as defined: every list built in full (the fused one always), then filled."""

    def _probe(self, event: Interaction, history: Sequence[str], exclude: Collection[str]) -> None:
        self.probes += 1
        k, exclude = self.k, set(exclude).union(history)
        proposed = self._proposed(event.user, history, event.ts, exclude)
        lists = {FUSED: [r.item for r in self._fused(event.user, history, k, proposed)]}
        for name, model in self.components.items():
            own = model.recommend(event.user, history, event.ts, k, exclude)
            lists[name] = [item for item, _ in own]
        fills = [lists[name] for name in self.fallback]
        gains = {}
        for name, items in lists.items():
            filled = list(items)
            for item in (i for fill in fills for i in fill if i not in filled):
                filled.append(item)
            ranked = filled[:k]
            rank = ranked.index(event.item) + 1 if event.item in ranked else 0
            gains[name] = 1.0 / math.log2(rank + 1) if rank else 0.0
        decay = self.decay
        for i, a in enumerate(self.lists):
            for b in self.lists[i + 1 :]:
                d = gains[a] - gains[b]
                n, total, squares = self.paired.get((a, b), (0.0, 0.0, 0.0))
                self.paired[(a, b)] = (decay * n + 1.0, decay * total + d, decay * squares + d * d)
        self._lead()


def test_probes_score_every_list_as_the_definition_does() -> None:
    """The probe skips fusing a pool without the item, filling a full list and building the
    list of a model that can rank the item (FISM): the paired statistics and the leader are
    those of building every list in full, probe by probe."""
    import random

    from tailor.state.recs.base import Ranker
    from tailor.state.recs.cooc_counts import CoOccurrence
    from tailor.state.recs.cooccurrence import CoocRecommender
    from tailor.state.recs.fism import FISM
    from tailor.state.recs.fism_recommender import FISMRecommender
    from tailor.state.recs.trending import MostPopular, TrendingRecommender

    def build(cls: type[Hybrid]) -> Hybrid:
        parts = {
            "cooc": CoocRecommender(CoOccurrence(window=5)),
            "other": Fixed({f"i{n}": float(n % 7) for n in range(30)}),
            "fism": FISMRecommender(FISM(n_factors=4, negatives=2, bias_learning_rate=0.01)),
            "pop": MostPopular(),
            "trending": TrendingRecommender(3600.0),
        }
        assert isinstance(parts["fism"], Ranker)  # the fast hybrid asks it for ranks only
        weights = {"cooc": 1.0, "other": 0.5, "fism": 0.5}
        return cls(
            parts,
            weights,
            pool="cooc",
            depth=6,
            k=4,
            fallback=("pop", "trending"),
            select=True,
            warm_probes=10**6,
        )

    rng = random.Random(3)
    fast, slow = build(Hybrid), build(Definitional)
    histories: dict[str, list[str]] = {}
    for t in range(1500):
        user = f"u{rng.randrange(200)}"
        item = f"i{min(int(rng.paretovariate(1.5)), 15)}"
        history = tuple(histories.setdefault(user, []))
        for model in (fast, slow):
            model.learn_one(Interaction(user, item, float(t)), history, set(history))
        if item not in history:
            histories[user] = [*history, item][-8:]
    assert fast.probes == slow.probes > 250
    assert fast.paired.keys() == slow.paired.keys()
    for pair, stats in slow.paired.items():
        assert fast.paired[pair] == pytest.approx(stats, rel=1e-12, abs=1e-12)
    assert fast.leading == slow.leading
