"""The models step's configuration: what a replica is built from, never learned state."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from tailor.flows.settings import RecsSettings, SegmentsSettings
from tailor.state.recs.settings import RecSettings

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
    """Configuration of the models step (never learned state): the `[segments]` and `[recs]`
    sections whole, the feature names the `[state]` windows give, and what only the running
    flow knows. `tailor.flows.worker.model_params` builds it from the settings tree; the settings
    have no defaults here, the fields that are no setting do."""

    segments: SegmentsSettings
    recs: RecsSettings
    features: tuple[str, ...]  # what the clusterer sees
    profile_features: tuple[str, ...]  # every profile feature (rules may name any)
    #: Feature → the age past which it reads 0 (`tailor.state.profile.user.feature_horizons`, from
    #: `[state]`).
    horizons: Mapping[str, float] = field(default_factory=dict)
    #: Cadences of the segment quality checks: internal, no setting.
    drift_every: int = 250
    rfm_sample_size: int = 4096
    origins: tuple[str, ...] = ()  # source partitions the event-time order waits for
    #: False when nothing keeps snapshots (recovery off): the replica then makes none.
    snapshots: bool = True
    #: With recovery: reads a base the resumed replica names (`tailor.operators.bases`); None
    #: snapshots the models whole, as the single-key models step does.
    base_loader: Callable[[str], bytes | None] | None = None

    @cached_property
    def rec_settings(self) -> RecSettings:
        """The recommenders' settings (`tailor.state.recs.settings`), seeded by `segments.seed`."""
        return RecSettings.of(self.recs, self.segments.seed)

    @property
    def transforms(self) -> dict[str, str] | None:
        """`[segments.features]`: feature → encoding, None for the default choice."""
        return dict(self.segments.features) or None

    @property
    def remote_window(self) -> int:
        """History items a replica's copy of another worker's update keeps: twice the longest
        window a recommender learns from (FISM skips unknown items and repeats of the item)."""
        return 2 * max(self.recs.cooc_window, self.recs.isgd_history)

    def __post_init__(self) -> None:
        if self.recs.k < 1:
            raise ValueError(f"recs.k must be >= 1, got {self.recs.k}")
        segments = self.segments
        if segments.learn_every < 1:
            raise ValueError(f"segments.learn_every must be >= 1, got {segments.learn_every}")
        if segments.publish_every < 1:
            raise ValueError(f"segments.publish_every must be >= 1, got {segments.publish_every}")

    def rule_names(self) -> tuple[str, ...]:
        """Every name a rule may refer to."""
        return (*dict.fromkeys((*self.profile_features, *self.features)), *RULE_CONTEXT_NAMES)
