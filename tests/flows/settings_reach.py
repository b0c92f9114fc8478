"""What the flow builds from each setting, for `test_settings.py`: a changed value of every key
of `flows/defaults.toml` and where the flow, built as `tailor.flows.worker` builds it, holds it."""

from __future__ import annotations

import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import orjson

from tailor.flows.config import DEFAULTS_PATH, FREE_TABLES, Settings
from tailor.flows.recovery import partition_files, recovery_settings, store_path
from tailor.flows.runner import cluster_settings, start_metrics
from tailor.flows.worker import (
    aging_params,
    build_control,
    build_sinks,
    build_source,
    model_params,
    quality_params,
    unchecked_model_params,
    user_outputs_params,
    user_state_params,
)
from tailor.operators.models import ModelsLogic, ModelsState
from tailor.operators.records import Accepted, RawRecord
from tailor.operators.user_outputs import UserOutputsParams
from tailor.operators.user_state import UserStateLogic
from tailor.operators.validate import ValidationParams, validate_record
from tailor.state.profile.event import Event
from tailor.state.profile.user import UserState
from tailor.state.recs.cooc_counts import CoOccurrence
from tailor.state.recs.cooccurrence import CoocRecommender
from tailor.state.recs.fism import FISM
from tailor.state.recs.fism_recommender import FISMRecommender
from tailor.state.recs.hybrid import Hybrid
from tailor.state.recs.live_recs import LiveRecs
from tailor.state.segments.segmenter import Segmenter
from tests.flows.reach import Reach
from tests.flows.settings_reach_serve import SERVE_REACH

DEFAULTS: dict[str, Any] = tomllib.loads(DEFAULTS_PATH.read_text())
NOW = 1_700_000_000.0
#: A replay file (relative: each reach test runs in its own temporary directory).
EVENTS = "events.jsonl"


def leaf_paths(
    table: Mapping[str, Any] = DEFAULTS, at: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """Every key a user can set: free-form tables whole, other tables key by key."""
    for key, value in table.items():
        path = (*at, key)
        if isinstance(value, dict) and path not in FREE_TABLES:
            yield from leaf_paths(value, path)
        else:
            yield path


def models(config: Settings) -> ModelsState:
    return ModelsState.fresh(model_params(config))


def cadence(config: Settings) -> tuple[int, float]:
    """Items per published list and the least time between refreshes, as the models step has
    them (`tailor.operators.fallbacks`)."""
    found = ModelsLogic(model_params(config)).fallbacks
    return found.length, found.every_s


def segmenter(config: Settings) -> Segmenter:
    return models(config).segments.segmenter


def live(config: Settings) -> LiveRecs:
    return models(config).recs


def hybrid(config: Settings) -> Hybrid:
    found = live(config).models["hybrid"]
    assert isinstance(found, Hybrid)
    return found


def cooc(config: Settings) -> CoOccurrence:
    found = hybrid(config).components["cooc"]
    assert isinstance(found, CoocRecommender)
    return found.cooc


def fism(config: Settings) -> FISM:
    found = hybrid(config).components["isgd"]
    assert isinstance(found, FISMRecommender)
    return found.model


def user(config: Settings) -> UserState:
    """A user's fresh state, as the user-state step makes it."""
    return user_state_params(config).new_state()


def source(config: Settings) -> Any:
    return build_source(config)


def outputs(config: Settings) -> UserOutputsParams:
    return user_outputs_params(config, model_params(config))


def verdict(config: Settings, payload: bytes) -> str:
    """What validation makes of a payload at `NOW`: "accepted" or the dead letter's reason."""
    record = RawRecord(payload, "s", "1-0", 0.0)
    checked = validate_record(record, ValidationParams.of(config.validation), NOW)
    return "accepted" if isinstance(checked, Accepted) else checked.reason


def event(ts: float = NOW, type_: str = "click", pad: int = 0) -> bytes:
    fields = {"event_id": "e1", "user_id": "u1", "type": type_, "ts": ts, "pad": "x" * pad}
    return orjson.dumps(fields)


def kept_prefix(config: Settings) -> int:
    """How much of a too-large payload its dead letter keeps."""
    record = RawRecord(event(pad=70_000), "s", "1-0", 0.0)
    return len(validate_record(record, ValidationParams.of(config.validation), NOW).payload)


def late(config: Settings) -> str:
    """What the user-state step makes of an event 120 s older than the user's newest."""
    logic = UserStateLogic(user_state_params(config))
    first, second = (
        Accepted(Event(f"e{ts}", "u", "click", ts), read_at=0.0) for ts in (NOW, NOW - 120)
    )
    logic.on_batch([first])
    (out,) = logic.on_batch([second])[0]
    return type(out).__name__


def metrics_url(config: Settings) -> str | None:
    """The endpoint the runner would serve (the server itself not started)."""
    serve = lambda port: (SimpleNamespace(server_port=port), None)  # noqa: E731
    with mock.patch("tailor.flows.runner.start_http_server", side_effect=serve):
        return start_metrics(config)


def new_store(config: Settings) -> Any:
    """The recovery store a fresh directory gets."""
    fresh = tempfile.mkdtemp(dir=".")
    return recovery_settings(config.with_value("recovery", "dir", fresh))


REPLAY = {"source.kind": "replay", "source.replay_paths": [EVENTS]}
HYBRID_WEIGHTS = {
    "cooc": 2.0,
    "isgd": 1.0,
    "category": 1.0,
    "segment": 0.25,
    "trending": 0.25,
    "mostpop": 0.25,
}

REACH: dict[tuple[str, ...], Reach] = {
    ("redis", "url"): Reach(
        "redis://example:6379/3",
        lambda c: (source(c).redis_url, build_sinks(c)[0].redis_url, build_control(c).redis_url),
        ("redis://example:6379/3",) * 3,
    ),
    ("redis", "prefix"): Reach(
        "shop", lambda c: (source(c).prefix, build_sinks(c)[1].prefix), ("shop", "shop")
    ),
    ("source", "kind"): Reach(
        "replay",
        lambda c: type(source(c)).__name__,
        "ReplaySource",
        {"source.replay_paths": [EVENTS]},
    ),
    ("source", "partitions"): Reach(7, lambda c: source(c).partitions),
    ("source", "batch_size"): Reach(
        250, lambda c: (source(c).batch_size, build_control(c).batch_size), (250, 250)
    ),
    ("source", "batch_max_bytes"): Reach(5000, lambda c: source(c).limits.batch_max_bytes),
    ("source", "poll_interval_s"): Reach(0.5, lambda c: source(c).poll_interval_s),
    ("source", "stop_when_drained"): Reach(
        True,
        lambda c: (source(c).stop_when_drained, build_control(c).stop_when_drained),
        (True, True),
    ),
    ("source", "replay_paths"): Reach(
        [EVENTS],
        lambda c: tuple(str(p) for p in getattr(source(c), "paths", ())),
        also={"source.kind": "replay"},
    ),
    ("source", "replay_adapter"): Reach(
        "jsonl", lambda c: getattr(source(c), "adapter", None), also=REPLAY
    ),
    ("validation", "max_payload_bytes"): Reach(
        300,
        lambda c: (source(c).limits.max_payload_bytes, verdict(c, event(pad=400))),
        (300, "too_large"),
    ),
    ("validation", "too_large_prefix_bytes"): Reach(
        7, lambda c: (source(c).limits.prefix_bytes, kept_prefix(c)), (7, 7)
    ),
    ("validation", "max_future_s"): Reach(
        10.0, lambda c: verdict(c, event(NOW + 100)), "ts_future"
    ),
    ("validation", "min_ts"): Reach(
        "2024-01-01T00:00:00Z", lambda c: verdict(c, event(NOW)), "ts_past"
    ),
    ("validation", "event_types"): Reach(
        ["page_view"], lambda c: verdict(c, event(type_="click")), "unknown_type"
    ),
    ("state", "session_gap_s"): Reach(
        600.0,
        lambda c: (user(c).session_gap_s, models(c).segments.horizons["session_events"]),
        (600.0, 600.0),
    ),
    ("state", "windows_s"): Reach(
        [60, 3600],
        lambda c: (tuple(user(c).windows_s), unchecked_model_params(c).horizons.get("views_1m")),
        ((60, 3600), 60.0),
    ),
    ("state", "rfm_window_s"): Reach(
        86400.0,
        lambda c: (user(c).rfm_window_s, models(c).segments.horizons["spend_30d"]),
        (86400.0, 86400.0),
    ),
    ("state", "interest_halflife_s"): Reach(3600.0, lambda c: user(c).interest_halflife_s),
    ("state", "top_categories"): Reach(3, lambda c: user(c).top_categories),
    ("state", "history_len"): Reach(7, lambda c: user(c).history_len),
    ("state", "max_purchased"): Reach(50, lambda c: user(c).max_purchased),
    ("state", "allowed_lateness_s"): Reach(60.0, late, "DeadLetter"),
    ("state", "dedup_horizon_s"): Reach(60.0, lambda c: user(c).dedup_horizon_s),
    ("state", "ttl_s"): Reach(
        60.0,
        lambda c: (
            UserStateLogic(user_state_params(c), clock=lambda: 0.0).expires_at,
            outputs(c).ttl_s,
            aging_params(c, source(c)).ttl_s,
        ),
        (60.0, 60.0, 60.0),
    ),
    ("state", "age_every_s"): Reach(3600.0, lambda c: aging_params(c, source(c)).every_s),
    ("segments", "clusterer"): Reach("DBSTREAM", lambda c: segmenter(c).clusterer),
    ("segments", "devices"): Reach(["tv"], lambda c: segmenter(c).devices),
    ("segments", "seed"): Reach(7, lambda c: (segmenter(c).seed, fism(c).seed), (7, 7)),
    ("segments", "learn_every"): Reach(
        3,
        lambda c: (user_state_params(c).learn_every, models(c).segments.learn_every),
        (3, 3),
    ),
    ("segments", "warmup"): Reach(50, lambda c: segmenter(c).registry.warmup),
    ("segments", "reorder_s"): Reach(
        1.0,
        lambda c: (models(c).segments.order.reorder_s, aging_params(c, source(c)).reorder_s),
        (1.0, 1.0),
    ),
    ("segments", "rename_distance"): Reach(2.0, lambda c: segmenter(c).namer.rename_distance),
    ("segments", "publish_every"): Reach(50, lambda c: models(c).segments.publish_every),
    ("segments", "refit_every_s"): Reach(86400.0, lambda c: models(c).segments.refit_every_s),
    ("segments", "sample_size"): Reach(100, lambda c: segmenter(c)._scaler.size),
    ("segments", "min_share"): Reach(0.05, lambda c: models(c).segments.min_share),
    ("segments", "features"): Reach(
        {"spend_30d": "standard", "views_24h": "log"}, lambda c: segmenter(c).transforms
    ),
    ("segments", "params"): Reach(
        {"n_clusters": 8}, lambda c: segmenter(c).model_params()["n_clusters"], 8
    ),
    ("segments", "rules"): Reach(
        {"vip": "spend_30d > 1000"}, lambda c: outputs(c).rules.get("vip"), "spend_30d > 1000"
    ),
    ("recs", "k"): Reach(
        5,
        lambda c: (live(c).k, hybrid(c).k, quality_params(model_params(c)).k, outputs(c).k),
        (5, 5, 5, 5),
    ),
    ("recs", "cooc_max_neighbors"): Reach(100, lambda c: cooc(c).max_neighbors),
    ("recs", "cooc_window"): Reach(5, lambda c: cooc(c).window),
    ("recs", "cooc_alpha"): Reach(0.5, lambda c: cooc(c).alpha),
    ("recs", "trending_halflife_s"): Reach(
        3600.0,
        lambda c: hybrid(c).components["trending"].trending.halflife_s,  # type: ignore[attr-defined]
    ),
    ("recs", "isgd_factors"): Reach(20, lambda c: fism(c).n_factors),
    ("recs", "isgd_learning_rate"): Reach(0.1, lambda c: fism(c).learning_rate),
    ("recs", "isgd_regularization"): Reach(0.03, lambda c: fism(c).regularization),
    ("recs", "isgd_negatives"): Reach(8, lambda c: fism(c).negatives),
    ("recs", "isgd_init_std"): Reach(0.1, lambda c: fism(c).init_std),
    ("recs", "isgd_bias_learning_rate"): Reach(0.01, lambda c: fism(c).bias_learning_rate),
    ("recs", "isgd_alpha"): Reach(0.25, lambda c: fism(c).alpha),
    ("recs", "isgd_history"): Reach(7, lambda c: fism(c).history),
    ("recs", "exclude_seen"): Reach(False, lambda c: live(c).exclude_seen),
    ("recs", "hybrid_depth"): Reach(30, lambda c: hybrid(c).depth),
    ("recs", "hybrid_c"): Reach(5.0, lambda c: hybrid(c).c),
    ("recs", "hybrid_fallback"): Reach(["trending"], lambda c: hybrid(c).fallback),
    ("recs", "hybrid_select"): Reach(False, lambda c: hybrid(c).select),
    ("recs", "hybrid_probe_every"): Reach(10, lambda c: hybrid(c).probe_every),
    ("recs", "hybrid_warm_probes"): Reach(100, lambda c: hybrid(c).warm_probes),
    ("recs", "max_per_category"): Reach(2, lambda c: live(c).max_per_category),
    ("recs", "quality_window"): Reach(500, lambda c: quality_params(model_params(c)).window),
    ("recs", "variant_salt"): Reach("exp2", lambda c: live(c).variants.salt),
    ("recs", "fallback_length"): Reach(5, lambda c: cadence(c)[0]),
    ("recs", "fallback_every_s"): Reach(0.0, lambda c: cadence(c)[1]),
    ("recs", "variant_shares"): Reach(
        {"all": 0.5, "b": 0.5},
        lambda c: live(c).variants.shares,
        # a user's variants replace the shipped ones: each needs its model here
        also={"recs.variant_models.all": "hybrid", "recs.variant_models.b": "cooc"},
    ),
    ("recs", "variant_models"): Reach(
        {"all": "cooc"},
        lambda c: (live(c).assigned, quality_params(model_params(c)).assigned),
        ({"all": "cooc"}, {"all": "cooc"}),
    ),
    **{
        ("recs", "hybrid_weights", name): Reach(
            weight, lambda c, name=name: hybrid(c).weights.get(name, 0.0)
        )
        for name, weight in HYBRID_WEIGHTS.items()
    },
    ("recs", "event_weights"): Reach(
        {"click": 2}, lambda c: model_params(c).rec_settings.weight_of("click"), 2
    ),
    ("output", "updates_maxlen"): Reach(500, lambda c: build_sinks(c)[0].updates_maxlen),
    ("output", "deadletter_maxlen"): Reach(500, lambda c: build_sinks(c)[1].maxlen),
    ("output", "write_max_attempts"): Reach(
        3, lambda c: tuple(s.policy.max_attempts for s in build_sinks(c)), (3, 3)
    ),
    ("output", "write_backoff_cap_s"): Reach(
        1.0, lambda c: tuple(s.policy.cap_s for s in build_sinks(c)), (1.0, 1.0)
    ),
    **SERVE_REACH,
    ("output", "recs_ttl_s"): Reach(3600, lambda c: build_sinks(c)[0].recs_ttl_s),
    ("cluster", "workers_per_process"): Reach(
        3, lambda c: (c.workers, cluster_settings(c)["workers_per_process"]), (3, 3)
    ),
    ("cluster", "addresses"): Reach(
        ["a:1", "b:1"],
        lambda c: (c.workers, cluster_settings(c)["addresses"]),
        (2, ["a:1", "b:1"]),
    ),
    ("cluster", "process_id"): Reach(
        1, lambda c: cluster_settings(c)["process_id"], also={"cluster.addresses": ["a:1", "b:1"]}
    ),
    ("metrics", "port"): Reach(9999, metrics_url, "http://localhost:9999/metrics"),
    ("privacy", "pseudonymize"): Reach(
        True, lambda c: build_sinks(c)[0].id_mode.startswith("hmac-sha256:")
    ),
    ("recovery", "enabled"): Reach(
        False,
        lambda c: (recovery_settings(c) is None, build_control(c).durable),
        (True, False),
    ),
    ("recovery", "dir"): Reach(
        "elsewhere",
        lambda c: str(store_path(c).relative_to(Path.cwd().resolve())),
        "elsewhere/tailor",
    ),
    ("recovery", "snapshot_interval_s"): Reach(
        2.0,
        lambda c: recovery_settings(c).epoch_interval.total_seconds(),  # type: ignore[union-attr]
    ),
    ("recovery", "partitions"): Reach(2, lambda c: len(partition_files(new_store(c).store))),
}


def toml_text(changes: Mapping[str, Any]) -> str:
    """A user file setting `changes` (dotted key → value)."""
    tables: dict[str, list[str]] = {}
    for dotted, value in changes.items():
        table, _, key = dotted.rpartition(".")
        tables.setdefault(table, []).append(f"{key} = {toml_value(value)}")
    return "".join(f"[{table}]\n" + "\n".join(lines) + "\n" for table, lines in tables.items())


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return orjson.dumps(value).decode() if isinstance(value, str) else repr(value)
