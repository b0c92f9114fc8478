from __future__ import annotations

import math
import pickle
import random
from collections import Counter, defaultdict

import pytest
from river import metrics

from tailor.state.profile.user import FEATURE_NAMES
from tailor.state.segments.segmenter import DEFAULT_FEATURES, Segmenter

Point = tuple[int, dict[str, float], str]
DEVICES = ("desktop", "mobile", "tablet")


def blobs(n: int, seed: int) -> list[Point]:
    """Three behaviours in log-feature space: casual desktop, big-spending mobile, tablets."""
    rng = random.Random(seed)
    base = dict.fromkeys(DEFAULT_FEATURES, 0.5)
    means = [
        base,
        {**base, "spend_30d": 6.0, "purchases_30d": 2.0, "spend_total": 7.0},
        {**base, "views_24h": 4.0, "views_7d": 5.0, "product_views": 4.0},
    ]
    points = []
    for _ in range(n):
        label = rng.randrange(3)
        feats = {f: math.expm1(max(0.0, rng.gauss(m, 0.3))) for f, m in means[label].items()}
        device = DEVICES[label] if rng.random() < 0.9 else rng.choice(DEVICES)
        points.append((label, feats, device))
    return points


def purity(pairs: list[tuple[int, int]]) -> float:
    by_cluster: dict[int, Counter[int]] = defaultdict(Counter)
    for label, cluster in pairs:
        by_cluster[cluster][label] += 1
    return sum(c.most_common(1)[0][1] for c in by_cluster.values()) / len(pairs)


def test_default_features_match_the_user_state_features() -> None:
    assert DEFAULT_FEATURES == FEATURE_NAMES


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_kmeans_separates_three_blobs(seed: int) -> None:
    seg = Segmenter(seed=seed)
    data = blobs(2500, seed)
    preds = [seg.learn_predict(f, d) for _, f, d in data]
    tail = [(label, p) for (label, _, _), p in zip(data[-1000:], preds[-1000:], strict=True)]
    assert purity(tail) >= 0.9
    # re-predicting (no learning) agrees with the blobs too; each blob mostly in its own clusters
    again = [(label, seg.predict(f, d)) for label, f, d in blobs(500, seed + 100)]
    assert purity(again) >= 0.9
    assert len({p for _, p in again}) >= 3


def test_streamkmeans_also_separates_blobs() -> None:
    seg = Segmenter("STREAMKMeans", seed=0)
    data = blobs(2500, 0)
    preds = [seg.learn_predict(f, d) for _, f, d in data]
    tail = list(zip([label for label, _, _ in data[-1000:]], preds[-1000:], strict=True))
    ari = metrics.AdjustedRand()
    for label, p in tail:
        ari.update(label, p)
    assert purity(tail) >= 0.9
    assert ari.get() > 0.5  # blobs split over up to 6 clusters, so ARI < 1 but far from 0


def test_pickle_round_trip_gives_identical_predictions() -> None:
    seg = Segmenter(seed=5)
    data = blobs(600, 5)
    for _, f, d in data[:400]:
        seg.learn_predict(f, d)
    clone = pickle.loads(pickle.dumps(seg))
    rest = data[400:]
    assert [clone.learn_predict(f, d) for _, f, d in rest] == [
        seg.learn_predict(f, d) for _, f, d in rest
    ]
    assert [clone.describe(c) for c in range(6)] == [seg.describe(c) for c in range(6)]


def test_pickle_round_trip_keeps_segments_and_names() -> None:
    seg = Segmenter(seed=5, warmup=100)
    data = blobs(600, 5)
    for _, f, d in data[:400]:
        seg.learn_segment(f, d)
    clone = pickle.loads(pickle.dumps(seg))
    rest = data[400:]
    assert [clone.learn_segment(f, d) for _, f, d in rest] == [
        seg.learn_segment(f, d) for _, f, d in rest
    ]
    assert clone.names == seg.names


def test_same_seed_same_clusters_different_seed_may_differ() -> None:
    data = blobs(300, 9)
    a, b = Segmenter(seed=1), Segmenter(seed=1)
    assert [a.learn_predict(f, d) for _, f, d in data] == [
        b.learn_predict(f, d) for _, f, d in data
    ]


def learned_segmenter(seed: int = 0) -> tuple[Segmenter, list[Point]]:
    seg = Segmenter(seed=seed)
    data = blobs(2500, seed)
    for _, f, d in data:
        seg.learn_segment(f, d)
    return seg, data


def test_segments_are_none_during_warmup_then_cover_the_blobs() -> None:
    seg = Segmenter(seed=0, warmup=50)
    data = blobs(600, 0)
    got = [seg.learn_segment(f, d) for _, f, d in data]
    assert got[:49] == [None] * 49
    assert all(isinstance(g, int) for g in got[49:])
    tail = [(label, g) for (label, _, _), g in zip(data[300:], got[300:], strict=True)]
    assert purity([(label, g) for label, g in tail if g is not None]) >= 0.9
    assert Segmenter(warmup=5).segment({}, None) is None  # nothing learned yet


def test_names_read_the_standout_features_and_device_and_are_unique() -> None:
    seg, data = learned_segmenter()
    spender = next(f for label, f, _ in reversed(data) if label == 1)
    spender_segment = seg.segment(spender, "mobile")
    assert spender_segment is not None
    parts = seg.names[spender_segment].split(" · ")
    assert 1 <= len(parts) <= 5
    assert parts[-1] == "mobile"
    assert {"big spenders", "high lifetime value", "buying now"} & set(parts)
    browser = next(f for label, f, _ in reversed(data) if label == 2)
    browser_segment = seg.segment(browser, "tablet")
    assert browser_segment is not None
    name = seg.names[browser_segment]
    assert {"many views (24h)", "many views (7d)", "many product views"} & set(name.split(" · "))
    assert len(set(seg.names.values())) == len(seg.names)  # unique
    assert set(seg.names) == set(seg.registry.anchors)  # every segment handed out is named
    assert seg.describe(999) == "typical"
    assert seg.centroid(999) == {}


def test_centroid_is_in_feature_units() -> None:
    seg, data = learned_segmenter()
    spender = next(f for label, f, _ in reversed(data) if label == 1)
    spender_segment = seg.segment(spender, "mobile")
    assert spender_segment is not None
    centre = seg.centroid(spender_segment)
    assert set(centre) == {*DEFAULT_FEATURES, *(f"device={d}" for d in (*DEVICES, "other"))}
    # the blob's spend_30d is expm1(6) ≈ 402 in raw units; casual features expm1(0.5) ≈ 0.65
    assert 150 < centre["spend_30d"] < 1000
    assert 0.0 <= centre["session_count"] < 3
    assert centre["device=mobile"] > 0.5


def test_transforms_come_from_config_and_bad_ones_are_refused() -> None:
    seg = Segmenter(features=("a", "b"), transforms={"a": "standard"})
    assert seg.transforms == {"a": "standard", "b": "log"}
    with pytest.raises(ValueError, match="unknown transform"):
        Segmenter(features=("a",), transforms={"a": "sqrt"})
    with pytest.raises(ValueError, match="does not use"):
        Segmenter(features=("a",), transforms={"zzz": "log"})


def test_fixed_feature_set_and_odd_values() -> None:
    seg = Segmenter(features=("a", "b"), devices=("mobile",), seed=0)
    # missing, None, NaN, negative and unknown devices never change the dimensions
    for feats, device in [
        ({}, None),
        ({"a": float("nan")}, "fridge"),
        ({"a": -5.0, "b": 3.0}, "mobile"),
    ]:
        assert isinstance(seg.learn_predict(feats, device), int)
    seg = Segmenter(features=("a", "b"), devices=("mobile",), seed=0, warmup=3)
    for feats, device in [({}, None), ({"a": float("nan")}, "fridge"), ({"a": -5.0}, "mobile")]:
        seg.learn_segment(feats, device)
    segment = seg.segment({"a": 1.0}, None)
    assert segment is not None
    assert set(seg.centroid(segment)) == {"a", "b", "device=mobile", "device=other"}
    assert Segmenter().predict({}, None) == 0  # nothing learned yet


@pytest.mark.parametrize("name", ["DBSTREAM", "CluStream", "DenStream", "STREAMKMeans"])
def test_every_supported_clusterer_builds_learns_and_pickles(name: str) -> None:
    seg = Segmenter(name, seed=0, warmup=100)
    data = blobs(150, 2)
    preds = [seg.learn_predict(f, d) for _, f, d in data]
    assert all(isinstance(p, int) for p in preds)
    clone = pickle.loads(pickle.dumps(seg))
    assert clone.predict(data[0][1], data[0][2]) == seg.predict(data[0][1], data[0][2])
    segments = [seg.learn_segment(f, d) for _, f, d in blobs(300, 3)]
    assert all(isinstance(s, int) for s in segments[-100:])
    assert set(seg.names) == set(seg.registry.anchors)


def test_unknown_clusterer_and_bad_params_are_value_errors_naming_them() -> None:
    with pytest.raises(ValueError, match=r"unknown clusterer 'KMeanz'.*KMeans"):
        Segmenter("KMeanz")
    with pytest.raises(ValueError, match=r"bad params for clusterer KMeans.*n_clustrs"):
        Segmenter("KMeans", {"n_clustrs": 3})
    with pytest.raises(ValueError, match=r"clusterer KMeans with params .*n_clusters.*0"):
        Segmenter("KMeans", {"n_clusters": 0})
    with pytest.raises(ValueError, match="at least one feature"):
        Segmenter(features=())


def test_params_merge_over_the_tuned_defaults() -> None:
    seg = Segmenter("KMeans", {"n_clusters": 3})
    data = blobs(200, 4)
    assert {seg.learn_predict(f, d) for _, f, d in data} <= {0, 1, 2}
    assert seg._model.sigma == 0.5 and seg._model.seed == 42
