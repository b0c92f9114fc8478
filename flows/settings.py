"""The settings tree: one frozen dataclass per section of `defaults.toml`, and `Settings` over them.

`tailor.flows.config.load_config` validates the TOML and the environment and returns a `Settings`;
each step receives the sections it reads whole. No field has a default: `defaults.toml` is the
only place a default lives, and `settings_from` refuses values whose keys differ from the
fields, so a key added to the file without a field (or the other way round) fails at start-up.
Lists become tuples and sub-tables `Table`s, so nothing in the tree can change after loading.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, get_type_hints

from tailor.operators.redis.redact import redact_url
from tailor.state.profile.event import parse_ts

__all__ = [
    "SECRET_ENV",
    "ClusterSettings",
    "ConfigError",
    "MetricsSettings",
    "OutputSettings",
    "PrivacySettings",
    "RecoverySettings",
    "RecsSettings",
    "RedisSettings",
    "SegmentsSettings",
    "ServeSettings",
    "Settings",
    "SourceSettings",
    "StateSettings",
    "Table",
    "ValidationSettings",
    "frozen",
    "section_types",
    "settings_from",
]

#: Where the pseudonym key lives: the environment, never the config file (see README).
SECRET_ENV = "TAILOR_PSEUDONYM_SECRET"

V = TypeVar("V")


class ConfigError(ValueError):
    """A setting is wrong; the message names the key so the user can fix it."""


class Table(Mapping[str, V]):
    """A read-only TOML sub-table (`[recs.hybrid_weights]`, `[segments.rules]`, ...).

    Unlike `types.MappingProxyType` it pickles (as a plain dict: models that keep the mapping
    they were given snapshot it like any other dict); a copy is the table itself.

    >>> weights = Table({"cooc": 1.0})
    >>> weights["cooc"], weights == {"cooc": 1.0}, dict(weights)
    (1.0, True, {'cooc': 1.0})
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, V] | None = None) -> None:
        self._items: dict[str, V] = dict(items or {})

    def __getitem__(self, key: str) -> V:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return repr(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __reduce__(self) -> tuple[type[dict[str, V]], tuple[dict[str, V]]]:
        return dict, (dict(self._items),)

    def __copy__(self) -> Table[V]:
        return self  # immutable, like a tuple

    def __deepcopy__(self, memo: dict[int, Any]) -> Table[V]:
        return self


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """`[redis]`: where Redis is and the prefix of every key."""

    url: str
    prefix: str

    def __repr__(self) -> str:
        """Without the password: settings end up in log lines and tracebacks."""
        return f"RedisSettings(url={redact_url(self.url)!r}, prefix={self.prefix!r})"


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """`[source]`: the event streams (or files) and how they are read."""

    kind: str
    partitions: int
    batch_size: int
    batch_max_bytes: int
    poll_interval_s: float
    stop_when_drained: bool
    replay_paths: tuple[str, ...]
    replay_adapter: str


@dataclass(frozen=True, slots=True)
class ValidationSettings:
    """`[validation]`: what an event must be to be accepted."""

    max_payload_bytes: int
    too_large_prefix_bytes: int
    max_future_s: float
    min_ts: str
    event_types: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StateSettings:
    """`[state]`: the per-user state step."""

    session_gap_s: float
    windows_s: tuple[int, ...]
    rfm_window_s: float
    interest_halflife_s: float
    top_categories: int
    history_len: int
    max_purchased: int
    allowed_lateness_s: float
    dedup_horizon_s: float
    ttl_s: float
    age_every_s: float


@dataclass(frozen=True, slots=True)
class SegmentsSettings:
    """`[segments]` with its tables: the clusterer, its features and the rule segments."""

    clusterer: str
    devices: tuple[str, ...]
    seed: int
    learn_every: int
    warmup: int
    reorder_s: float
    rename_distance: float
    publish_every: int
    refit_every_s: float
    sample_size: int
    min_share: float
    features: Table[str]
    params: Table[Any]
    rules: Table[str]


@dataclass(frozen=True, slots=True)
class RecsSettings:
    """`[recs]` with its tables: the recommenders, the hybrid and the A/B variants."""

    k: int
    cooc_max_neighbors: int
    cooc_window: int
    cooc_alpha: float
    trending_halflife_s: float
    isgd_factors: int
    isgd_learning_rate: float
    isgd_regularization: float
    isgd_negatives: int
    isgd_init_std: float
    isgd_bias_learning_rate: float
    isgd_alpha: float
    isgd_history: int
    exclude_seen: bool
    hybrid_depth: int
    hybrid_c: float
    hybrid_fallback: tuple[str, ...]
    hybrid_select: bool
    hybrid_probe_every: int
    hybrid_warm_probes: int
    max_per_category: int
    quality_window: int
    variant_salt: str
    fallback_length: int
    fallback_every_s: float
    variant_shares: Table[float]
    variant_models: Table[str]
    hybrid_weights: Table[float]
    event_weights: Table[int]


@dataclass(frozen=True, slots=True)
class OutputSettings:
    """`[output]`: the Redis sinks."""

    updates_maxlen: int
    deadletter_maxlen: int
    write_max_attempts: int
    write_backoff_cap_s: float
    heartbeat_every_s: float
    recs_ttl_s: int


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """`[cluster]`: the Bytewax processes and their workers."""

    workers_per_process: int
    addresses: tuple[str, ...]
    process_id: int


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """`[metrics]`: the Prometheus endpoint."""

    port: int


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """`[serve]`: the HTTP API (`tailor serve`)."""

    host: str
    port: int
    heartbeat_max_age_s: float
    fallbacks: tuple[str, ...]
    max_items: int
    page_size: int
    segments_cache_s: float
    redis_connections: int
    redis_timeout_s: float


@dataclass(frozen=True, slots=True)
class PrivacySettings:
    """`[privacy]`: pseudonymous user ids."""

    pseudonymize: bool


@dataclass(frozen=True, slots=True)
class RecoverySettings:
    """`[recovery]`: Bytewax's recovery store."""

    enabled: bool
    dir: str
    snapshot_interval_s: float
    partitions: int


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, validated: one field per section of `defaults.toml`."""

    redis: RedisSettings
    source: SourceSettings
    validation: ValidationSettings
    state: StateSettings
    segments: SegmentsSettings
    recs: RecsSettings
    output: OutputSettings
    cluster: ClusterSettings
    metrics: MetricsSettings
    serve: ServeSettings
    privacy: PrivacySettings
    recovery: RecoverySettings

    def with_value(self, section: str, key: str, value: Any) -> Settings:
        """A copy with one setting changed, lists and tables frozen (for settings named by
        strings, e.g. a benchmark's `section.key=value`; code names the fields instead:
        `dataclasses.replace(settings, source=dataclasses.replace(settings.source, ...))`)."""
        table = dataclasses.replace(getattr(self, section), **{key: frozen(value)})
        return dataclasses.replace(self, **{section: table})

    @property
    def redis_url(self) -> str:
        return self.redis.url

    @property
    def shown_redis_url(self) -> str:
        """`redis_url` as it may be printed or logged: its password replaced by ***."""
        return redact_url(self.redis.url)

    @property
    def prefix(self) -> str:
        return self.redis.prefix

    @property
    def workers(self) -> int:
        """Bytewax workers in the whole cluster: processes (`cluster.addresses`, none is one)
        times `cluster.workers_per_process`. Routing to replicas depends on it, so
        `python -m bytewax.run -w/-a` users set the same here (or TAILOR_CLUSTER_*); the
        flow checks it when it starts (`tailor.operators.redis.routing.WorkerCountCheck`)."""
        return max(1, len(self.cluster.addresses)) * self.cluster.workers_per_process

    @property
    def min_ts(self) -> float:
        """`validation.min_ts` in epoch seconds."""
        return parse_ts(self.validation.min_ts)

    def pseudonym_secret(self, env: Mapping[str, str] | None = None) -> bytes | None:
        """The HMAC key when `privacy.pseudonymize` is on (from the environment only)."""
        if not self.privacy.pseudonymize:
            return None
        secret = (os.environ if env is None else env).get(SECRET_ENV, "")
        if not secret:
            raise ConfigError(f"privacy.pseudonymize: set the secret in {SECRET_ENV}")
        return secret.encode("utf-8")


def section_types() -> dict[str, type]:
    """Section name → its dataclass, in `Settings`' order."""
    hints = get_type_hints(Settings)
    return {field.name: hints[field.name] for field in dataclasses.fields(Settings)}


def frozen(value: Any) -> Any:
    """A TOML value as the tree holds it: arrays as tuples, tables as `Table`s (deeply)."""
    if isinstance(value, list | tuple):
        return tuple(frozen(item) for item in value)
    if isinstance(value, Mapping):
        return Table({key: frozen(item) for key, item in value.items()})
    return value


def settings_from(values: Mapping[str, Mapping[str, Any]]) -> Settings:
    """The tree of validated `values` (`section → key → value`, as `load_config` merged them).

    Raises `ValueError` when the keys are not exactly the fields: defaults.toml and this
    module disagree, a bug rather than a user's mistake (the loader refuses unknown keys).
    """
    sections: dict[str, Any] = {}
    for name, kind in section_types().items():
        table = values[name]
        names = [field.name for field in dataclasses.fields(kind)]
        if sorted(table) != sorted(names):
            raise ValueError(f"[{name}]: keys {sorted(table)} but fields {sorted(names)}")
        sections[name] = kind(**{key: frozen(table[key]) for key in names})
    if sorted(values) != sorted(sections):
        raise ValueError(f"sections {sorted(values)} but fields {sorted(sections)}")
    return Settings(**sections)
