from __future__ import annotations

import pickle
import random

from tailor.state.segments.registry import SegmentRegistry

CENTRES = {0: [0.0, 0.0], 1: [10.0, 0.0], 2: [0.0, 10.0]}


def stream(n: int, seed: int) -> list[tuple[int, list[float]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        raw = rng.randrange(3)
        cx, cy = CENTRES[raw]
        out.append((raw, [cx + rng.gauss(0, 0.5), cy + rng.gauss(0, 0.5)]))
    return out


def feed(
    reg: SegmentRegistry, points: list[tuple[int, list[float]]], relabel: dict[int, int]
) -> list[int | None]:
    centres = {relabel[r]: c for r, c in CENTRES.items()}
    return [
        reg.learn(relabel[raw], p, lambda: centres, token=tuple(sorted(relabel.items())))
        for raw, p in points
    ]


def test_renumbered_raw_ids_keep_their_segments() -> None:
    reg = SegmentRegistry(warmup=50, seed=3)
    first = feed(reg, stream(300, 1), {0: 0, 1: 1, 2: 2})
    by_truth = {raw: seg for (raw, _), seg in zip(stream(300, 1)[100:], first[100:], strict=True)}
    assert len(set(by_truth.values())) == 3
    # the clusterer rebuilds and renumbers (as CluStream and DBSTREAM do): segments stay
    after = feed(reg, stream(300, 2), {0: 2, 1: 0, 2: 1})
    assert {raw: seg for (raw, _), seg in zip(stream(300, 2), after, strict=True)} == by_truth


def test_numbering_does_not_depend_on_which_cluster_came_first() -> None:
    """Two runs meeting the same structure in another order number it the same way."""
    points = stream(400, 5)
    a, b = SegmentRegistry(warmup=200, seed=1), SegmentRegistry(warmup=200, seed=1)
    seg_a = feed(a, points, {0: 0, 1: 1, 2: 2})
    # run b: reversed arrival order and different raw ids for the same clusters
    seg_b = feed(b, points[::-1], {0: 1, 1: 2, 2: 0})
    truth_a = {raw: s for (raw, _), s in zip(points, seg_a, strict=True) if s is not None}
    truth_b = {raw: s for (raw, _), s in zip(points[::-1], seg_b, strict=True) if s is not None}
    assert truth_a == truth_b
    assert sorted(truth_a.values()) == [0, 1, 2]


def test_warmup_gives_none_then_anchors_start_at_the_centres_and_follow_members() -> None:
    reg = SegmentRegistry(warmup=2, smoothing=0.25)  # an anchor starts as 1 point's worth
    centres = {0: [0.0], 1: [9.0]}
    assert reg.learn(0, [1.0], lambda: centres, token=1) is None
    first = reg.learn(0, [2.0], lambda: centres, token=1)
    assert reg.ready and first is not None
    assert reg.learn(0, [4.0], lambda: centres, token=1) == first
    assert reg.anchors[first] == [2.0]  # the mean of the centre (0), 2 and 4
    other = reg.lookup(1, lambda: centres, token=1)
    assert other is not None and other != first and reg.anchors[other] == [9.0]
    assert reg.nearest([8.0]) == other


def test_pickle_keeps_the_mapping() -> None:
    reg = SegmentRegistry(warmup=20)
    feed(reg, stream(100, 1), {0: 0, 1: 1, 2: 2})
    clone = pickle.loads(pickle.dumps(reg))
    assert [clone.lookup(r, lambda: CENTRES, token=((0, 0), (1, 1), (2, 2))) for r in range(3)] == [
        reg.lookup(r, lambda: CENTRES, token=((0, 0), (1, 1), (2, 2))) for r in range(3)
    ]
