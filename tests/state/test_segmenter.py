from __future__ import annotations

import math
import pickle
import random
from collections import Counter, defaultdict

import pytest
from river import metrics

from state.segmenter import DEFAULT_FEATURES, Segmenter
from state.user import FEATURE_NAMES

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


def test_same_seed_same_clusters_different_seed_may_differ() -> None:
    data = blobs(300, 9)
    a, b = Segmenter(seed=1), Segmenter(seed=1)
    assert [a.learn_predict(f, d) for _, f, d in data] == [
        b.learn_predict(f, d) for _, f, d in data
    ]


def test_describe_names_the_standout_features_and_device() -> None:
    seg = Segmenter(seed=0)
    data = blobs(2500, 0)
    for _, f, d in data:
        seg.learn_predict(f, d)
    spender = next(f for label, f, _ in reversed(data) if label == 1)
    name = seg.describe(seg.predict(spender, "mobile"))
    parts = name.split(" · ")
    assert 1 <= len(parts) <= 3
    assert parts[-1] == "mobile"
    assert {"high spend_30d", "high spend_total", "high purchases_30d"} & set(parts)
    browser = next(f for label, f, _ in reversed(data) if label == 2)
    name = seg.describe(seg.predict(browser, "tablet"))
    assert {"high views_24h", "high views_7d", "high product_views"} & set(name.split(" · "))
    assert seg.describe(999) == "typical"
    assert seg.centroid(999) == {}


def test_centroid_is_in_feature_units() -> None:
    seg = Segmenter(seed=0)
    data = blobs(2500, 0)
    for _, f, d in data:
        seg.learn_predict(f, d)
    spender = next(f for label, f, _ in reversed(data) if label == 1)
    centre = seg.centroid(seg.predict(spender, "mobile"))
    assert set(centre) == {*DEFAULT_FEATURES, *(f"device={d}" for d in (*DEVICES, "other"))}
    # the blob's spend_30d is expm1(6) ≈ 402 in raw units; casual features expm1(0.5) ≈ 0.65
    assert 150 < centre["spend_30d"] < 1000
    assert 0.0 <= centre["session_count"] < 3  # halflife 0.5: a centre tracks recent points
    assert centre["device=mobile"] > 0.5


def test_fixed_feature_set_and_odd_values() -> None:
    seg = Segmenter(features=("a", "b"), devices=("mobile",), seed=0)
    # missing, None, NaN, negative and unknown devices never change the dimensions
    for feats, device in [
        ({}, None),
        ({"a": float("nan")}, "fridge"),
        ({"a": -5.0, "b": 3.0}, "mobile"),
    ]:
        assert isinstance(seg.learn_predict(feats, device), int)
    centre = seg.centroid(seg.predict({"a": 1.0}, None))
    assert set(centre) == {"a", "b", "device=mobile", "device=other"}
    assert Segmenter().predict({}, None) == 0  # nothing learned yet


@pytest.mark.parametrize("name", ["DBSTREAM", "CluStream", "DenStream", "STREAMKMeans"])
def test_every_supported_clusterer_builds_learns_and_pickles(name: str) -> None:
    seg = Segmenter(name, seed=0)
    data = blobs(150, 2)
    preds = [seg.learn_predict(f, d) for _, f, d in data]
    assert all(isinstance(p, int) for p in preds)
    clone = pickle.loads(pickle.dumps(seg))
    assert clone.predict(data[0][1], data[0][2]) == seg.predict(data[0][1], data[0][2])
    assert isinstance(seg.describe(preds[-1]), str)


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
