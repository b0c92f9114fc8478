from __future__ import annotations

import json
import os
import pickle
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from river import cluster

from tailor.state.segments.clusterers import (
    CLUSTERER_DEFAULTS,
    OrderedCluStream,
    OrderedKMeans,
    OrderedSTREAMKMeans,
    WarmKMeans,
    build_clusterer,
)

ROOT = Path(__file__).resolve().parents[2]
CLUSTERERS = tuple(CLUSTERER_DEFAULTS)

#: One replay of 1,000 personas through a Segmenter per clusterer, printed as JSON: the raw ids
#: handed out while learning, then re-predictions of 200 fresh users; and the same for the
#: stable segments (`learn_segment`, `segment`) users get.
REPLAY = """
import json
from benchmarks.personas import personas
from tailor.state.segments.clusterers import CLUSTERER_DEFAULTS
from tailor.state.segments.segmenter import Segmenter

out = {}
for name in CLUSTERER_DEFAULTS:
    seg = Segmenter(name, seed=7)
    preds = [seg.learn_predict(p.features, p.device) for p in personas(1000, 3)]
    preds += [seg.predict(p.features, p.device) for p in personas(200, 99)]
    out[name] = preds
    seg = Segmenter(name, seed=7)
    segments = [seg.learn_segment(p.features, p.device) for p in personas(1000, 3)]
    segments += [seg.segment(p.features, p.device) for p in personas(200, 99)]
    out[name + ":segments"] = segments
print(json.dumps(out))
"""


Replays = tuple[dict[str, list[int | None]], dict[str, list[int | None]]]


def replay_twice(script: str) -> Replays:
    """Run `script` under PYTHONHASHSEED=1 and =2 (at the same time: two cores) and parse both."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for hash_seed in ("1", "2")
    ]
    outputs = [proc.communicate() for proc in procs]
    for proc, (_, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr
    first, second = (json.loads(stdout) for stdout, _ in outputs)
    return first, second


@pytest.fixture(scope="module")
def replays() -> Replays:
    return replay_twice(REPLAY)


@pytest.mark.parametrize("name", CLUSTERERS)
@pytest.mark.parametrize("what", ["", ":segments"], ids=["raw ids", "stable segments"])
def test_segments_do_not_depend_on_the_hash_seed(name: str, what: str, replays: Replays) -> None:
    first, second = replays
    assert first[name + what] == second[name + what]
    # a model that puts everyone in one cluster proves nothing
    assert len({s for s in first[name + what] if s is not None}) >= 2


#: The same, straight into River's own classes (signed-log features, no scaling): the reason
#: for the replacements.
RIVER_REPLAY = """
import json, math
from river import cluster
from benchmarks.personas import personas

params = {
    "KMeans": {"n_clusters": 5, "halflife": 0.5, "sigma": 0.5},
    "STREAMKMeans": {"n_clusters": 5, "chunk_size": 100, "halflife": 0.5, "sigma": 0.5},
    "CluStream": {"n_macro_clusters": 5, "micro_cluster_r_factor": 8, "time_gap": 250},
}
out = {}
for name, kwargs in params.items():
    model = getattr(cluster, name)(**kwargs, seed=7)
    preds = []
    for p in personas(1000, 3):
        x = {k: math.log1p(v) for k, v in p.features.items()}
        model.learn_one(x)
        preds.append(model.predict_one(x))
    out[name] = preds
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def river_replays() -> Replays:
    return replay_twice(RIVER_REPLAY)


@pytest.mark.parametrize("name", ["KMeans", "STREAMKMeans", "CluStream"])
def test_rivers_own_classes_do_depend_on_the_hash_seed(name: str, river_replays: Replays) -> None:
    """Why the replacements exist. If this starts failing, River fixed its set-order iteration
    and the replacement for `name` in `tailor.state.segments.clusterers` can go."""
    first, second = river_replays
    assert first[name] != second[name]


def blobs(n: int, seed: int, dims: int = 4) -> list[dict[Any, float]]:
    """Three blobs with integer keys: small ints hash to themselves, so River's set order is
    the insertion order and River and our replacements must agree exactly."""
    rng = random.Random(seed)
    return [
        {i: rng.gauss(3.0 * c, 1.0) for i in range(dims)}
        for c in (rng.randrange(3) for _ in range(n))
    ]


def learn_predict_all(model: Any, points: list[dict[Any, float]]) -> list[int]:
    out = []
    for x in points:
        model.learn_one(x)
        out.append(model.predict_one(x))
    return out


@pytest.mark.parametrize(
    ("ours", "rivers"),
    [
        (OrderedKMeans, cluster.KMeans),
        (OrderedSTREAMKMeans, cluster.STREAMKMeans),
        (OrderedCluStream, cluster.CluStream),
    ],
)
def test_replacements_are_the_same_algorithm_as_river(ours: Any, rivers: Any) -> None:
    params: dict[str, Any] = {"seed": 1, "sigma": 1.0}
    if rivers is cluster.CluStream:
        params |= {"n_macro_clusters": 3, "time_gap": 500, "micro_cluster_r_factor": 8}
    else:
        params |= {"n_clusters": 3, "halflife": 0.3}
    if rivers is cluster.STREAMKMeans:
        params["chunk_size"] = 50
    points = blobs(3000, seed=0)
    preds = learn_predict_all(ours(**params), points)
    assert preds == learn_predict_all(rivers(**params), points)
    assert len(set(preds)) >= 2


def test_warm_kmeans_without_warmup_is_ordered_kmeans() -> None:
    points = blobs(2000, seed=1)
    ours = learn_predict_all(WarmKMeans(n_clusters=3, halflife=0.3, warmup=0, seed=2), points)
    assert ours == learn_predict_all(OrderedKMeans(n_clusters=3, halflife=0.3, seed=2), points)


def test_warm_start_finds_blobs_that_rivers_random_start_merges() -> None:
    """River's centres start near the origin; the first to win keeps winning. Three blobs far
    from the origin (means 10, 13, 16) end up in one cluster from a random start, and in
    three after the k-means++ warm-up."""
    rng = random.Random(5)
    points = [
        {i: rng.gauss(10.0 + 3.0 * c, 0.5) for i in range(4)}
        for c in (rng.randrange(3) for _ in range(3000))
    ]
    probes: list[dict[Any, float]] = [{i: 10.0 + 3.0 * c for i in range(4)} for c in range(3)]
    warm = WarmKMeans(n_clusters=3, halflife=0.05, sigma=0.5, warmup=300, seed=3)
    cold = OrderedKMeans(n_clusters=3, halflife=0.05, sigma=0.5, seed=3)
    learn_predict_all(warm, points)
    learn_predict_all(cold, points)
    assert len({warm.predict_one(x) for x in probes}) == 3
    assert len({cold.predict_one(x) for x in probes}) == 1


@pytest.mark.parametrize("stop", [100, 400])  # during and after the warm-up
def test_warm_kmeans_survives_a_pickle_round_trip(stop: int) -> None:
    points = blobs(600, seed=4)
    model = WarmKMeans(n_clusters=3, halflife=0.05, warmup=300, seed=6)
    learn_predict_all(model, points[:stop])
    copy = pickle.loads(pickle.dumps(model))
    assert learn_predict_all(copy, points[stop:]) == learn_predict_all(model, points[stop:])


def test_warm_kmeans_drops_its_buffer_after_the_warmup() -> None:
    """The buffer is per-model state that snapshots carry; it must not outlive the warm-up."""
    model = WarmKMeans(n_clusters=3, warmup=50, seed=1)
    learn_predict_all(model, blobs(60, seed=2))
    assert model._buffer is None


def test_a_warmup_too_short_for_k_means_plus_plus_is_refused() -> None:
    with pytest.raises(ValueError, match="warmup"):
        build_clusterer("KMeans", {"n_clusters": 5, "warmup": 3}, seed=1)


def test_unknown_clusterer_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        build_clusterer("Birch", None, seed=1)


def test_bad_params_are_refused_with_the_merged_params() -> None:
    with pytest.raises(ValueError, match="bad params for clusterer KMeans"):
        build_clusterer("KMeans", {"no_such_param": 1}, seed=1)


def test_user_params_override_the_defaults_and_the_seed_is_injected() -> None:
    model = build_clusterer("KMeans", {"n_clusters": 3}, seed=9)
    assert (model.n_clusters, model.seed) == (3, 9)
    assert model.halflife == CLUSTERER_DEFAULTS["KMeans"]["halflife"]


def test_every_offered_clusterer_is_a_river_clusterer() -> None:
    """River's base class fixes the verbs the segmenter calls; Tailor's replacements keep it
    by subclassing River's own classes."""
    from river import base

    from tailor.state.segments.clusterers import CLUSTERER_DEFAULTS, build_clusterer

    for name in CLUSTERER_DEFAULTS:
        model = build_clusterer(name, {}, seed=1)
        assert isinstance(model, base.Clusterer), name
        assert callable(model.learn_one) and callable(model.predict_one)
