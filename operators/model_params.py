"""The models step's configuration: what a replica is built from, never learned state."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from state.rec_settings import RecSettings
from state.segmenter import DEFAULT_FEATURES

__all__ = ["RULE_CONTEXT_NAMES", "ModelParams"]

#: Names rules may use besides the numeric features.
RULE_CONTEXT_NAMES: tuple[str, ...] = (
    "segment",
    "segment_name",
    "rfm",
    "device",
    "referrer",
    "top_category",
    "last_event_type",
)


@dataclass(frozen=True)
class ModelParams:
    """Configuration of the models step (never learned state)."""

    k: int = 10
    clusterer: str = "KMeans"
    clusterer_params: Mapping[str, Any] | None = None
    features: tuple[str, ...] = DEFAULT_FEATURES  # what the clusterer sees
    profile_features: tuple[str, ...] = DEFAULT_FEATURES  # every profile feature (rules)
    devices: tuple[str, ...] = ("desktop", "mobile", "tablet")
    rules: Mapping[str, str] = field(default_factory=dict)
    recs: RecSettings = field(default_factory=RecSettings)  # the recommenders' settings
    exclude_seen: bool = True
    variant_shares: Mapping[str, float] | None = None  # A/B split (`state.variants`)
    variant_models: Mapping[str, str] | None = None  # variant → recommender
    variant_salt: str = "tailor"
    quality_window: int = 10_000
    max_per_category: int = 0  # diversity cap (0: off)
    seed: int = 42
    learn_every: int = 10
    transforms: Mapping[str, str] | None = None
    warmup: int = 300
    rename_distance: float = 1.0
    publish_every: int = 1000
    drift_every: int = 250
    rfm_sample_size: int = 4096
    reorder_s: float = 0.0
    origins: tuple[str, ...] = ()  # source partitions the event-time order waits for
    #: False when nothing keeps snapshots (recovery off): the replica then makes none.
    snapshots: bool = True
    #: With recovery: reads a base the resumed replica names (`operators.bases`); None
    #: snapshots the models whole, as the single-key models step does.
    base_loader: Callable[[str], bytes | None] | None = None

    @property
    def remote_window(self) -> int:
        """History items a replica's copy of another worker's update keeps: twice the longest
        window a recommender learns from (FISM skips unknown items and repeats of the item)."""
        return 2 * max(self.recs.cooc_window, self.recs.isgd_history)

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"models.k must be >= 1, got {self.k}")
        if self.learn_every < 1:
            raise ValueError(f"segments.learn_every must be >= 1, got {self.learn_every}")
        if self.publish_every < 1:
            raise ValueError(f"segments.publish_every must be >= 1, got {self.publish_every}")

    def rule_names(self) -> tuple[str, ...]:
        """Every name a rule may refer to."""
        return (*dict.fromkeys((*self.profile_features, *self.features)), *RULE_CONTEXT_NAMES)
