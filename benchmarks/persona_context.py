"""The personas with a context mix: does giving the clusterer time, device and channel shares
keep (or improve) the segments it finds?

    python -m benchmarks.persona_context [--n 20000] [--seeds 3]

Each persona (`benchmarks.personas`) gets a context of its own: a typical local hour and its
spread, a weekend propensity, and channel shares (its device shares are the persona's own).
Each user's context features come from the real `tailor.state.profile.context.ContextMix` fed with
synthetic events (as many as the user's sessions times events per session, 3 to 60), drawn from a
separate seeded generator, so the behavioural features are exactly `personas`' own. Then the
default Segmenter learns the stream and re-predicts held-out users, once on the behavioural
features (the default), once with the context mix added, and once with a context mix that is
the same for every persona (devices included: dimensions that carry only noise); batch
k-means on the same features is the reference.
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from benchmarks.personas import DEVICES, PERSONAS, PersonaPoint, personas
from benchmarks.segment_scores import HELD_OUT_SEED_OFFSET, held_out_ari
from tailor.state.profile.context import CHANNELS, CONTEXT_FEATURES, ContextMix
from tailor.state.profile.event import Event
from tailor.state.profile.user import FEATURE_NAMES
from tailor.state.segments.segmenter import TRANSFORMS, Segmenter, default_transforms

MONDAY = 1_704_067_200.0  # 2024-01-01 00:00 UTC
DAY = 86400.0


@dataclass(frozen=True)
class PersonaContext:
    hour: float  # typical local hour
    spread: float  # its standard deviation, hours
    weekend: float  # probability that an event is on a Saturday or Sunday
    channels: tuple[float, ...]  # P(channel) in `CHANNELS` order


#: By persona name: bouncers come in the evening from social and ads, researchers in office
#: hours from search, loyal customers by email and directly, bargain hunters at weekends from
#: ads and email, lapsed customers at any time, mostly directly.
CONTEXTS = {
    "bouncing mobile visitor": PersonaContext(21.0, 2.5, 0.35, (0.1, 0.15, 0.45, 0.0, 0.3, 0.0)),
    "researching desktop browser": PersonaContext(
        14.0, 2.5, 0.15, (0.2, 0.6, 0.05, 0.0, 0.0, 0.15)
    ),
    "big-spending loyal customer": PersonaContext(9.0, 3.0, 0.25, (0.5, 0.1, 0.0, 0.35, 0.0, 0.05)),
    "bargain hunter": PersonaContext(12.0, 4.0, 0.6, (0.15, 0.15, 0.1, 0.25, 0.35, 0.0)),
    "lapsed customer": PersonaContext(15.0, 6.0, 0.3, (0.6, 0.2, 0.05, 0.1, 0.0, 0.05)),
}


#: One context for everyone, devices included: context features that carry no signal.
SHARED = PersonaContext(15.0, 5.0, 0.3, (0.3, 0.25, 0.15, 0.1, 0.1, 0.1))


def with_context(
    points: Sequence[PersonaPoint], seed: int, shared: bool = False
) -> list[PersonaPoint]:
    """The same users with their context features added (a generator of its own); with
    `shared`, every persona's context (and device mix) is the same: pure noise dimensions."""
    rng = random.Random(seed * 7919 + 1)
    out = []
    for point in points:
        persona = PERSONAS[point.label]
        ctx = SHARED if shared else CONTEXTS[persona.name]
        devices = (1.0, 1.0, 1.0) if shared else persona.devices
        sessions = point.features["session_count"] * point.features["avg_session_events"]
        mix = ContextMix()
        for i in range(min(60, max(3, round(sessions)))):
            day = rng.choice((5, 6)) if rng.random() < ctx.weekend else rng.randrange(5)
            hour = rng.gauss(ctx.hour, ctx.spread) % 24
            ts = MONDAY + rng.randrange(52) * 7 * DAY + day * DAY + hour * 3600
            device = rng.choices(DEVICES, weights=devices)[0]
            channel = rng.choices(CHANNELS, weights=ctx.channels)[0]
            mix.update(Event(str(i), "u", "page_view", ts, device=device, referrer=channel))
        out.append(PersonaPoint(point.label, {**point.features, **mix.features()}, point.device))
    return out


def batch_ari(
    train: Sequence[PersonaPoint], test: Sequence[PersonaPoint], features: Sequence[str], seed: int
) -> float:
    """Batch KMeans(n_init=10) on the Segmenter's transforms of `features`, standardised on
    `train`, devices one-hot."""
    transforms = default_transforms(features)

    def matrix(points: Sequence[PersonaPoint]) -> np.ndarray:
        return np.array(
            [[TRANSFORMS[transforms[f]][0](p.features[f]) for f in features] for p in points]
        )

    fit, use = matrix(train), matrix(test)
    std = fit.std(axis=0)
    scale = np.where(std > 0, std, 1.0)

    def full(m: np.ndarray, points: Sequence[PersonaPoint]) -> np.ndarray:
        hot = np.array([[1.0 if p.device == d else 0.0 for d in DEVICES] for p in points])
        return np.hstack([(m - fit.mean(axis=0)) / scale, hot])

    model = KMeans(n_clusters=len(PERSONAS), n_init=10, random_state=seed)
    model.fit(full(fit, train))
    return float(adjusted_rand_score([p.label for p in test], model.predict(full(use, test))))


def online_ari(
    train: Sequence[PersonaPoint], test: Sequence[PersonaPoint], features: Sequence[str], seed: int
) -> float:
    seg = Segmenter(features=tuple(features), seed=seed)
    for p in train:
        seg.learn_predict(p.features, p.device)
    return held_out_ari(seg, test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    context = FEATURE_NAMES + CONTEXT_FEATURES
    runs = {
        "behavioural (default)": (FEATURE_NAMES, False),
        "behavioural + context mix, a context per persona": (context, False),
        "behavioural + context mix, one context for all (noise)": (context, True),
    }
    scores: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for seed in range(args.seeds):
        base = personas(args.n, seed)
        fresh = personas(2000, seed + HELD_OUT_SEED_OFFSET)
        for name, (features, shared) in runs.items():
            train = with_context(base, seed, shared)
            test = with_context(fresh, seed + HELD_OUT_SEED_OFFSET, shared)
            online = online_ari(train, test, features, seed)
            scores[name].append((online, batch_ari(train, test, features, seed)))
    print(f"{args.n:,} users per stream, {args.seeds} seeds, 2,000 held-out users each")
    print("| features | online held-out ARI (mean, min) | batch k-means ARI |")
    print("|---|---|---|")
    for name, rows in scores.items():
        online = [r[0] for r in rows]
        batch = [r[1] for r in rows]
        print(
            f"| {name} | {statistics.fmean(online):.3f}, {min(online):.3f} "
            f"| {statistics.fmean(batch):.3f} |"
        )


if __name__ == "__main__":
    main()
