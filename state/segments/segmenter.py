"""Behavioural segments: an online River clusterer over a user's numeric features.

Features are encoded (`tailor.state.segments.feature_encoding`), standardised over a sample of users
(`tailor.state.segments.profile_sample`), clipped, and the device one-hot; every call feeds the same
fixed dimensions (River's KMeans invents random values for a new name, CluStream raises). `refit`
re-seeds the segments from batch k-means on that sample (`tailor.state.segments.refit`). Users get
stable *segments* over River's unstable raw ids (`tailor.state.segments.registry`), each with a
readable, unique name (`tailor.state.segments.names`).

>>> seg = Segmenter(features=("spend_30d",), params={"n_clusters": 2, "warmup": 20}, warmup=20)
>>> users = [({"spend_30d": 500.0 + i}, "mobile") if i % 2 else ({"spend_30d": i % 5}, "desktop")
...          for i in range(40)]
>>> segments = [seg.learn_segment(features, device) for features, device in users]
>>> segments[:2], segments[-2:]
([None, None], [1, 0])
>>> seg.names
{0: 'big spenders · mobile', 1: 'small spenders · desktop'}
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from river import preprocessing

from tailor.state.profile.user import FEATURE_NAMES
from tailor.state.segments.clusterers import (
    CLUSTERER_DEFAULTS,
    OrderedKMeans,
    build_clusterer,
    probe,
    replace_centres,
)
from tailor.state.segments.feature_encoding import TRANSFORMS, clip_z, default_transforms
from tailor.state.segments.names import (
    MAX_NAME_PARTS,
    TYPICAL,
    SegmentNamer,
    describe,
    dominant_device,
)
from tailor.state.segments.profile_sample import ProfileSample, age_profile
from tailor.state.segments.refit import refit_centres
from tailor.state.segments.registry import SegmentRegistry

__all__ = ["DEFAULT_FEATURES", "TRANSFORMS", "Segmenter", "default_transforms"]

#: The profile's numeric features with the default windows (one definition:
#: `tailor.state.profile.user`).
DEFAULT_FEATURES: tuple[str, ...] = FEATURE_NAMES

OTHER_DEVICE = "other"


class Segmenter:
    """Online clustering of users into behavioural segments.

    Parameters
    ----------
    clusterer
        Name of a `river.cluster` class: KMeans, STREAMKMeans, DBSTREAM, CluStream, DenStream.
    params
        Constructor params, merged over `CLUSTERER_DEFAULTS[clusterer]`.
    features
        The numeric feature names, in a fixed order; missing ones count as 0.
    transforms
        Feature name -> a `TRANSFORMS` key; features not named get `default_transforms`.
    devices
        Known devices, each one dimension; anything else (or None) is "other".
    seed
        Injected into clusterers that take one, and seeds the segment numbering.
    warmup
        Learned users before segments exist (`tailor.state.segments.registry`).
    rename_distance, sample_size, refit_min_changes
        See `tailor.state.segments.names`, `tailor.state.segments.profile_sample` and `refit`.
    """

    def __init__(
        self,
        clusterer: str = "KMeans",
        params: Mapping[str, Any] | None = None,
        features: Sequence[str] = DEFAULT_FEATURES,
        devices: Sequence[str] = ("desktop", "mobile", "tablet"),
        seed: int = 42,
        transforms: Mapping[str, str] | None = None,
        warmup: int = 300,
        rename_distance: float = 1.0,
        sample_size: int = 4096,
        refit_min_changes: int | None = None,
    ) -> None:
        self.clusterer = clusterer
        self.params = dict(params or {})
        self.features = tuple(features)
        self.devices = tuple(devices)
        self.seed = seed
        if not self.features:
            raise ValueError("segmenter needs at least one feature")
        self.transforms = {**default_transforms(self.features), **dict(transforms or {})}
        unknown = sorted(set(self.transforms) - set(self.features))
        if unknown:
            raise ValueError(f"transforms for features the segmenter does not use: {unknown}")
        bad = sorted(f for f, t in self.transforms.items() if t not in TRANSFORMS)
        if bad:
            raise ValueError(f"unknown transform for {bad}: choose one of {sorted(TRANSFORMS)}")
        self._forward = [(f, TRANSFORMS[self.transforms[f]][0]) for f in self.features]
        self._device_keys = {d: f"device={d}" for d in (*self.devices, OTHER_DEVICE)}
        self._model = build_clusterer(clusterer, self._with_warmup(warmup), seed)
        label = f"clusterer {clusterer} with params {self.params!r}"
        probe(self._model, (*self.features, *self._device_keys.values()), label)
        self._scaler = ProfileSample(self.features, sample_size, seed)
        #: A format-4 model's own scaler, used until the sample holds `warmup` users.
        self._fallback: preprocessing.StandardScaler | None = None
        self._points = 0  # learn points without a user, each sampled as a user of its own
        self.refits = 0
        self._refit_changes = 0  # the sample's `changes` at the last re-fit
        #: Sample changes a re-fit waits for (default: an eighth of the sample).
        self.refit_min_changes = refit_min_changes or max(1, sample_size // 8)
        self._device_counts = dict.fromkeys(self._device_keys, 0)
        self._n = 0
        # Segments start once the clusterer has warmed up too (WarmKMeans seeds its centres
        # with k-means++ after its own warm-up): numbering earlier centres would be noise.
        warmup = max(warmup, int(getattr(self._model, "warmup", 0) or 0))
        self.registry = SegmentRegistry(warmup, seed=seed)
        #: The last learned point in scaled space (`_dims` order), for quality measures.
        self.last_point: list[float] = []
        self.namer = SegmentNamer(rename_distance)

    def _with_warmup(self, warmup: int) -> dict[str, Any]:
        """The params, with our warm-up for a clusterer that has one, unless set explicitly:
        one knob (`segments.warmup`) for when the clusterer settles and segments begin."""
        defaults = CLUSTERER_DEFAULTS.get(self.clusterer, {})
        if "warmup" not in defaults:
            return dict(self.params)
        k = int(self.params.get("n_clusters", defaults.get("n_clusters", 1)))
        return {"warmup": warmup if warmup >= k else 0, **self.params}  # too few: no warm start

    def _device(self, device: str | None) -> str:
        return device if device in self._device_keys else OTHER_DEVICE

    def _numeric(self, features: Mapping[str, float]) -> dict[str, float]:
        return {name: fwd(float(features.get(name, 0.0) or 0.0)) for name, fwd in self._forward}

    def _vector(self, numeric: dict[str, float], device: str) -> dict[str, float]:
        x = {f: clip_z(v) for f, v in self._standardiser().transform_one(numeric).items()}
        for d, key in self._device_keys.items():
            x[key] = 1.0 if d == device else 0.0
        return x

    def _standardiser(self) -> ProfileSample | preprocessing.StandardScaler:
        return self._scaler if self._fallback is None else self._fallback

    def _learn(
        self, features: Mapping[str, float], device: str | None, user: str | None, ts: float
    ) -> dict[str, float]:
        """Update scaler and device counts; the point in scaled space, ready for the model."""
        numeric = self._numeric(features)
        dev = self._device(device)
        if user is None:
            self._points += 1
            user = f"\x00point:{self._points}"
        self._scaler.learn_one(user, numeric, features, device, ts)
        if self._fallback is not None:
            self._fallback.learn_one(numeric)
            if len(self._scaler) >= self.registry.warmup:
                self._fallback = None
        self._device_counts[dev] += 1
        self._n += 1
        return self._vector(numeric, dev)

    def _learn_raw(self, x: dict[str, float]) -> int:
        learn_predict = getattr(self._model, "learn_predict_one", None)
        if learn_predict is not None:  # KMeans: one distance pass instead of two
            return int(learn_predict(x))
        self._model.learn_one(x)
        return int(self._model.predict_one(x))

    def learn_predict(
        self,
        features: Mapping[str, float],
        device: str | None,
        user: str | None = None,
        ts: float = 0.0,
    ) -> int:
        """Learn from one user's current features; the clusterer's own (raw) cluster id."""
        return self._learn_raw(self._learn(features, device, user, ts))

    def predict(self, features: Mapping[str, float], device: str | None) -> int:
        """The clusterer's raw cluster id without learning (0 before anything was learned)."""
        if self._n == 0:
            return 0
        x = self._vector(self._numeric(features), self._device(device))
        return int(self._model.predict_one(x))

    def sample(
        self, features: Mapping[str, float], device: str | None, user: str, ts: float
    ) -> None:
        """A user's newer profile for the sample only (a learn point the clusterer skips:
        an RFM purchase point), so the scaler and re-fits see users as they stand."""
        self._scaler.learn_one(user, self._numeric(features), features, device, ts)

    def forget(self, user: str) -> None:
        """Erasure: the user leaves the sample."""
        self._scaler.forget(user)

    def refit(
        self, now: float, horizons: Mapping[str, float], min_share: float
    ) -> list[int] | None:
        """Re-seed the segments from batch k-means on the sample aged to `now`; the segments
        retired, or None without a re-fit: not for River's other clusterers (they rebuild
        their own centres), in the warm-up, nor before `refit_min_changes` sample changes
        (a sparse backfill crosses many boundaries with little new: decision 0012)."""
        if not isinstance(self._model, OrderedKMeans) or not self.registry.ready:
            return None
        k = int(self._model.n_clusters)
        fresh = self._scaler.changes - self._refit_changes
        if fresh < self.refit_min_changes or self._fallback is not None:
            return None
        profiles = self._scaler.profiles()
        if len(profiles) < k:
            return None
        self._refit_changes = self._scaler.changes
        aged = [self._numeric(age_profile(p.features, now - p.ts, horizons)) for p in profiles]
        self._scaler.fix(aged)
        dims = self._dims()
        pairs = zip(aged, profiles, strict=True)
        vectors = (self._vector(n, self._device(p.device)) for n, p in pairs)
        points = np.array([[x[d] for d in dims] for x in vectors], dtype=float)
        self.refits += 1
        restarts = int(getattr(self._model, "restarts", 10))
        centres = refit_centres(points, k, min_share, restarts, self.seed + self.refits)
        retired = self.registry.reseed(centres.tolist())
        binding = self.registry.bind(sorted(self._model.centers))
        anchors = {raw: self.registry.anchors[s] for raw, s in binding.items()}
        replace_centres(
            self._model, {r: dict(zip(dims, a, strict=True)) for r, a in anchors.items()}
        )
        for segment in retired:
            self.namer.forget(segment)
        for segment in sorted(self.registry.anchors):
            self._rename(segment)
        return retired

    def learn_segment(
        self,
        features: Mapping[str, float],
        device: str | None,
        user: str | None = None,
        ts: float = 0.0,
    ) -> int | None:
        """Learn from one user's features (at event time `ts`); their stable segment (None
        during the warm-up). A point without a `user` is sampled as a user of its own.

        Names are refreshed for the segment that moved, so `names` always covers every
        segment handed out.
        """
        x = self._learn(features, device, user, ts)
        raw = self._learn_raw(x)
        dims = self._dims()
        point = self.last_point = [x[k] for k in dims]
        token = getattr(self._model, "centers", None)
        segment = self.registry.learn(raw, point, self._raw_centres, token)
        if self.registry.learned == self.registry.warmup:
            for s in sorted(self.registry.anchors):
                self._rename(s)
        elif segment is not None:
            self._rename(segment)
        # A user belongs to the nearest anchor (the published centroid: what a consumer
        # reads is what assigns); anchors are smoothed, so this does not jump per point.
        return None if segment is None else self.registry.nearest(point)

    def segment(self, features: Mapping[str, float], device: str | None) -> int | None:
        """A user's stable segment without learning; None during the warm-up."""
        if not self.registry.ready:
            return None
        x = self._vector(self._numeric(features), self._device(device))
        return self.registry.nearest([x[k] for k in self._dims()])

    def _raw_centres(self) -> dict[int, list[float]]:
        """The clusterer's centres as vectors in `_dims` order (missing dimensions count 0)."""
        centers = getattr(self._model, "centers", None)
        if not isinstance(centers, Mapping):
            return {}
        dims = self._dims()
        return {int(c): [float(v.get(k, 0.0)) for k in dims] for c, v in centers.items()}

    def _rename(self, segment: int) -> bool:
        anchor = self.registry.anchors[segment]
        return self.namer.update(segment, anchor, lambda parts: self.describe(segment, parts))

    @property
    def names(self) -> dict[int, str]:
        """Segment number → readable name, unique (see `tailor.state.segments.names`)."""
        return self.namer.names

    def _dims(self) -> tuple[str, ...]:
        return (*self.features, *self._device_keys.values())

    def _anchor(self, segment: int) -> dict[str, float]:
        """A segment's anchor by dimension name (scaled space); {} for an unknown segment."""
        anchor = self.registry.anchors.get(segment)
        if anchor is None:
            return {}
        return dict(zip(self._dims(), anchor, strict=True))

    def centroid(self, segment: int) -> dict[str, float]:
        """Anchor in feature units (transform and scaling undone) plus device shares."""
        centre = self._anchor(segment)
        out: dict[str, float] = {}
        scaler = self._standardiser()
        for name in self.features:
            if name in centre:
                std = math.sqrt(scaler.vars.get(name, 0.0))
                encoded = centre[name] * std + scaler.means.get(name, 0.0)
                inverse = TRANSFORMS[self.transforms[name]][1]
                out[name] = round(inverse(encoded), 6) + 0.0  # no -0.0 in output
        for key in self._device_keys.values():
            if key in centre:
                out[key] = round(centre[key], 6) + 0.0
        return out

    def zscores(self, segment: int) -> dict[str, float]:
        """How far the segment's anchor is from the population, per feature, in std devs."""
        centre = self._anchor(segment)
        return {name: round(centre[name], 6) + 0.0 for name in self.features if name in centre}

    def describe(self, segment: int, max_parts: int = MAX_NAME_PARTS) -> str:
        """A readable description of a segment's anchor (not deduplicated: see `names`)."""
        centre = self._anchor(segment)
        if not centre:
            return TYPICAL
        z = {name: centre[name] for name in self.features}
        shares = {d: centre.get(key, 0.0) for d, key in self._device_keys.items()}
        n = self._n or 1
        population = {d: count / n for d, count in self._device_counts.items()}
        return describe(z, dominant_device(shares, population), max_parts)

    def model_params(self) -> dict[str, Any]:
        """The clusterer's settings as used: its defaults with the configured params over them."""
        return {
            **CLUSTERER_DEFAULTS.get(self.clusterer, {}),
            **self._with_warmup(self.registry.warmup),
        }

    @property
    def n_learned(self) -> int:
        """Updates learned so far."""
        return self._n

    def to_snapshot(self) -> dict[str, Any]:
        """Settings, device counts, registry and names as plain data; the River clusterer and
        scaler pickled, as River documents for saving its models: their internals (centres,
        running moments, a warm start's buffer, seeded generators) are River's to lay out,
        and copying them field by field would break at River's next release. The registry's
        token (the clusterer's centres object, compared to know when they were rebuilt)
        travels in the same pickle, so it is the same object after a resume."""
        token = self.registry._token
        river = pickle.dumps((self._model, self._fallback, token), pickle.HIGHEST_PROTOCOL)
        settings = ("clusterer", "params", "features", "devices", "seed", "transforms")
        return {name: getattr(self, name) for name in settings} | {
            "river": river,
            "sample": self._scaler.to_snapshot(),
            "points": self._points,
            "refits": self.refits,
            "refit_changes": self._refit_changes,
            "refit_min_changes": self.refit_min_changes,
            "device_counts": dict(self._device_counts),
            "n": self._n,
            "registry": self.registry.to_snapshot(),
            "last_point": list(self.last_point),
            "namer": self.namer.to_snapshot(),
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> Segmenter:
        registry = data["registry"]
        made = cls(
            data["clusterer"],
            data["params"],
            data["features"],
            data["devices"],
            data["seed"],
            transforms=data["transforms"],
            warmup=registry["warmup"],
            refit_min_changes=data["refit_min_changes"],
        )
        made._model, made._fallback, token = pickle.loads(data["river"])  # our own store
        if data["sample"] is not None:  # None: a format-4 model, its scaler the fallback
            made._scaler = ProfileSample.from_snapshot(data["sample"])
        made._points, made.refits = data["points"], data["refits"]
        made._refit_changes = data["refit_changes"]
        made._device_counts = dict(data["device_counts"])
        made._n = data["n"]
        made.registry = SegmentRegistry.from_snapshot(registry, token)
        made.last_point = list(data["last_point"])
        made.namer = SegmentNamer.from_snapshot(data["namer"])
        return made
