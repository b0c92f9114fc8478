"""The segment model: learn points in event-time order, assignment, publishing, erasure."""

from __future__ import annotations

import pickle
import random

from tailor.state.profile.user import FEATURE_NAMES
from tailor.state.segments.news import SegmentInfo, SegmentModel
from tailor.state.segments.segmentation import Segmentation
from tailor.state.segments.segmenter import Segmenter

Point = tuple[float, str, dict[str, float], str]


def points(n: int, seed: int = 0) -> list[Point]:
    """Four behaviours (feature scale 1..4), two devices, one user per point, ts = index."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        features = {name: rng.expovariate(1.0) * (1 + i % 4) for name in FEATURE_NAMES}
        out.append((float(i), f"u{i}", features, ("mobile", "desktop")[i % 2]))
    return out


def feed(seg: Segmentation, stream: list[Point]) -> list[SegmentInfo | SegmentModel]:
    published = []
    for ts, user, features, device in stream:
        published += seg.observe(user, 1, ts, "page_view", features, device)
    return published + seg.flush()


def locally_shuffled(stream: list[Point], window: int, seed: int) -> list[Point]:
    rng = random.Random(seed)
    out = list(stream)
    for start in range(0, len(out), window):
        chunk = out[start : start + window]
        rng.shuffle(chunk)
        out[start : start + window] = chunk
    return out


def fresh(reorder_s: float) -> Segmentation:
    return Segmentation(Segmenter(warmup=200), reorder_s=reorder_s, publish_every=500)


def test_arrival_order_within_the_horizon_does_not_change_the_model() -> None:
    stream = points(2000)
    in_order, shuffled = fresh(30.0), fresh(30.0)
    published_in_order = feed(in_order, stream)
    published_shuffled = feed(shuffled, locally_shuffled(stream, window=20, seed=1))
    assert published_shuffled == published_in_order
    assert in_order.model_record(0.0) == shuffled.model_record(0.0)
    # without the buffer, the same shuffle gives another model: the buffer is what helps
    unbuffered = fresh(0.0)
    feed(unbuffered, locally_shuffled(stream, window=20, seed=1))
    assert unbuffered.model_record(0.0) != in_order.model_record(0.0)


def test_learn_points_wait_for_the_watermark_then_publish_in_order() -> None:
    seg = Segmentation(Segmenter(warmup=100), reorder_s=100.0, publish_every=500)
    stream = points(400)
    early = []
    for ts, user, features, device in stream[:250]:
        early += seg.observe(user, 1, ts, "page_view", features, device)
    assert seg.segmenter.registry.learned == 150  # ts 0..149 are 100 s behind ts 249
    assert [p.version for p in early if isinstance(p, SegmentModel)] == [100]  # warm-up end
    assert seg.assign(stream[0][2], stream[0][3])[0].startswith("cluster:")
    rest = feed(seg, stream[250:])
    assert seg.segmenter.registry.learned == 400 and not seg.order.held
    names = [p for p in early + rest if isinstance(p, SegmentInfo)]
    assert [p.version for p in names] == list(range(1, len(names) + 1))


def test_only_learn_points_and_purchases_are_learned() -> None:
    seg = Segmentation(Segmenter(warmup=5), learn_every=10)
    features = dict.fromkeys(FEATURE_NAMES, 1.0) | {"purchases_total": 1.0, "spend_total": 5.0}
    for version in range(1, 25):
        kind = "purchase" if version == 5 else "page_view"
        given = features if (version - 1) % 10 == 0 or kind == "purchase" else None
        seg.observe("u", version, float(version), kind, given, "mobile")
    assert seg.segmenter.registry.learned == 3  # versions 1, 11, 21
    assert seg.rfm.n_customers == 1  # learned from the purchase (and the learn points)


def test_forget_drops_the_user_from_the_buffer_and_the_rfm_sample() -> None:
    seg = fresh(1000.0)
    features = dict.fromkeys(FEATURE_NAMES, 1.0) | {"purchases_total": 2.0, "spend_total": 5.0}
    seg.observe("alice", 1, 1.0, "purchase", features, "mobile")
    seg.observe("bob", 1, 2.0, "purchase", features, "mobile")
    seg.flush()
    seg.observe("alice", 11, 3.0, "page_view", features, "mobile")
    seg.forget("alice")
    assert seg.order.held == 0
    assert "alice" not in seg.rfm and "bob" in seg.rfm


def test_pickles_with_its_buffer() -> None:
    seg = fresh(50.0)
    stream = points(600)
    feed_part = stream[:300]
    for ts, user, features, device in feed_part:
        seg.observe(user, 1, ts, "page_view", features, device)
    clone = pickle.loads(pickle.dumps(seg))
    assert feed(clone, stream[300:]) == feed(seg, stream[300:])
