"""Behavioural segments: an online River clusterer over a user's numeric features.

Features are heavy-tailed (spend, view counts), so each is compressed with a signed log1p and
then standardised online with `preprocessing.StandardScaler`; the device is one-hot encoded.
Every call feeds the SAME fixed set of dimensions, because River's KMeans invents random centre
values for a name it meets for the first time and CluStream raises on one.

A cluster id alone means nothing to a marketer, so `describe` names a cluster by how its centre
differs from the population in scaled space (where 0 is the population mean and 1 a standard
deviation), e.g. ``"high spend_30d · high views_24h · mobile"``.

>>> seg = Segmenter(features=("spend_30d", "views_24h"))
>>> cluster = seg.learn_predict({"spend_30d": 10.0, "views_24h": 3.0}, "mobile")
>>> isinstance(cluster, int), isinstance(seg.describe(cluster), str)
(True, True)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

from river import preprocessing

from state.clusterers import build_clusterer
from state.user import FEATURE_NAMES

__all__ = ["DEFAULT_FEATURES", "Segmenter"]

#: The profile's numeric features with the default windows (one definition: `state.user`).
DEFAULT_FEATURES: tuple[str, ...] = FEATURE_NAMES

OTHER_DEVICE = "other"
#: A feature joins a cluster's name when its centre is this many std devs from the mean.
Z_THRESHOLD = 0.5
#: A device joins the name when the cluster is mostly that device and clearly more than average.
DEVICE_SHARE = 0.5
DEVICE_LIFT = 0.15
MAX_NAME_PARTS = 3


def _compress(value: float) -> float:
    """Signed log1p: tames heavy tails; non-finite values count as 0."""
    if not math.isfinite(value):
        return 0.0
    return math.copysign(math.log1p(abs(value)), value)


def _expand(value: float) -> float:
    return math.copysign(math.expm1(abs(value)), value)


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
    devices
        Known devices, each one dimension; anything else (or None) is "other".
    seed
        Injected into clusterers that take one.
    """

    def __init__(
        self,
        clusterer: str = "KMeans",
        params: Mapping[str, Any] | None = None,
        features: Sequence[str] = DEFAULT_FEATURES,
        devices: Sequence[str] = ("desktop", "mobile", "tablet"),
        seed: int = 42,
    ) -> None:
        self.clusterer = clusterer
        self.params = dict(params or {})
        self.features = tuple(features)
        self.devices = tuple(devices)
        self.seed = seed
        if not self.features:
            raise ValueError("segmenter needs at least one feature")
        self._device_keys = {d: f"device={d}" for d in (*self.devices, OTHER_DEVICE)}
        self._model = build_clusterer(clusterer, self.params, seed)
        self._probe()
        self._scaler = preprocessing.StandardScaler()
        self._device_counts = dict.fromkeys(self._device_keys, 0)
        self._n = 0

    def _probe(self) -> None:
        """Fail at start-up, not on the first event, when params make the model unusable."""
        trial = copy.deepcopy(self._model)
        x = {**dict.fromkeys(self.features, 0.0), **dict.fromkeys(self._device_keys.values(), 0.0)}
        try:
            for _ in range(2):
                trial.learn_one(x)
                trial.predict_one(x)
        except Exception as err:
            raise ValueError(
                f"clusterer {self.clusterer} with params {self.params!r} fails on a sample: {err!r}"
            ) from err

    def _device(self, device: str | None) -> str:
        return device if device in self._device_keys else OTHER_DEVICE

    def _numeric(self, features: Mapping[str, float]) -> dict[str, float]:
        return {name: _compress(float(features.get(name, 0.0) or 0.0)) for name in self.features}

    def _vector(self, numeric: dict[str, float], device: str) -> dict[str, float]:
        x = self._scaler.transform_one(numeric)
        for d, key in self._device_keys.items():
            x[key] = 1.0 if d == device else 0.0
        return x

    def learn_predict(self, features: Mapping[str, float], device: str | None) -> int:
        """Learn from one user's current features, then return their cluster id."""
        numeric = self._numeric(features)
        dev = self._device(device)
        self._scaler.learn_one(numeric)
        self._device_counts[dev] += 1
        self._n += 1
        x = self._vector(numeric, dev)
        learn_predict = getattr(self._model, "learn_predict_one", None)
        if learn_predict is not None:  # KMeans: one distance pass instead of two
            return int(learn_predict(x))
        self._model.learn_one(x)
        return int(self._model.predict_one(x))

    def predict(self, features: Mapping[str, float], device: str | None) -> int:
        """Cluster id for a user without learning (0 before anything was learned)."""
        if self._n == 0:
            return 0
        x = self._vector(self._numeric(features), self._device(device))
        return int(self._model.predict_one(x))

    def _centre(self, cluster_id: int) -> dict[str, float]:
        """The cluster centre in scaled space, or {} when the model has no such centre."""
        centers = getattr(self._model, "centers", None)
        if not isinstance(centers, Mapping) or cluster_id not in centers:
            return {}
        centre = centers[cluster_id]
        return {key: float(centre[key]) for key in self._dims() if key in centre}

    def _dims(self) -> tuple[str, ...]:
        return (*self.features, *self._device_keys.values())

    def centroid(self, cluster_id: int) -> dict[str, float]:
        """Centre in feature units (log and scaling undone) plus device shares; {} if unknown."""
        centre = self._centre(cluster_id)
        out: dict[str, float] = {}
        for name in self.features:
            if name in centre:
                std = math.sqrt(self._scaler.vars.get(name, 0.0))
                log_value = centre[name] * std + self._scaler.means.get(name, 0.0)
                out[name] = round(_expand(log_value), 6) + 0.0  # no -0.0 in output
        for key in self._device_keys.values():
            if key in centre:
                out[key] = round(centre[key], 6) + 0.0
        return out

    def describe(self, cluster_id: int) -> str:
        """A readable name: the 2–3 strongest deviations from the population, else "typical"."""
        centre = self._centre(cluster_id)
        if not centre:
            return "typical"
        device = self._dominant_device(centre)
        scored = [
            (abs(centre[n]), n) for n in self.features if abs(centre.get(n, 0.0)) >= Z_THRESHOLD
        ]
        scored.sort(key=lambda zn: (-zn[0], zn[1]))
        room = MAX_NAME_PARTS - (1 if device else 0)
        parts = [f"{'high' if centre[n] > 0 else 'low'} {n}" for _, n in scored[:room]]
        if device:
            parts.append(device)
        return " · ".join(parts) if parts else "typical"

    def _dominant_device(self, centre: Mapping[str, float]) -> str | None:
        best: tuple[float, str] | None = None
        for d, key in self._device_keys.items():
            share = centre.get(key, 0.0)
            population = self._device_counts[d] / self._n if self._n else 0.0
            strong = share >= DEVICE_SHARE and share - population >= DEVICE_LIFT
            if strong and (best is None or share > best[0]):
                best = (share, d)
        return best[1] if best else None

    @property
    def n_learned(self) -> int:
        """Updates learned so far."""
        return self._n
