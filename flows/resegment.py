"""`tailor resegment`: the batch check on the online segments, from the live profiles.

The online clusterer sees each user once per learn point and follows the most recent users;
a batch clustering of everyone as they stand now is the check a marketer trusts. This reads
every profile in Redis (as an application would), ages it to the newest moment any profile is
as of (`aged_alike`), encodes it exactly as the online clusterer does (each feature's
transform, standardised over these users, devices one-hot) and runs the seeds' batch methods
with scikit-learn:

- k-means (``n_init=10``) for k from 2 to 10, each scored by silhouette, Davies-Bouldin and
  stability under resampling (k-means fitted on two random halves, the ARI of their labels on
  everyone): the *suggested* number of segments is the best silhouette among the stable ones;
- at the number of live segments: k-means, agglomerative clustering (Ward), and k-means on a
  PCA embedding (the components that keep 90% of the variance); and HDBSCAN, which chooses
  its own number of clusters (noise is a cluster of its own for the agreement);

and reports each method's agreement with the live segments (adjusted Rand index), the live
segments against batch k-means as a table by segment name, and each batch k-means cluster's
defining features. The result is kept in Redis (`tailor.operators.redis.keys.resegment_key`). Ward
and HDBSCAN hold all pairwise distances, so they (and every silhouette) run on a seeded sample of
`sample` users when there are more.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis
from sklearn.cluster import HDBSCAN, AgglomerativeClustering, KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, davies_bouldin_score, silhouette_score

from tailor.flows.lookup import text
from tailor.operators.model_params import ModelParams
from tailor.operators.redis.keys import resegment_key, segments_key, user_key
from tailor.state.segments.feature_encoding import Z_CLIP
from tailor.state.segments.profile_sample import age_profile
from tailor.state.segments.segmenter import TRANSFORMS, default_transforms

__all__ = ["KScore", "Profiles", "Resegmented", "encode", "read_profiles", "render", "resegment"]

SEED = 42
SAMPLE = 5000
KS = range(2, 11)
#: A k whose two half-sample fits agree less than this is not suggested.
STABLE = 0.8
#: Fewer users than this give no check (every k must fit in each half of them).
MIN_USERS = 4 * max(KS)


@dataclass
class Profiles:
    """The users with a cluster segment: ids, live segments, their encoded profiles."""

    users: list[str]
    segments: list[str]
    names: dict[str, str]
    features: list[str]
    matrix: np.ndarray


@dataclass
class KScore:
    k: int
    silhouette: float
    davies_bouldin: float
    stability: float


@dataclass
class Resegmented:
    users: int
    live: dict[str, int]
    k_scores: list[KScore]
    suggested_k: int
    agreement: dict[str, dict[str, float]]  # method → {"clusters", "ari_live", "silhouette"}
    confusion: dict[str, dict[str, int]]  # live segment → batch cluster → users
    clusters: dict[str, str]  # batch cluster → its defining features
    at: float = field(default_factory=time.time)


def encode(params: ModelParams, profiles: list[dict[str, Any]]) -> np.ndarray:
    """The clusterer's encoding of stored profiles, standardised over them and clipped to
    ±`Z_CLIP`, devices one-hot (unscaled), as the online segmenter sees a profile."""
    transforms = {**default_transforms(params.features), **(params.transforms or {})}
    columns = [
        [TRANSFORMS[transforms[name]][0](float(p["features"].get(name, 0.0))) for p in profiles]
        for name in params.features
    ]
    matrix = np.array(columns, dtype=float).T.reshape(len(profiles), len(params.features))
    std = matrix.std(axis=0)
    matrix = (matrix - matrix.mean(axis=0)) / np.where(std > 0, std, 1.0)
    matrix = np.clip(matrix, -Z_CLIP, Z_CLIP)
    devices = [
        [1.0 if p.get("device") == d else 0.0 for d in params.segments.devices] for p in profiles
    ]
    return np.hstack([matrix, np.array(devices, dtype=float).reshape(len(profiles), -1)])


def read_profiles(client: redis.Redis, prefix: str, params: ModelParams) -> Profiles:
    """Every stored profile with a cluster segment, in key order (k-means' seeding depends on
    the rows' order, so the same Redis gives the same result)."""
    head = user_key(prefix, "")
    users, segments, stored = [], [], []
    for key in sorted(client.scan_iter(match=f"{head}*", count=1000)):
        raw = {text(k): orjson.loads(v) for k, v in client.hgetall(key).items()}
        if raw.get("segment"):
            users.append(text(key)[len(head) :])
            segments.append(raw["segment"])
            stored.append(raw)
    infos = client.hgetall(segments_key(prefix))
    names = {text(k): orjson.loads(v).get("name", "") for k, v in infos.items()}
    aged = aged_alike(stored, params.horizons)
    matrix = encode(params, aged) if stored else np.zeros((0, len(params.features)))
    return Profiles(users, segments, names, list(params.features), matrix)


def aged_alike(stored: list[dict[str, Any]], horizons: Mapping[str, float]) -> list[dict[str, Any]]:
    """Every profile as it stands at the newest moment any profile is as of (its `aged_to`,
    else its last event): the worker writes an aged profile only when its segments change,
    so stored profiles are as of different days, while the segments they are in are as of
    the last boundary. Batch clusters the users as they are now, as the segments do."""
    if not stored:
        return []
    as_of = [float(p.get("aged_to") or p.get("last_event_ts") or 0.0) for p in stored]
    now = max(as_of)
    return [
        {**p, "features": age_profile(p["features"], now - at, horizons)}
        for p, at in zip(stored, as_of, strict=True)
    ]


def _sample(n: int, size: int) -> np.ndarray:
    rows = sorted(random.Random(SEED).sample(range(n), size)) if n > size else range(n)
    return np.array(rows, dtype=int)


def _silhouette(matrix: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> float:
    sub = labels[rows]
    if len(set(sub.tolist())) < 2:
        return float("nan")
    return float(silhouette_score(matrix[rows], sub))


def _stability(matrix: np.ndarray, k: int) -> float:
    """ARI between k-means fitted on two random halves, both predicting everyone."""
    order = np.random.default_rng(SEED + k).permutation(len(matrix))
    half = len(matrix) // 2
    fits = [
        KMeans(n_clusters=k, n_init=10, random_state=SEED).fit(matrix[part])
        for part in (order[:half], order[half:])
    ]
    return float(adjusted_rand_score(fits[0].predict(matrix), fits[1].predict(matrix)))


def score_ks(matrix: np.ndarray, rows: np.ndarray) -> list[KScore]:
    """Silhouette, Davies-Bouldin and stability of k-means for every k in `KS`."""
    out = []
    for k in KS:
        if k >= len(matrix):
            break
        labels = KMeans(n_clusters=k, n_init=10, random_state=SEED).fit_predict(matrix)
        out.append(
            KScore(
                k,
                _silhouette(matrix, labels, rows),
                float(davies_bouldin_score(matrix, labels)),
                _stability(matrix, k),
            )
        )
    return out


def suggest(scores: list[KScore]) -> int:
    """The best silhouette among the stable k (among all when none is stable)."""
    stable = [s for s in scores if s.stability >= STABLE] or scores
    return max(stable, key=lambda s: (s.silhouette, -s.k)).k


def batch_labels(
    matrix: np.ndarray, k: int, rows: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each method's labels and the rows they cover (everyone, or the sample)."""
    everyone = np.arange(len(matrix))
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=SEED).fit_predict(matrix)
    pca = PCA(n_components=0.9, random_state=SEED).fit_transform(matrix)
    embedded = KMeans(n_clusters=k, n_init=10, random_state=SEED).fit_predict(pca)
    ward = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(matrix[rows])
    size = max(10, len(rows) // 100)
    density = HDBSCAN(min_cluster_size=size, copy=True).fit_predict(matrix[rows])
    return {
        "k-means": (kmeans, everyone),
        "k-means on PCA (90% variance)": (embedded, everyone),
        "agglomerative (Ward)": (ward, rows),
        "HDBSCAN": (density, rows),
    }


def _defining(matrix: np.ndarray, labels: np.ndarray, features: list[str]) -> dict[str, str]:
    """Each batch cluster's three strongest mean deviations (standard deviations)."""
    out = {}
    for cluster in sorted(set(labels.tolist())):
        means = matrix[labels == cluster][:, : len(features)].mean(axis=0)
        strongest = sorted(zip(features, means.tolist(), strict=True), key=lambda fm: -abs(fm[1]))
        out[f"batch:{cluster}"] = ", ".join(f"{f} {m:+.1f}σ" for f, m in strongest[:3])
    return out


def resegment(
    client: redis.Redis,
    prefix: str,
    params: ModelParams,
    sample: int = SAMPLE,
    plot: Path | None = None,
) -> Resegmented | None:
    """Run the check on what Redis holds now and keep the result there; None without at
    least two live segments and `MIN_USERS` users in them (nothing to compare yet). With
    `plot`, also draw it there (`tailor.flows.segment_plots`)."""
    found = read_profiles(client, prefix, params)
    live = Counter(found.segments)
    if len(live) < 2 or len(found.users) < MIN_USERS:
        return None
    matrix, segments = found.matrix, np.array(found.segments)
    rows = _sample(len(matrix), sample)
    scores = score_ks(matrix, rows)
    methods = batch_labels(matrix, len(live), rows)
    agreement = {}
    for name, (labels, covered) in methods.items():
        sampled = rows if len(covered) == len(matrix) else np.arange(len(covered))
        agreement[name] = {
            "clusters": float(len(set(labels.tolist()))),
            "ari_live": float(adjusted_rand_score(segments[covered], labels)),
            "silhouette": _silhouette(matrix[covered], labels, sampled),
        }
    kmeans = methods["k-means"][0]
    confusion: dict[str, dict[str, int]] = {}
    for segment, cluster in zip(found.segments, kmeans.tolist(), strict=True):
        row = confusion.setdefault(f"{segment} {found.names.get(segment, '')}".strip(), {})
        row[f"batch:{cluster}"] = row.get(f"batch:{cluster}", 0) + 1
    result = Resegmented(
        users=len(found.users),
        live=dict(sorted(live.items())),
        k_scores=scores,
        suggested_k=suggest(scores),
        agreement=agreement,
        confusion=confusion,
        clusters=_defining(matrix, kmeans, found.features),
    )
    client.set(resegment_key(prefix), as_json(result))
    if plot is not None:
        from tailor.flows.segment_plots import plot_resegment  # matplotlib only when asked

        plot_resegment(matrix, found.segments, kmeans.tolist(), found.names, found.features, plot)
    return result


def as_json(result: Resegmented) -> bytes:
    return orjson.dumps(asdict(result), option=orjson.OPT_SERIALIZE_NUMPY)


def render(result: Resegmented) -> list[str]:
    """The tables a person reads."""
    lines = [
        f"{result.users:,} users with a live segment, {len(result.live)} live segments; "
        f"suggested number of segments: {result.suggested_k}",
        "",
        "| k | silhouette | Davies-Bouldin | stability |",
        "|---|---|---|---|",
        *(
            f"| {s.k} | {s.silhouette:.3f} | {s.davies_bouldin:.3f} | {s.stability:.3f} |"
            for s in result.k_scores
        ),
        "",
        "| batch method | clusters | ARI with the live segments | silhouette |",
        "|---|---|---|---|",
        *(
            f"| {name} | {a['clusters']:.0f} | {a['ari_live']:.3f} | {a['silhouette']:.3f} |"
            for name, a in result.agreement.items()
        ),
        "",
    ]
    batch = sorted({c for row in result.confusion.values() for c in row})
    lines += [
        "| live segment | " + " | ".join(batch) + " |",
        "|---" * (len(batch) + 1) + "|",
        *(
            f"| {live} | " + " | ".join(str(row.get(c, 0)) for c in batch) + " |"
            for live, row in sorted(result.confusion.items())
        ),
        "",
        *(f"{cluster}: {defining}" for cluster, defining in result.clusters.items()),
    ]
    return lines
