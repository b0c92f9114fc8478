"""Prototype for re-seeding the online clusterer from batch k-means (issue 23's ARI target).

    python -m benchmarks.prototypes.refit [--data online-retail|cdnow] [--every-days 7]
        [--population] [--rescale] [--schedules none,sample,sample-unaged,exact]

A dataset's events (the worker's own adapter) are replayed in time order into one
`UserState` per user; the default `Segmenter` learns at the models step's learn points (a
user's 1st, 11th, ... event and every purchase). At every `--every-days` boundary of event
time, each schedule may re-seed the online model (anchors and River's centres set to batch
k-means centres, matched one to one to the current segments so ids stay):

- none: never (the worker today);
- sample: from a bottom-k sample of 4,096 users' profiles at their last learn point, aged to
  the boundary where a profile can be without its events (recency, and windows known empty);
  deterministic in the event-time order (what an in-worker refit could use);
- sample-unaged: the same sample, each profile as it was at its learn point;
- exact: from every user's profile aged exactly to the boundary (what a batch job over an
  aged Redis gives, `tailor resegment --reseed` from cron).

`--schedules none,sample` runs only those.

At the end, every user's profile aged to the last boundary is assigned by the online model
and clustered by batch k-means on the same encoding (standardised over the users, as
`tailor resegment` does): ARI, silhouettes, smallest segment, and the time re-seeding took.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score

from tailor.operators.replay.adapters import read_cdnow, read_online_retail
from tailor.state.profile.event import Event, event_from_dict
from tailor.state.profile.user import UserState
from tailor.state.segments.segmentation import learn_point
from tailor.state.segments.segmenter import TRANSFORMS, Segmenter

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
DAY = 86400.0
SEED = 42
SAMPLE = 4096
RESCALE = False
POPULATION = False
TYPES = frozenset({"purchase", "page_view", "product_view", "click", "add_to_cart"})


def events(data: str) -> list[Event]:
    if data == "cdnow":
        payloads: Iterator[bytes] = read_cdnow(DATA / "cdnow" / "cdnow_master.csv")
    else:
        payloads = read_online_retail(DATA / "online-retail" / "online_retail.csv.gz")
    out = [e for e in (event_from_dict(orjson.loads(p), TYPES) for p in payloads)]
    kept = [e for e in out if isinstance(e, Event)]
    kept.sort(key=lambda e: e.ts)  # stable: file order within a time
    return kept


def rank(user: str) -> int:
    return int.from_bytes(hashlib.blake2b(user.encode(), digest_size=8).digest(), "big")


def aged_from_point(features: Mapping[str, float], ts: float, now: float) -> dict[str, float]:
    """A learn point's profile as it would stand at `now`, from the point alone."""
    age = now - ts
    out = dict(features)
    out["recency_days"] = min(365.0, out["recency_days"] + age / DAY)
    for name, horizon in (("views_1h", 3600.0), ("views_24h", DAY), ("views_7d", 7 * DAY)):
        if age > horizon:
            out[name] = 0.0
    if age > 30 * DAY:
        out["purchases_30d"] = out["spend_30d"] = 0.0
    if age > 1800.0:
        out["session_duration"] = out["session_events"] = out["product_views"] = 0.0
    return out


def reseed(seg: Segmenter, profiles: list[Mapping[str, float]], k: int) -> None:
    """Anchors and River's centres := batch k-means centres, in the online scaled space."""
    if not seg.registry.ready or len(profiles) < k:
        return
    dims = seg._dims()
    if RESCALE:  # standardise over the profiles, as batch does, not over the learn points
        numeric = [seg._numeric(p) for p in profiles]
        for f in seg.features:
            column = np.array([n[f] for n in numeric])
            seg._scaler.means[f] = float(column.mean())
            seg._scaler.vars[f] = float(column.var())
    points = np.array(
        [[v[d] for d in dims] for v in (seg._vector(seg._numeric(p), "other") for p in profiles)]
    )
    centres = KMeans(n_clusters=k, n_init=10, random_state=SEED).fit(points).cluster_centers_
    anchors = seg.registry.anchors
    free = set(range(len(centres)))
    pairs = sorted(
        (float(np.linalg.norm(centres[c] - np.array(a))), s, c)
        for s, a in anchors.items()
        for c in free
    )
    taken: dict[int, int] = {}
    for _d, s, c in pairs:
        if s not in taken and c in free:
            taken[s] = c
            free.discard(c)
    model_centres = getattr(seg._model, "centers", {})
    for raw in list(model_centres):
        s = seg.registry._cache.get(raw)
        if s in taken:
            model_centres[raw] = dict(zip(dims, centres[taken[s]].tolist(), strict=True))
    for s, c in taken.items():
        anchors[s] = centres[c].tolist()


class PopulationScaler:
    """Standardises over each user's latest profile, not over the learn points: running sums
    with a user's previous values taken out (option 1 of docs/design/reseeding.md)."""

    def __init__(self, features: tuple[str, ...]) -> None:
        self.features = features
        self.latest: dict[str, dict[str, float]] = {}
        self.sums = dict.fromkeys(features, 0.0)
        self.squares = dict.fromkeys(features, 0.0)
        self.means: dict[str, float] = dict.fromkeys(features, 0.0)
        self.vars: dict[str, float] = dict.fromkeys(features, 0.0)

    def update(self, user: str, numeric: Mapping[str, float]) -> None:
        old = self.latest.get(user)
        for f in self.features:
            if old is not None:
                self.sums[f] -= old[f]
                self.squares[f] -= old[f] * old[f]
            self.sums[f] += numeric[f]
            self.squares[f] += numeric[f] * numeric[f]
        self.latest[user] = dict(numeric)
        n = len(self.latest)
        for f in self.features:
            mean = self.sums[f] / n
            self.means[f] = mean
            self.vars[f] = max(0.0, self.squares[f] / n - mean * mean)

    def learn_one(self, x: Mapping[str, float]) -> None:
        """The segmenter's own call: the population is updated by `update` instead."""

    def transform_one(self, x: Mapping[str, float]) -> dict[str, float]:
        return {
            f: (v - self.means.get(f, 0.0)) / (self.vars.get(f, 0.0) ** 0.5 or 1.0)
            for f, v in x.items()
        }


def encode(profiles: list[Mapping[str, float]], seg: Segmenter) -> np.ndarray:
    columns = [
        [TRANSFORMS[seg.transforms[f]][0](float(p.get(f, 0.0))) for p in profiles]
        for f in seg.features
    ]
    matrix = np.array(columns, dtype=float).T
    std = matrix.std(axis=0)
    return (matrix - matrix.mean(axis=0)) / np.where(std > 0, std, 1.0)


def run(stream: list[Event], schedule: str, every: float) -> dict[str, Any]:
    seg = Segmenter()
    population = PopulationScaler(seg.features) if POPULATION else None
    if population is not None:
        seg._scaler = population  # type: ignore[assignment]
    k = int(getattr(seg._model, "n_clusters", 5))
    users: dict[str, UserState] = {}
    sample: dict[str, tuple[dict[str, float], float]] = {}
    boundary = (stream[0].ts // every + 1) * every
    spent = 0.0
    for e in stream:
        while e.ts >= boundary:
            started = time.perf_counter()
            if schedule == "exact":
                reseed(seg, [u.aged_features(boundary) for u in users.values()], k)
            elif schedule == "sample":
                kept = sorted(sample, key=rank)[:SAMPLE]
                aged = [aged_from_point(*sample[u], boundary) for u in kept]
                reseed(seg, aged, k)
            elif schedule == "sample-unaged":
                kept = sorted(sample, key=rank)[:SAMPLE]
                reseed(seg, [sample[u][0] for u in kept], k)
            spent += time.perf_counter() - started
            boundary += every
        state = users.setdefault(e.user_id, UserState())
        state.update(e)
        if learn_point(state.version, e.type, 10):
            features = state.features()
            if population is not None:
                population.update(e.user_id, seg._numeric(features))
            seg.learn_segment(features, state.device)
            sample[e.user_id] = (features, e.ts)
    end = boundary - every
    final = [u.aged_features(max(end, u.watermark or end)) for u in users.values()]
    labels = [seg.segment(f, None) for f in final]
    matrix = encode(final, seg)
    batch = KMeans(n_clusters=k, n_init=10, random_state=SEED).fit_predict(matrix)
    sizes = np.bincount([label for label in labels if label is not None])
    batch_sizes = np.bincount(batch)
    return {
        "schedule": schedule,
        "ari": adjusted_rand_score(batch, labels),
        "silhouette_online": silhouette_score(matrix, labels, sample_size=4000, random_state=SEED),
        "silhouette_batch": silhouette_score(matrix, batch, sample_size=4000, random_state=SEED),
        "smallest": sizes[sizes > 0].min() / len(labels),
        "batch_smallest": batch_sizes.min() / len(labels),
        "live": int((sizes > 0).sum()),
        "reseed_s": spent,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("online-retail", "cdnow"), default="online-retail")
    parser.add_argument("--every-days", type=float, default=7.0)
    parser.add_argument("--rescale", action="store_true", help="re-standardise at a re-seed")
    parser.add_argument(
        "--population", action="store_true", help="standardise over users' latest profiles"
    )
    parser.add_argument("--schedules", default="none,sample,exact")
    args = parser.parse_args()
    global RESCALE, POPULATION
    RESCALE = args.rescale
    POPULATION = args.population
    stream = events(args.data)
    print(f"{args.data}: {len(stream):,} events, re-seeding every {args.every_days:g} days")
    print(
        "| schedule | ARI vs batch | silhouette online / batch | live | smallest online / batch "
        "| re-seeding |"
    )
    print("|---|---|---|---|---|---|")
    for schedule in args.schedules.split(","):
        r = run(stream, schedule, args.every_days * DAY)
        print(
            f"| {schedule} | {r['ari']:.3f} | {r['silhouette_online']:.3f} / "
            f"{r['silhouette_batch']:.3f} | {r['live']} | {r['smallest']:.1%} / "
            f"{r['batch_smallest']:.1%} "
            f"| {r['reseed_s']:.1f} s |"
        )


if __name__ == "__main__":
    main()
