"""The Tailor dataflow: source → validate → per-user state → models → Redis.

`build_flow` only wires steps; it takes its source and sinks as arguments so tests can pass
Bytewax's testing connectors and production passes the Redis ones (bytewax's `get_flow`
pattern). `get_flow` is the factory for Bytewax's own runner and cluster mode:

    TAILOR_CONFIG=tailor.toml python -m bytewax.run tailor.flows.worker:get_flow \
        -i 0 -a "host1:2101;host2:2101"
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink

from tailor.flows.config import Config, ConfigError, load_config
from tailor.operators.aging import AgingParams, aging_sweep
from tailor.operators.bases import BaseLoader
from tailor.operators.live_quality import QualityParams
from tailor.operators.model_params import ModelParams
from tailor.operators.payload_limits import PayloadLimits
from tailor.operators.pseudonym import id_mode, pseudonymize
from tailor.operators.records import (
    Accepted,
    Aged,
    Block,
    DeadLetter,
    Erasure,
    Forget,
    InputDeletion,
    Progress,
    RawRecord,
    Tick,
    UserUpdate,
)
from tailor.operators.redis.control import ControlSource, opted_out_users, parse_command
from tailor.operators.redis.deadletters import DeadLetterSink
from tailor.operators.redis.erasure import InputEraser
from tailor.operators.redis.heartbeat import Heartbeat
from tailor.operators.redis.retry import RetryPolicy, call_with_retry, no_retry_client
from tailor.operators.redis.routing import WorkerCountCheck
from tailor.operators.redis.sink import RedisSink, SinkItem
from tailor.operators.redis.source import RedisStreamSource
from tailor.operators.replay.adapters import checked_adapter
from tailor.operators.replay.source import ReplaySource
from tailor.operators.replicas import replicated_models
from tailor.operators.user_outputs import UserOutputsParams, per_user_outputs
from tailor.operators.user_state import UserStateParams, user_state
from tailor.operators.validate import validate
from tailor.state.profile.user import feature_horizons, profile_feature_names
from tailor.state.profile.user import feature_names as state_feature_names
from tailor.state.segments.rules import RuleError, RuleSet
from tailor.state.segments.segmenter import Segmenter


def payload_limits(config: Config) -> PayloadLimits:
    """What a source may hold at once (`tailor.operators.payload_limits`)."""
    return PayloadLimits(
        max_payload_bytes=config.validation.max_payload_bytes,
        prefix_bytes=config.validation.too_large_prefix_bytes,
        batch_max_bytes=config.source.batch_max_bytes,
    )


def user_state_params(config: Config, opted_out: frozenset[str] = frozenset()) -> UserStateParams:
    """The `[state]` section, and `segments.learn_every`: where the models step learns."""
    return UserStateParams(config.state, config.segments.learn_every, opted_out)


def feature_names(config: Config) -> tuple[str, ...]:
    """The behavioural features with the configured window names: what the clusterer sees
    unless `segments.features` names others."""
    return state_feature_names(config.state.windows_s)


def profile_features(config: Config) -> tuple[str, ...]:
    """Every numeric feature a profile carries (behavioural and context): rules and
    `segments.features` may use any of them."""
    return profile_feature_names(config.state.windows_s)


def unchecked_model_params(config: Config) -> ModelParams:
    """The models step's settings: `[segments]` and `[recs]`, with the feature names the
    `[state]` windows give (`model_params` checks them as well)."""
    return ModelParams(
        segments=config.segments,
        recs=config.recs,
        features=tuple(config.segments.features) or feature_names(config),
        profile_features=profile_features(config),
        horizons=feature_horizons(
            config.state.windows_s, config.state.session_gap_s, config.state.rfm_window_s
        ),
    )


def model_params(config: Config) -> ModelParams:
    """The models step's settings, checked now: a bad rule or clusterer fails at start-up."""
    params = unchecked_model_params(config)
    try:
        RuleSet(config.segments.rules, params.rule_names())
    except RuleError as exc:
        raise ConfigError(f"segments.rules.{exc.rule}: {exc}") from exc
    unknown = sorted(set(params.transforms or {}) - set(params.profile_features))
    if unknown:
        raise ConfigError(f"segments.features: not profile features: {unknown}")
    try:
        Segmenter(
            config.segments.clusterer,
            config.segments.params,
            params.features,
            config.segments.devices,
            transforms=params.transforms,
        )
    except ValueError as exc:
        raise ConfigError(
            f"segments.clusterer / segments.params / segments.features: {exc}"
        ) from exc
    return params


def user_outputs_params(config: Config, params: ModelParams) -> UserOutputsParams:
    """The per-user outputs step forgets a user when the user-state step does."""
    return UserOutputsParams(
        rules=config.segments.rules,
        rule_names=params.rule_names(),
        k=config.recs.k,
        ttl_s=config.state.ttl_s,
    )


def quality_params(params: ModelParams) -> QualityParams:
    """The live-quality windows: one per variant, each naming the model its users get."""
    shares = dict(params.recs.variant_shares or {"all": 1.0})
    assigned = dict(params.recs.variant_models or dict.fromkeys(shares, "hybrid"))
    return QualityParams(assigned=assigned, window=params.recs.quality_window, k=params.recs.k)


def build_flow(
    config: Config,
    source: Source[RawRecord],
    sink: Sink[SinkItem],
    dead_letters: Sink[DeadLetter],
    control: Source[RawRecord] | None = None,
    opted_out: frozenset[str] = frozenset(),
    base_loader: BaseLoader | None = None,
    heartbeat: Heartbeat | None = None,
) -> Dataflow:
    """Wire the steps; the data walks one way and each step owns one concern.

    Erasure requests from `control` join the events before they are keyed by user, so a
    user's erasure is ordered with that user's events on whichever worker holds them.
    `opted_out` is the opt-out set as the worker starts (`UserStateParams.opted_out`).
    `base_loader` (a run with a recovery store: `tailor.flows.rescale.base_loader`) snapshots the
    models as bases plus changes (`tailor.operators.bases`); without it they are snapshotted whole.
    `heartbeat` (a run that does not end by itself) beats for each worker in Redis.
    """
    flow = Dataflow("tailor")
    raw = op.input("events", flow, source)
    checked = validate("validate", raw, config.validation)
    accepted = checked.oks
    secret = config.pseudonym_secret()
    if secret is not None:  # before keying: no raw user id reaches state or Redis
        accepted = pseudonymize("pseudonymize", accepted, secret)
    inputs: Stream[Accepted | Forget | Tick] = accepted
    blocks: Stream[Block] | None = None
    if control is not None:
        commands = op.filter_map("parse_control", op.input("control", flow, control), parse_command)
        split_commands = op.branch("item_commands", commands, lambda c: isinstance(c, Block))
        blocks = split_commands.trues  # type: ignore[assignment]
        forgets: Stream[Forget] = split_commands.falses  # type: ignore[assignment]
        inputs = op.merge("with_control", accepted, forgets)
    progress: Stream[Progress] = checked.progress
    if config.state.age_every_s > 0:  # ticks join the events, before keying by user
        swept = aging_sweep(
            "aging", op.merge("with_refused", inputs, progress), aging_params(config, source)
        )
        split_swept = op.branch("swept_progress", swept, lambda x: isinstance(x, Progress))
        progress = split_swept.trues  # type: ignore[assignment]
        inputs = split_swept.falses  # type: ignore[assignment]
    by_user = op.key_on("by_user", inputs, _stored_user_id)
    state_params = user_state_params(config, opted_out)
    per_user = op.key_rm("unkey_user", user_state("user_state", by_user, state_params))
    split = op.branch("late", per_user, lambda item: isinstance(item, DeadLetter))
    late: Stream[DeadLetter] = split.trues  # type: ignore[assignment]
    # an opted-out user's dropped event: its raw entry goes straight to the sink to delete
    dropped = op.branch("dropped", split.falses, lambda item: isinstance(item, InputDeletion))
    deletions: Stream[InputDeletion] = dropped.trues  # type: ignore[assignment]
    updates: Stream[UserUpdate | Erasure | Progress | Aged] = dropped.falses  # type: ignore[assignment]
    to_models: Stream[UserUpdate | Erasure | Progress | Block | Aged]
    # builds on every worker before anything is read: stops a run whose worker count is not
    # the configured one (`config.workers`), which routing to the models depends on
    no_items: Stream[Progress] = op.input("worker_count", flow, WorkerCountCheck(config.workers))
    to_models = op.merge("with_progress", updates, progress, no_items)
    if heartbeat is not None:  # emits nothing; polled on each worker's own thread
        to_models = op.merge("with_heartbeat", to_models, op.input("heartbeat", flow, heartbeat))
    if blocks is not None:  # item commands go straight to the global models
        to_models = op.merge("with_blocks", to_models, blocks)
    params = dataclasses.replace(
        model_params(config),
        origins=stamped_origins(source),
        snapshots=config.recovery.enabled,
        base_loader=base_loader,
    )
    drafts = replicated_models("models", to_models, params, config.workers)
    outputs = per_user_outputs(
        "user_outputs", drafts, user_outputs_params(config, params), quality_params(params)
    )
    op.output("redis", op.merge("with_deletions", outputs, deletions), sink)
    op.output("dead_letters", op.merge("all_dead", checked.errs, late), dead_letters)
    return flow


def _stored_user_id(item: Accepted | Forget | Tick) -> str:
    return item.event.user_id if isinstance(item, Accepted) else item.user_id


def aging_params(config: Config, source: Source[RawRecord]) -> AgingParams:
    """The sweep's grid and clock (`tailor.operators.aging`): it waits for the same disorder as the
    segment model's event-time order, and forgets users when the user-state step does."""
    return AgingParams(
        every_s=config.state.age_every_s,
        reorder_s=config.segments.reorder_s,
        ttl_s=config.state.ttl_s,
        workers=config.workers,
        origins=stamped_origins(source),
    )


def stamped_origins(source: Source[RawRecord]) -> tuple[str, ...]:
    """The partitions whose progress the models step waits for: those of stamping sources.

    Other sources (Bytewax's testing ones) stamp nothing and are ordered as they come.
    """
    if isinstance(source, RedisStreamSource | ReplaySource):
        return tuple(source.list_parts())
    return ()


def replay_files(config: Config, replay_paths: Sequence[Path] = ()) -> list[Path]:
    """The files to replay: those given (`tailor run --replay`), else with `source.kind`
    "replay" the configured `source.replay_paths`; none means the Redis streams."""
    if replay_paths:
        return list(replay_paths)
    if config.source.kind == "replay":
        return [Path(p) for p in config.source.replay_paths]
    return []


def build_source(config: Config, replay_paths: Sequence[Path] = ()) -> Source[RawRecord]:
    """Replay files when given (or configured), else the partitioned Redis streams."""
    section = config.source
    paths = replay_files(config, replay_paths)
    if paths:
        adapter = section.replay_adapter or None
        for path in paths:  # a wrong file fails here, not as a panic inside the dataflow
            checked_adapter(path, adapter)
        return ReplaySource(paths, adapter, section.batch_size, limits=payload_limits(config))
    return RedisStreamSource(
        config.redis_url,
        prefix=config.prefix,
        partitions=section.partitions,
        batch_size=section.batch_size,
        poll_interval_s=section.poll_interval_s,
        stop_when_drained=section.stop_when_drained,
        limits=payload_limits(config),
    )


def build_sinks(config: Config) -> tuple[RedisSink, DeadLetterSink]:
    """The Redis sinks: outputs and dead letters, retrying as `[output]` says."""
    url, prefix, output = config.redis_url, config.prefix, config.output
    # Retrying for ever by default: a blocked sink is the worker's backpressure
    # (tailor.operators.redis.retry).
    retry = {"max_attempts": output.write_max_attempts, "backoff_cap_s": output.write_backoff_cap_s}
    sink = RedisSink(
        url,
        prefix,
        output.updates_maxlen,
        id_mode=id_mode(config.pseudonym_secret()),
        # an erasure's inputs and notices; with recovery the control source deletes a
        # request once its epoch is durable (tailor.operators.redis.control), so the sink leaves it
        inputs=InputEraser(prefix, delete_requests=not config.recovery.enabled),
        recs_ttl_s=output.recs_ttl_s,
        **retry,
    )
    dead = DeadLetterSink(url, prefix=prefix, maxlen=output.deadletter_maxlen, **retry)
    return sink, dead


def build_control(config: Config, replay_paths: Sequence[Path] = ()) -> ControlSource:
    """The control stream (erasures, opt-outs, item blocks), read as the events are."""
    section = config.source
    return ControlSource(
        config.redis_url,
        # with recovery, a request must outlive the epoch that applied it
        # (tailor.operators.redis.control)
        durable=config.recovery.enabled,
        prefix=config.prefix,
        batch_size=section.batch_size,
        poll_interval_s=section.poll_interval_s,
        # a replay ends with its files, so the control partition must end with them too
        stop_when_drained=section.stop_when_drained or bool(replay_files(config, replay_paths)),
        limits=payload_limits(config),
    )


def build_redis_flow(
    config: Config,
    replay_paths: Sequence[Path] = (),
    opted_out: frozenset[str] | None = None,
    base_loader: BaseLoader | None = None,
) -> Dataflow:
    """The production wiring: Redis (or replay files) in, Redis out.

    `opted_out` None reads the opt-out set from Redis (waiting for it); the runner passes an
    empty set for the build that only checks the settings, before it waits for Redis.
    `base_loader`: see `build_flow` (the runner passes one for its recovery store).
    """
    sink, dead = build_sinks(config)
    control = build_control(config, replay_paths)
    source = build_source(config, replay_paths)
    if opted_out is None:
        opted_out = read_opt_outs(config)
    beat = build_heartbeat(config, replay_paths)
    return build_flow(config, source, sink, dead, control, opted_out, base_loader, beat)


def build_heartbeat(config: Config, replay_paths: Sequence[Path] = ()) -> Heartbeat | None:
    """The workers' heartbeat (`tailor.operators.redis.heartbeat`), for a run that goes on until
    stopped: a drained run or a replay ends by itself, which a heartbeat input would prevent."""
    every_s = config.output.heartbeat_every_s
    if every_s <= 0 or config.source.stop_when_drained or replay_files(config, replay_paths):
        return None
    return Heartbeat(config.redis_url, config.prefix, every_s)


def read_opt_outs(config: Config) -> frozenset[str]:
    """The opt-out set as the worker starts, waiting for Redis as the sinks do."""
    output = config.output
    policy = RetryPolicy(output.write_max_attempts, cap_s=output.write_backoff_cap_s)
    client = no_retry_client(config.redis_url, socket_timeout_s=5.0)
    try:
        return call_with_retry(
            lambda: opted_out_users(client, config.prefix),
            "optout",
            policy,
            random.Random(),
            time.sleep,
        )
    finally:
        client.close()


def get_flow() -> Dataflow:
    """Factory for `python -m bytewax.run tailor.flows.worker:get_flow` (cluster mode)."""
    path = os.environ.get("TAILOR_CONFIG")
    return build_redis_flow(load_config(Path(path) if path else None))
