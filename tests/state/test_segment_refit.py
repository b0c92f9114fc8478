"""Re-fits: the segments re-seeded from batch k-means on the sampled users, in event-time order."""

from __future__ import annotations

import math
import pickle
import random

import numpy as np

from tailor.state.segments.news import SegmentModel
from tailor.state.segments.refit import refit_centres
from tailor.state.segments.segmentation import Segmentation
from tailor.state.segments.segmenter import Segmenter

FEATURES = ("spend_30d", "views_24h")


def blob_user(rng: random.Random, blob: int) -> dict[str, float]:
    """Three behaviours far apart on the log scale the segmenter encodes with."""
    spend, views = ((1.0, 1.0), (200.0, 2.0), (5.0, 60.0))[blob]
    return {"spend_30d": spend * rng.uniform(0.8, 1.2), "views_24h": views * rng.uniform(0.8, 1.2)}


def drifting(n: int, seed: int = 0, tiny: bool = False) -> list[tuple[str, dict[str, float]]]:
    """Users of three blobs, the first half mostly blob 0: online k-means starts lopsided.
    With `tiny`, 1 user in 100 is an outlier far from everyone."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        blob = 0 if i < n // 2 and i % 5 else i % 3
        features = blob_user(rng, blob)
        if tiny and i % 100 == 7:
            features = {"spend_30d": 1e6, "views_24h": 1e4}
        out.append((f"u{i}", features))
    return out


def learned(stream: list[tuple[str, dict[str, float]]], k: int = 3) -> Segmenter:
    seg = Segmenter(
        features=FEATURES, params={"n_clusters": k}, warmup=100, seed=3, refit_min_changes=1
    )
    for ts, (user, features) in enumerate(stream):
        seg.learn_segment(features, None, user, float(ts))
    return seg


def test_a_refit_takes_batch_kmeans_centres_of_the_sample_and_keeps_numbers() -> None:
    seg = learned(drifting(1200))
    before = {s: list(a) for s, a in seg.registry.anchors.items()}
    assert seg.refit(2000.0, {}, 0.0) == []
    after = seg.registry.anchors
    assert set(after) == set(before) and seg.refits == 1
    # each segment kept its number for the new centre nearest its old anchor
    for segment, anchor in before.items():
        nearest = min(after, key=lambda s: math.dist(after[s], anchor))
        assert nearest == segment
    # River's centres are the anchors, one raw id each
    dims = seg._dims()
    river = {raw: [c[d] for d in dims] for raw, c in seg._model.centers.items()}
    assert sorted(map(tuple, river.values())) == sorted(map(tuple, after.values()))
    # and a sampled user is in the segment whose new centre is nearest
    for profile in seg._scaler.profiles()[:50]:
        x = seg._vector(seg._numeric(profile.features), seg._device(profile.device))
        point = [x[d] for d in dims]
        expected = min(after, key=lambda s: (math.dist(after[s], point), s))
        assert seg.segment(profile.features, None) == expected


def test_a_segment_under_the_floor_is_retired_for_good() -> None:
    """1% outliers would be a segment of their own; with a 5% floor they join the nearest,
    the segment is retired (no River centre, no name) and its number is never reused."""
    seg = learned(drifting(1500, tiny=True), k=4)
    assert len(seg.registry.anchors) == 4
    retired = seg.refit(2000.0, {}, 0.05)
    assert retired is not None and len(retired) == 1
    assert len(seg.registry.anchors) == 3 and len(seg._model.centers) == 3
    assert set(seg.names) == set(seg.registry.anchors)
    assert seg.registry._new([0.0] * len(seg._dims())) == 4  # past the retired numbers
    points = np.array([[0.0], [0.1], [9.0], [9.1], [50.0]])
    centres = refit_centres(points, 3, 0.25, 3, seed=1)  # 50 is left out of the fit
    assert sorted(float(c[0]) for c in centres) == [0.05, 9.05]


def refitting(refit_every_s: float, min_changes: int = 1) -> Segmentation:
    segmenter = Segmenter(
        features=FEATURES,
        params={"n_clusters": 3},
        warmup=100,
        seed=3,
        refit_min_changes=min_changes,
    )
    return Segmentation(
        segmenter, refit_every_s=refit_every_s, publish_every=10_000, reorder_s=5.0, min_share=0.0
    )


def feed(seg: Segmentation, stream: list[tuple[str, dict[str, float]]], start: int = 0) -> list:
    out = []
    for i, (user, features) in enumerate(stream, start=start):
        out += seg.observe(user, 1, 10.0 * i, "page_view", features, None)
    return out


def test_segments_refit_at_each_boundary_the_same_on_every_replica_and_after_a_resume() -> None:
    stream = drifting(1500)
    seg = refitting(1000.0)
    published = feed(seg, stream) + seg.flush()
    models = [p for p in published if isinstance(p, SegmentModel)]
    # points at 0, 10, ... 14,990 s, the warm-up over at the 100th (990 s): a re-fit and a
    # published model at each boundary from 1,000 s to 14,000 s
    assert seg.segmenter.refits == 14
    assert [m.record["refits"] for m in models][-14:] == list(range(1, 15))
    half = refitting(1000.0)
    feed(half, stream[:700])
    resumed = Segmentation.from_snapshot(pickle.loads(pickle.dumps(half.to_snapshot())))
    feed(resumed, stream[700:], start=700)
    resumed.flush()
    assert resumed.model_record(0.0) == seg.model_record(0.0)
    never = refitting(0.0)
    feed(never, stream)
    assert never.segmenter.refits == 0 and never.model_record(0.0) != seg.model_record(0.0)


def test_an_erased_user_leaves_the_sample() -> None:
    seg = refitting(1000.0)
    feed(seg, drifting(300))
    seg.flush()
    assert "u5" in seg.segmenter._scaler
    seg.forget("u5")
    assert "u5" not in seg.segmenter._scaler


def test_after_a_refit_the_anchors_hold_still_until_the_next() -> None:
    """Learn points are profiles taken at events (the recently active users): letting them
    move the re-fitted anchors pulls the batch answer back towards those users."""
    stream = drifting(1500)
    seg = learned(stream[:1000])
    moving = {s: list(a) for s, a in seg.registry.anchors.items()}
    for ts, (user, features) in enumerate(stream[1000:1100], start=1000):
        seg.learn_segment(features, None, user, float(ts))
    assert seg.registry.anchors != moving  # before any re-fit, anchors follow the points
    seg.refit(1100.0, {}, 0.0)
    held = {s: list(a) for s, a in seg.registry.anchors.items()}
    members = dict(seg.registry.members)
    for ts, (user, features) in enumerate(stream[1100:], start=1100):
        seg.learn_segment(features, None, user, float(ts))
    assert seg.registry.anchors == held
    assert sum(seg.registry.members.values()) == sum(members.values()) + 400


def test_a_refit_standardises_over_the_sampled_users_aged_to_its_moment() -> None:
    """From the first re-fit on, the moments are those of the sample aged to the re-fit: on
    a shop where every learn point is a purchase, recency at learn points is always 0, and
    only aged profiles give it a spread."""
    day = 86400.0
    seg = Segmenter(
        features=("recency_days", "spend_30d"),
        params={"n_clusters": 2},
        warmup=20,
        refit_min_changes=1,
    )
    for n in range(60):
        features = {"recency_days": 0.0, "spend_30d": float(10 + n % 3)}
        seg.learn_segment(features, None, f"u{n}", n * day)
    assert seg._scaler.vars["recency_days"] == 0.0
    seg.refit(60 * day, {"spend_30d": 30 * day}, 0.0)
    ages = [60 - n for n in range(60)]
    encoded = [math.log1p(float(a)) for a in ages]
    mean = sum(encoded) / len(encoded)
    assert math.isclose(seg._scaler.means["recency_days"], mean, rel_tol=1e-12)
    assert seg._scaler.vars["recency_days"] > 0.5
    # a month on, the 30-day spend of the users who bought more than 30 days ago reads 0
    spend = [0.0 if a > 30 else math.log1p(10 + n % 3) for n, a in enumerate(ages)]
    assert math.isclose(seg._scaler.means["spend_30d"], sum(spend) / 60, rel_tol=1e-12)


def test_a_refit_waits_until_enough_of_the_sample_changed() -> None:
    """A sparse backfill crosses many boundaries with few new learn points: a boundary with
    fewer than `refit_min_changes` sample changes since the last re-fit is passed over."""
    stream = drifting(1500)
    every = refitting(1000.0, min_changes=1)
    feed(every, stream)
    sparse = refitting(1000.0, min_changes=250)  # 100 points a boundary: at 3,000 s, 6,000 s ...
    feed(sparse, stream)
    assert every.segmenter.refits == 14
    assert sparse.segmenter.refits == 4
    assert Segmenter(sample_size=4096).refit_min_changes == 512  # the default: an eighth
