"""Every component of the models and user state survives `to_snapshot` → envelope →
`from_snapshot`: the copy answers as the original did, and after further learning on both
they still answer alike and hold equal state (river's `check_pickling`, for our format)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pytest

from tailor.state import snapshots
from tailor.state.profile.event import Event
from tailor.state.profile.user import FEATURE_NAMES, UserState
from tailor.state.recs.base import Interaction, Recommender
from tailor.state.recs.cooc_counts import CoOccurrence
from tailor.state.recs.group_trending import SegmentTrending
from tailor.state.recs.isgd import ISGD
from tailor.state.recs.live_quality import LiveQuality
from tailor.state.recs.live_recs import LiveRecs
from tailor.state.recs.prequential import Prequential
from tailor.state.recs.settings import MODELS, build, restore
from tailor.state.recs.trending import Trending
from tailor.state.recs.variants import Variants
from tailor.state.segments.event_order import END, EventTimeOrder, Stamp
from tailor.state.segments.quality import CentreDrift, StreamingSilhouette
from tailor.state.segments.rfm_tiers import RFMTiers
from tailor.state.segments.segmentation import Segmentation
from tailor.state.segments.segmenter import Segmenter
from tests.settings_support import rec_settings

T = TypeVar("T")

ITEMS = [f"i{n}" for n in range(40)]
CATEGORIES = ("Drama", "Comedy", "Action", "Horror")


def through_envelope(data: Any, kind: str = "test") -> Any:
    """What a resume reads: the data encoded in the envelope, and decoded."""
    return snapshots.decode(snapshots.encode(kind, data), kind)


def same(a: Any, b: Any) -> bool:
    """Equal plain data, numpy arrays by value (dtype and shape included)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
        )
    if isinstance(a, dict) and isinstance(b, dict):
        a, b = _seen_as_sets(a), _seen_as_sets(b)
        return list(a) == list(b) and all(same(a[key], b[key]) for key in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return bool(a == b) or (a != a and b != b)  # NaN equals NaN here


def _seen_as_sets(data: dict[str, Any]) -> dict[str, Any]:
    """ISGD's touched rows per user are sets, stored in set order: compared as sets."""
    if "seen_rows" not in data:
        return data
    bounds = np.concatenate([[0], np.cumsum(data["seen_sizes"])]).tolist()
    rows = data["seen_rows"].tolist()
    sets = [sorted(rows[start:end]) for start, end in itertools.pairwise(bounds)]
    return data | {"seen_rows": sets}


def interactions(n: int, seed: int, users: int = 12) -> list[Interaction]:
    """Users with a taste (a run of items), a few categories, event time increasing."""
    rng = random.Random(seed)
    out = []
    for step in range(n):
        user = rng.randrange(users)
        item = ITEMS[(user * 3 + rng.randrange(8)) % len(ITEMS)]
        weight = rng.choice((1, 1, 1, 3))
        category = (CATEGORIES[int(item[1:]) % len(CATEGORIES)],)
        out.append(Interaction(f"u{user}", item, 1000.0 + 60.0 * step + seed, weight, category))
    return out


def learn(model: Recommender, events: list[Interaction], histories: dict[str, list[str]]) -> None:
    for event in events:
        history = histories.setdefault(event.user, [])
        model.learn_one(event, tuple(history), set(history))
        if event.item in history:
            history.remove(event.item)
        history.append(event.item)
        del history[:-10]


def answers(model: Recommender, histories: dict[str, list[str]]) -> list[Any]:
    """Lists, scores and reasons for every user (and a new one), as served."""
    out: list[Any] = []
    for user, history in [*sorted(histories.items()), ("new", [])]:
        recs = model.recommend(user, tuple(history), 1e9, 5, set(history))
        items = [item for item, _ in recs]
        out += [recs, model.score(user, tuple(history), ITEMS[:8])]
        out.append(model.why(user, tuple(history), items))
    return out


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_answers_alike_after_a_round_trip_and_further_learning(name: str) -> None:
    model = build(name, rec_settings(k=5, hybrid_warm_probes=50, hybrid_probe_every=3))
    histories: dict[str, list[str]] = {}
    learn(model, interactions(400, seed=1), histories)
    for part in _segment_parts(model):
        for n in range(12):
            part.assign(f"u{n}", f"cluster:{n % 3}")
    copy = restore(through_envelope(model.to_snapshot()))
    assert type(copy) is type(model)
    assert answers(copy, histories) == answers(model, histories)
    copy_histories = {user: list(h) for user, h in histories.items()}
    more = interactions(300, seed=2, users=16)  # new users and further learning
    learn(model, more, histories)
    learn(copy, more, copy_histories)
    assert answers(copy, copy_histories) == answers(model, histories)
    assert same(copy.to_snapshot(), model.to_snapshot())


def _segment_parts(model: Recommender) -> list[SegmentTrending]:
    parts = getattr(model, "components", {"": model}).values()
    return [part for part in parts if isinstance(part, SegmentTrending)]


def round_trip(obj: Any, rebuild: Callable[[Any], T]) -> T:
    return rebuild(through_envelope(obj.to_snapshot()))


def test_cooccurrence_trending_isgd_and_group_models_alone() -> None:
    events = interactions(300, seed=3)
    cooc, trending, isgd = CoOccurrence(max_neighbors=3, window=4), Trending(600.0, 5), ISGD(4)
    isgd.negatives = 2
    for n, e in enumerate(events):
        cooc.add([x.item for x in events[max(0, n - 4) : n]], e.item, e.weight)
        trending.add(e.item, e.ts, e.weight)
        isgd.add(e.user, e.item)
    copies = (
        round_trip(cooc, CoOccurrence.from_snapshot),
        round_trip(trending, Trending.from_snapshot),
        round_trip(isgd, ISGD.from_snapshot),
    )
    more = interactions(200, seed=4, users=20)
    for model in (cooc, trending, isgd, *copies):
        for n, e in enumerate(more):
            if isinstance(model, CoOccurrence):
                model.add([x.item for x in more[max(0, n - 4) : n]], e.item, e.weight)
            elif isinstance(model, Trending):
                model.add(e.item, e.ts, e.weight)
            else:
                model.add(e.user, e.item)
    assert copies[0].recommend(["i1", "i2"], 5) == cooc.recommend(["i1", "i2"], 5)
    assert copies[1].top(5) == trending.top(5) and copies[1].top(50) == trending.top(50)
    assert copies[2].recommend("u19", 5, ()) == isgd.recommend("u19", 5, ())
    assert copies[2].recency_queue() == isgd.recency_queue()
    for original, copy in zip((cooc, trending, isgd), copies, strict=True):
        assert same(copy.to_snapshot(), original.to_snapshot())


def test_live_recs_with_variants_and_rules() -> None:
    recs = LiveRecs.build(
        k=4,
        shares={"a": 0.5, "b": 0.5},
        models={"a": "hybrid", "b": "cooc"},
        settings=rec_settings(k=4),
        max_per_category=2,
    )
    recs.block("i3")
    histories: dict[str, list[str]] = {}

    def serve_and_learn(target: LiveRecs, events: list[Interaction]) -> list[Any]:
        served = []
        for e in events:
            history = histories.setdefault(e.user, [])
            target.learn(e, tuple(history))
            history.append(e.item)
            served.append(target.recommend(e.user, tuple(history[-10:]), frozenset(), e.ts))
        return served

    serve_and_learn(recs, interactions(300, seed=5))
    copy = round_trip(recs, LiveRecs.from_snapshot)
    saved = {user: list(h) for user, h in histories.items()}
    more = interactions(200, seed=6, users=15)
    served = serve_and_learn(recs, more)
    histories.clear()
    histories.update(saved)
    assert serve_and_learn(copy, more) == served
    assert same(copy.to_snapshot(), recs.to_snapshot())


def test_live_quality_windows() -> None:
    quality = LiveQuality.build({"a": "hybrid", "b": "cooc"}, window=20, k=3)
    rng = random.Random(9)
    quality.add((n, rng.choice("ab"), rng.randrange(4)) for n in range(50))
    copy = round_trip(quality, LiveQuality.from_snapshot)
    assert copy.report() == quality.report()
    more = [(n, rng.choice("ab"), rng.randrange(4)) for n in range(50, 90)]
    quality.add(more)
    copy.add(more)
    assert copy.report() == quality.report()
    assert same(copy.to_snapshot(), quality.to_snapshot())


def test_prequential_and_variants() -> None:
    quality = Prequential(window=30, k=3)
    rng = random.Random(7)
    for _ in range(50):
        quality.update(rng.choice(ITEMS[:6]), rng.sample(ITEMS[:6], 3))
    copy = round_trip(quality, Prequential.from_snapshot)
    for _ in range(20):
        item, shown = rng.choice(ITEMS[:6]), rng.sample(ITEMS[:6], 3)
        assert copy.update(item, shown) == quality.update(item, shown)
    assert copy.window_means() == quality.window_means() and copy.totals() == quality.totals()
    assert copy.coverage(40) == quality.coverage(40)
    split = Variants({"a": 0.3, "b": 0.7}, salt="x")
    assert round_trip(split, Variants.from_snapshot) == split


def profiles(n: int, seed: int) -> list[tuple[float, str, dict[str, float], str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        features = {name: rng.expovariate(1.0) * (1 + i % 4) for name in FEATURE_NAMES}
        features["purchases_total"] = float(i % 3)
        out.append((float(i) + 1e6 * seed, f"u{i % 90}", features, ("mobile", "desktop")[i % 2]))
    return out


@pytest.mark.parametrize("clusterer", ["KMeans", "DBSTREAM", "CluStream", "STREAMKMeans"])
def test_segmentation_names_tiers_quality_and_order(clusterer: str) -> None:
    """Segmenter (River clusterer and scaler), registry, names, RFM tiers, silhouette,
    drift and the event-time order, with points still held for their place."""
    segmenter = Segmenter(clusterer, features=FEATURE_NAMES, seed=1, warmup=40)
    seg = Segmentation(segmenter, learn_every=1, publish_every=50, drift_every=20)
    seg.rfm = RFMTiers(sample_size=30, min_customers=5, seed=2)
    seg.silhouette = StreamingSilhouette(window=40, every=10, sample_rate=0.7, seed=3)
    seg.drift = CentreDrift(threshold=0.5)
    seg.order = EventTimeOrder(("p0", "p1"))
    news: list[Any] = []
    for n, (ts, user, features, device) in enumerate(profiles(200, seed=0)):
        stamp = Stamp(f"p{n % 2}", n // 2, 1)
        news += seg.observe(user, 1 + n // 90, ts, "purchase", features, device, stamp, True)
    assert seg.order.held and news and seg.segmenter.registry.ready
    copy = round_trip(seg, Segmentation.from_snapshot)
    point = profiles(1, seed=5)[0]
    assert copy.assign(point[2], point[3]) == seg.assign(point[2], point[3])
    assert copy.model_record(1.0) == seg.model_record(1.0)
    later: list[list[Any]] = [[], []]
    for target, out in zip((seg, copy), later, strict=True):
        for n, (ts, user, features, device) in enumerate(profiles(150, seed=1)):
            stamp = Stamp(f"p{n % 2}", 100 + n // 2, 1)
            out += target.observe(user, 10 + n, ts, "purchase", features, device, stamp, True)
        target.forget("u3")
        out += target.progress(Stamp("p0", 175, 1, END), None)
        out += target.flush()
    assert later[0] == later[1] and later[0]
    assert copy.model_record(2.0) == seg.model_record(2.0)
    assert same(_without_river(copy.to_snapshot()), _without_river(seg.to_snapshot()))


def _without_river(data: dict[str, Any]) -> dict[str, Any]:
    """River's pickle may differ in bytes for equal state; its outputs are compared instead."""
    return data | {"segmenter": data["segmenter"] | {"river": b""}}


def test_user_state_takes_its_settings_from_the_caller() -> None:
    settings: dict[str, Any] = {"windows_s": (60.0, 3600.0), "history_len": 3}
    state = UserState(**settings)
    rng = random.Random(8)

    def events(n: int, offset: int) -> list[Event]:
        return [
            Event(
                f"e{offset + i}",
                "u",
                rng.choice(("page_view", "product_view", "purchase")),
                1000.0 + 400.0 * (offset + i) - rng.randrange(300),
                item_id=rng.choice(ITEMS[:6]),
                category=(rng.choice(CATEGORIES),),
                price=9.5,
                device=rng.choice(("mobile", None)),
            )
            for i in range(n)
        ]

    for event in events(40, 0):
        state.update(event)
    data = through_envelope(state.to_snapshot(), "user")
    assert "windows_s" not in data and "history_len" not in data
    copy = UserState.from_snapshot(data, **settings)
    for event in events(30, 40):
        assert copy.is_duplicate(event) == state.is_duplicate(event)
        state.update(event)
        copy.update(event)
        assert copy.features() == state.features()
    assert (copy.history, copy.purchased, copy.top_interests()) == (
        state.history,
        state.purchased,
        state.top_interests(),
    )
    assert same(copy.to_snapshot(), state.to_snapshot())
