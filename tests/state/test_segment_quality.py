from __future__ import annotations

import pickle
import random
from collections import defaultdict

import numpy as np
import pytest
from river import preprocessing
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_samples, silhouette_score

from tailor.state.segments.clusterers import build_clusterer
from tailor.state.segments.quality import CentreDrift, DriftReading, StreamingSilhouette, silhouette

Centres = dict[int, list[float]]


def feed(sil: StreamingSilhouette, X: np.ndarray, labels: np.ndarray) -> None:
    for x, label in zip(X, labels, strict=True):
        sil.update(x, int(label))


def blob_data(seed: int, n: int = 700, d: int = 8, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_blobs(n_samples=n, n_features=d, centers=k, cluster_std=1.5, random_state=seed)
    return X, y


# --- StreamingSilhouette ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_silhouette_equals_sklearn_on_the_window(seed: int) -> None:
    X, y = blob_data(seed)
    sil = StreamingSilhouette(window=300, every=100)
    feed(sil, X, y)  # 700 points: the last recomputation (at 700) saw points 400..699
    assert sil.n_points == 300
    assert sil.value == pytest.approx(silhouette_score(X[-300:], y[-300:]), abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_silhouette_equals_sklearn_with_random_labels_and_shifted_data(seed: int) -> None:
    """Far from the origin and badly scaled: the Gram trick must not lose digits."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(250, 5)) * [0.01, 1.0, 100.0, 3.0, 0.5] + 1e4
    y = rng.integers(0, 5, 250)
    assert silhouette(X, y) == pytest.approx(silhouette_score(X, y), abs=1e-9)


def test_singleton_cluster_scores_zero_as_in_sklearn() -> None:
    X, y = blob_data(7, n=120, k=3)
    y = y.copy()
    y[17] = 99  # a cluster of one point
    sil = StreamingSilhouette(window=120, every=120)
    feed(sil, X, y)
    assert silhouette_samples(X, y)[17] == 0.0  # the case under test: a = 0/0
    assert sil.value == pytest.approx(silhouette_score(X, y), abs=1e-9)


def test_duplicate_points_in_different_clusters_match_sklearn() -> None:
    """a = b = 0 gives 0/0; scikit-learn counts it as 0."""
    X = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    y = np.array([0, 0, 1, 1, 2, 2])
    assert silhouette(X, y) == pytest.approx(silhouette_score(X, y), abs=1e-12)


def test_separated_blobs_score_high_and_random_labels_low() -> None:
    X, y = make_blobs(n_samples=600, n_features=6, centers=5, cluster_std=0.5, random_state=3)
    good, bad = StreamingSilhouette(), StreamingSilhouette()
    feed(good, X, y)
    feed(bad, X, np.random.default_rng(3).integers(0, 5, 600))
    assert good.value is not None and good.value > 0.5
    assert bad.value is not None and bad.value < 0.2


def test_value_is_none_until_two_clusters_and_a_recomputation() -> None:
    sil = StreamingSilhouette(window=50, every=10)
    for i in range(9):
        sil.update([float(i), 0.0], 0 if i < 5 else 1)
    assert sil.value is None  # two clusters, but not recomputed yet
    sil.update([9.0, 0.0], 1)
    assert sil.value is not None
    one = StreamingSilhouette(window=50, every=10)
    for i in range(30):
        one.update([float(i)], 3)
    assert one.value is None


def test_value_is_stale_between_recomputations_and_refresh_forces_one() -> None:
    X, y = blob_data(4, n=200)
    sil = StreamingSilhouette(window=100, every=100)
    feed(sil, X, y)
    before = sil.value
    feed(sil, X[:40], np.full(40, 9))  # a new cluster of points that sit inside the others
    assert sil.value == before
    assert sil.refresh() == pytest.approx(
        silhouette_score(np.vstack([X[140:], X[:40]]), np.r_[y[140:], np.full(40, 9)]), abs=1e-9
    )


def test_mapping_points_read_in_a_fixed_order_whatever_the_dict_order() -> None:
    X, y = blob_data(5, n=150, d=3)
    names = ("a", "b", "c")
    from_rows, from_dicts = StreamingSilhouette(every=150), StreamingSilhouette(every=150)
    rng = random.Random(5)
    for x, label in zip(X, y, strict=True):
        from_rows.update(list(x), int(label))
        order = list(zip(names, x, strict=True))
        rng.shuffle(order)
        from_dicts.update(dict(order), int(label))
    assert from_dicts.keys == names
    assert from_dicts.value == pytest.approx(from_rows.value, abs=1e-12)
    with pytest.raises(KeyError):
        from_dicts.update({"a": 1.0, "b": 2.0}, 0)


def test_non_finite_points_are_left_out() -> None:
    X, y = blob_data(6, n=100)
    X = X.copy()
    X[10, 2] = np.nan
    X[20, 0] = np.inf
    sil = StreamingSilhouette(window=100, every=100)
    feed(sil, X, y)
    keep = np.isfinite(X).all(axis=1)
    assert sil.value == pytest.approx(silhouette_score(X[keep], y[keep]), abs=1e-9)


def test_sampling_is_seeded_and_the_window_bounded() -> None:
    X, y = blob_data(8, n=3000)

    def run(seed: int) -> StreamingSilhouette:
        sil = StreamingSilhouette(window=200, every=50, sample_rate=0.25, seed=seed)
        feed(sil, X, y)
        return sil

    a, b, c = run(1), run(1), run(2)
    assert a.n_points == 200
    assert a.value == b.value
    assert a.value != c.value
    assert a.value is not None and a.value > 0.3


def test_silhouette_pickle_round_trip_continues_identically() -> None:
    X, y = blob_data(9, n=900)
    sil = StreamingSilhouette(window=200, every=100, sample_rate=0.5, seed=3)
    feed(sil, X[:450], y[:450])
    copy = pickle.loads(pickle.dumps(sil))
    feed(sil, X[450:], y[450:])
    feed(copy, X[450:], y[450:])
    assert copy.value == sil.value and copy.n_points == sil.n_points


def test_silhouette_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        StreamingSilhouette(window=1)
    with pytest.raises(ValueError):
        StreamingSilhouette(sample_rate=0.0)


# --- CentreDrift ------------------------------------------------------------------------------


def jittered(centres: Centres, rng: np.random.Generator, std: float) -> Centres:
    return {cid: list(np.asarray(c) + rng.normal(0.0, std, len(c))) for cid, c in centres.items()}


def base_centres(seed: int, k: int = 5, d: int = 10) -> Centres:
    rng = np.random.default_rng(seed)
    return {cid: list(rng.normal(0.0, 2.0, d)) for cid in range(k)}


def raw_drift(threshold: float = 1.0) -> CentreDrift:
    """No smoothing, no settling: every check compares the raw centres."""
    return CentreDrift(threshold=threshold, smoothing=1.0, settle=0)


def test_drift_distance_by_hand() -> None:
    drift = raw_drift(threshold=10.0)
    drift.check({0: [0.0, 0.0], 1: [3.0, 0.0], 2: [0.0, 8.0]})
    reading = drift.check({7: [0.0, 1.0], 8: [3.0, 4.0]})
    # nearest current centre: (0,0) -> (0,1): 1; (3,0) -> (0,1): sqrt(10) < 4; (0,8) -> (3,4): 5
    assert reading.distance == pytest.approx((1.0 + np.sqrt(10.0) + 5.0) / 3.0, abs=1e-12)
    assert reading == DriftReading(reading.distance, False, 0, 0)


def test_smoothing_by_hand() -> None:
    """One track, smoothing 1/2: it moves half way to each new raw centre."""
    drift = CentreDrift(threshold=10.0, smoothing=0.5, settle=0)
    drift.check({0: [0.0]})
    assert drift.check({0: [4.0]}).distance == pytest.approx(2.0)
    assert drift.check({0: [4.0]}).distance == pytest.approx(3.0)


def test_stationary_jitter_never_drifts() -> None:
    centres = base_centres(0)
    rng = np.random.default_rng(0)
    drift = CentreDrift()
    readings = [drift.check(jittered(centres, rng, 0.2)) for _ in range(300)]
    assert drift.events == 0
    assert not any(r.drifted for r in readings)
    assert max(r.distance for r in readings[20:]) < 0.5


def test_raw_centres_that_jitter_a_lot_drift_all_the_time_and_smoothing_fixes_it() -> None:
    """Jitter of 0.3 std per coordinate in 10 dimensions: about 1 std per centre per check."""
    centres = base_centres(5)
    rng = np.random.default_rng(5)
    raw, smoothed = raw_drift(), CentreDrift()
    for _ in range(200):
        seen = jittered(centres, rng, 0.3)
        raw.check(seen)
        smoothed.check(seen)
    assert raw.events > 50
    assert smoothed.events == 0


def test_a_jump_of_three_std_drifts_once_then_is_quiet() -> None:
    centres = base_centres(1)
    rng = np.random.default_rng(1)
    drift = CentreDrift(threshold=1.0)
    for _ in range(30):
        drift.check(jittered(centres, rng, 0.2))
    moved = {cid: [v + 3.0 / np.sqrt(len(c)) for v in c] for cid, c in centres.items()}  # 3 std
    readings = [drift.check(jittered(moved, rng, 0.2)) for _ in range(60)]
    fired = [t for t, r in enumerate(readings) if r.drifted]
    assert len(fired) == 1 and fired[0] <= 3  # the smoothed centres need a few checks to move
    assert drift.events == 1
    assert max(r.distance for r in readings[30:]) < 0.5
    settled = np.array(sorted(drift.reference))
    assert np.allclose(settled, np.array(sorted(tuple(c) for c in moved.values())), atol=0.3)


def test_raw_jump_reports_what_moved() -> None:
    drift = raw_drift()
    drift.check({0: [0.0, 0.0], 1: [10.0, 0.0]})
    reading = drift.check({0: [0.0, 0.0], 1: [10.0, 3.0]})
    assert reading == DriftReading(1.5, True, 1, 1)
    assert drift.check({0: [0.0, 0.0], 1: [10.0, 3.0]}) == DriftReading(0.0, False, 0, 0)


def test_an_appearing_or_vanishing_cluster_is_a_drift() -> None:
    centres = base_centres(2, k=3)
    drift = raw_drift()
    drift.check(centres)
    grown = drift.check({**centres, 9: [20.0] * 10})
    assert grown == DriftReading(0.0, True, 1, 0)  # the old centres all still have a match
    shrunk = drift.check(centres)
    assert (shrunk.drifted, shrunk.appeared, shrunk.vanished) == (True, 0, 1)
    assert shrunk.distance > 0.0
    assert drift.events == 2


def test_a_lasting_new_cluster_drifts_once_a_flickering_one_never() -> None:
    centres = base_centres(3, k=3)
    far = {**centres, 9: [20.0] * 10}
    flicker = CentreDrift()
    for t in range(100):
        flicker.check(far if t % 2 else centres)
    assert flicker.events == 0
    lasting = CentreDrift()
    readings = [lasting.check(centres if t < 20 else far) for t in range(100)]
    fired = [t for t, r in enumerate(readings) if r.drifted]
    assert fired == [26]  # weight 0.2, 0.36, ... reaches 3/4 at the 7th sighting
    assert readings[26].appeared == 1 and lasting.events == 1


def test_renumbered_ids_at_the_same_places_are_not_a_drift() -> None:
    centres = base_centres(3)
    drift = CentreDrift(settle=0)
    drift.check(centres)
    renumbered = {cid + 100: c for cid, c in reversed(list(centres.items()))}
    assert drift.check(renumbered) == DriftReading(0.0, False, 0, 0)


def test_slow_creep_adds_up_to_one_event_per_threshold() -> None:
    """A frozen reference sees the creep; one that followed the centres would not."""
    drift = raw_drift(threshold=1.0)
    steps = [drift.check({0: [0.03 * t], 1: [10.0 + 0.03 * t]}) for t in range(150)]
    fired = [t for t, r in enumerate(steps) if r.drifted]
    assert fired == [34, 68, 102, 136]  # 34 x 0.03 = 1.02 std from the last reference


def test_nothing_fires_while_settling() -> None:
    drift = CentreDrift(smoothing=1.0, settle=3)
    drift.check({0: [0.0]})
    assert drift.settling
    assert not any(drift.check({0: [5.0 * t]}).drifted for t in range(1, 4))
    assert not drift.settling
    assert drift.check({0: [20.0]}).drifted  # 5 std from the reference re-taken at 15
    assert drift.settling and drift.events == 1


def test_empty_centres_are_no_reading() -> None:
    drift = CentreDrift()
    assert drift.check({}) == DriftReading(0.0, False, 0, 0)
    drift.check({0: [1.0, 1.0]})
    assert drift.check({}) == DriftReading(0.0, False, 0, 0)
    assert drift.reference == [(1.0, 1.0)]
    assert drift.events == 0


def test_mapping_centres_never_write_into_a_defaultdict() -> None:
    """River centres are defaultdicts that invent a value for a missing key."""
    drift = CentreDrift(keys=("x", "y"))
    centre: defaultdict[str, float] = defaultdict(float, {"x": 1.0})
    with pytest.raises(KeyError):
        drift.check({0: centre})
    assert dict(centre) == {"x": 1.0}
    drift.check({0: {"y": 2.0, "x": 1.0}})
    assert drift.reference == [(1.0, 2.0)]


def test_drift_rejects_other_dimensions_and_bad_parameters() -> None:
    drift = CentreDrift()
    drift.check({0: [0.0, 0.0]})
    with pytest.raises(ValueError):
        drift.check({0: [0.0, 0.0, 0.0]})
    with pytest.raises(ValueError):
        CentreDrift(threshold=0.0)
    with pytest.raises(ValueError):
        CentreDrift(smoothing=0.0)


def test_rebase_and_pickle_round_trip() -> None:
    drift = CentreDrift(smoothing=0.5)
    rng = np.random.default_rng(4)
    centres = base_centres(4)
    for _ in range(5):
        drift.check(jittered(centres, rng, 0.1))
    drift.rebase()
    assert not drift.settling
    copy = pickle.loads(pickle.dumps(drift))
    later = [jittered(centres, rng, 0.1) for _ in range(5)]
    later += [{c: [v + 2.0 for v in x] for c, x in centres.items()}] * 5
    assert [drift.check(c) for c in later] == [copy.check(c) for c in later]
    assert copy.events == drift.events == 1


def test_with_river_kmeans_drift_fires_on_a_real_shift_only() -> None:
    """Scaled stream, seeded River KMeans: quiet while stationary, one event after a shift."""
    rng = np.random.default_rng(11)
    means = rng.normal(0.0, 4.0, size=(3, 4))
    scaler = preprocessing.StandardScaler()
    model = build_clusterer("KMeans", {"n_clusters": 3}, seed=11)
    drift = CentreDrift()
    sil = StreamingSilhouette(window=300, every=300)
    names = ("a", "b", "c", "d")
    fired: list[int] = []
    for t in range(12_000):
        shift = 8.0 if t >= 6_000 and t % 3 == 0 else 0.0  # raw units: about 2 std when scaled
        raw = dict(zip(names, means[t % 3] + shift + rng.normal(size=4), strict=True))
        scaler.learn_one(raw)
        x = scaler.transform_one(raw)
        sil.update(x, model.learn_predict_one(x))
        if t >= 1_000 and t % 250 == 0 and drift.check(model.centers).drifted:
            fired.append(t)
    assert len(fired) == 1 and 6_000 < fired[0] < 8_000
    assert sil.value is not None and sil.value > 0.5
