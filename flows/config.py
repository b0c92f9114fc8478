"""One TOML file of settings, with documented defaults and environment overrides.

`defaults.toml` beside this module is the single source of every key, its default and its
type: a user file may only set keys that exist there, with a value of the same type, so a
typo fails at start-up with the key's name instead of being silently ignored. The tables of
`FREE_TABLES` are free-form (clusterer parameters, rule segments, variants, ...), because their
keys are the user's own. `load_config` returns the checked values as the settings tree of
`tailor.flows.settings`, which the steps receive section by section.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from redis.connection import parse_url

from tailor.flows.settings import SECRET_ENV, ConfigError, Settings, settings_from
from tailor.operators.redis.redact import malformed_userinfo, redact_url
from tailor.state.profile.event import parse_ts

__all__ = [
    "DEFAULTS_PATH",
    "FREE_TABLES",
    "SECRET_ENV",
    "Config",
    "ConfigError",
    "load_config",
    "shipped",
]

DEFAULTS_PATH = Path(__file__).with_name("defaults.toml")
ENV_PREFIX = "TAILOR_"
#: Tables whose keys are chosen by the user rather than fixed by the defaults.
FREE_TABLES: frozenset[tuple[str, ...]] = frozenset(
    {
        ("segments", "params"),
        ("segments", "rules"),
        ("segments", "features"),
        ("recs", "variant_shares"),
        ("recs", "variant_models"),
        ("recs", "event_weights"),
    }
)
#: Free tables a user sets as a whole: their entries replace the shipped ones (variants'
#: shares must add up to 1 over the user's variants alone; a user's rules are their rules).
#: The other free tables are laid over the shipped entries key by key.
REPLACED_TABLES: frozenset[tuple[str, ...]] = frozenset(
    {("recs", "variant_shares"), ("recs", "variant_models"), ("segments", "rules")}
)
#: Numeric keys that must be strictly positive; anything else would stall or divide by zero.
POSITIVE: frozenset[tuple[str, ...]] = frozenset(
    {
        ("source", "partitions"),
        ("source", "batch_size"),
        ("source", "batch_max_bytes"),
        ("source", "poll_interval_s"),
        ("validation", "max_payload_bytes"),
        ("validation", "max_future_s"),
        ("state", "session_gap_s"),
        ("state", "rfm_window_s"),
        ("state", "interest_halflife_s"),
        ("state", "top_categories"),
        ("state", "history_len"),
        ("state", "max_purchased"),
        ("state", "dedup_horizon_s"),
        ("segments", "learn_every"),
        ("segments", "warmup"),
        ("segments", "rename_distance"),
        ("segments", "publish_every"),
        ("segments", "sample_size"),
        ("recs", "k"),
        ("recs", "fallback_length"),
        ("recs", "cooc_max_neighbors"),
        ("recs", "cooc_window"),
        ("recs", "trending_halflife_s"),
        ("recs", "isgd_factors"),
        ("recs", "isgd_learning_rate"),
        ("recs", "isgd_history"),
        ("recs", "hybrid_depth"),
        ("recs", "hybrid_probe_every"),
        ("recs", "quality_window"),
        ("output", "updates_maxlen"),
        ("output", "deadletter_maxlen"),
        ("output", "write_backoff_cap_s"),
        ("recovery", "snapshot_interval_s"),
        ("recovery", "partitions"),
        ("cluster", "workers_per_process"),
        ("serve", "heartbeat_max_age_s"),
        ("serve", "max_items"),
        ("serve", "page_size"),
        ("serve", "redis_connections"),
        ("serve", "redis_timeout_s"),
    }
)
CHOICES: dict[tuple[str, ...], frozenset[str]] = {
    ("source", "kind"): frozenset({"redis", "replay"}),
}


#: What `load_config` returns (the name the rest of Tailor has always imported).
Config = Settings


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then the user's file, then the environment; each checked against the defaults,
    as the settings tree (`tailor.flows.settings`)."""
    env = os.environ if env is None else env
    values = _read_toml(DEFAULTS_PATH)
    replaced: set[tuple[str, ...]] = set()
    if path is not None:
        layer = _read_toml(path)
        _replace_tables(values, [layer], replaced)
        _merge(values, layer, ())
    overrides = [_nest(dotted, raw) for dotted, raw in _env_overrides(values, env)]
    _replace_tables(values, overrides, replaced)
    for layer in overrides:
        _merge(values, layer, ())
    if env.get("REDIS_URL") and not _env_sets(env, ("redis", "url")):
        values["redis"]["url"] = env["REDIS_URL"]
    _check_values(values)
    return settings_from(values)


@cache
def shipped() -> Settings:
    """The shipped defaults alone: defaults.toml, no user file, no environment (immutable, so
    one tree serves every caller)."""
    return load_config(env={})


def _replace_tables(
    values: dict[str, Any], layers: list[dict[str, Any]], replaced: set[tuple[str, ...]]
) -> None:
    """Empty the `REPLACED_TABLES` a layer (the user's file, or the environment as a whole)
    sets, unless an earlier layer did: the user's entries replace the shipped ones instead
    of joining them, and the environment adds to the file's."""
    for path in REPLACED_TABLES - replaced:
        section, table = path
        if any(
            isinstance(layer.get(section), dict) and table in layer[section] for layer in layers
        ):
            values[section][table] = {}
            replaced.add(path)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _merge(base: dict[str, Any], override: Mapping[str, Any], at: tuple[str, ...]) -> None:
    """Lay `override` over `base`, refusing unknown keys and values of the wrong type."""
    for key, value in override.items():
        path = (*at, key)
        name = ".".join(path)
        if at in FREE_TABLES:
            if isinstance(value, dict):
                raise ConfigError(f"{name}: nested tables are not allowed here")
            base[key] = value
            continue
        if key not in base:
            raise ConfigError(f"{name}: unknown setting")
        current = base[key]
        if isinstance(current, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{name}: expected a table")
            _merge(current, value, path)
        else:
            base[key] = _coerce(name, current, value)


def _coerce(name: str, default: Any, value: Any) -> Any:
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is list and isinstance(value, list):
        return value
    if type(value) is not expected:
        raise ConfigError(
            f"{name}: expected {expected.__name__}, got {type(value).__name__} ({value!r})"
        )
    return value


def _known_paths(values: Mapping[str, Any], at: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for key, value in values.items():
        path = (*at, key)
        if isinstance(value, dict):
            if path in FREE_TABLES:
                paths.append(path)
            paths.extend(_known_paths(value, path))
        else:
            paths.append(path)
    return paths


def _env_name(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + "_".join(path).upper()


def _env_sets(env: Mapping[str, str], path: tuple[str, ...]) -> bool:
    return _env_name(path) in env


def _env_overrides(
    values: Mapping[str, Any], env: Mapping[str, str]
) -> list[tuple[list[str], Any]]:
    """TAILOR_<SECTION>_* variables mapped onto known keys (or new keys of a free-form table).

    A variable naming a section but no key there is an error (a typo would otherwise be
    ignored); other TAILOR_* variables belong to something else and are left alone.
    """
    known = {_env_name(path): path for path in _known_paths(values) if path not in FREE_TABLES}
    free = {_env_name(path) + "_": path for path in FREE_TABLES}
    sections = tuple(_env_name((section,)) + "_" for section in values)
    found: list[tuple[list[str], Any]] = []
    for name in sorted(env):
        if not name.startswith(sections):
            continue
        raw = _parse_env_value(env[name])
        if name in known:
            found.append((list(known[name]), raw))
            continue
        table = next((path for head, path in free.items() if name.startswith(head)), None)
        if table is None:
            raise ConfigError(f"{name}: environment variable names no setting")
        found.append(([*table, name[len(_env_name(table)) + 1 :].lower()], raw))
    return found


def _parse_env_value(raw: str) -> Any:
    """Read a value as TOML when it is one (8, 0.5, true, ["a"]), else as a plain string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _nest(path: list[str], value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {path[-1]: value}
    for key in reversed(path[:-1]):
        out = {key: out}
    return out


def _check_values(values: dict[str, Any]) -> None:
    for path in POSITIVE:
        value = values[path[0]][path[1]]
        if value <= 0:
            raise ConfigError(f"{'.'.join(path)}: must be greater than 0, got {value!r}")
    for path, allowed in CHOICES.items():
        value = values[path[0]][path[1]]
        if value not in allowed:
            raise ConfigError(f"{'.'.join(path)}: must be one of {sorted(allowed)}, got {value!r}")
    _check_lists(values)
    _check_redis_url(values["redis"]["url"])
    try:
        parse_ts(values["validation"]["min_ts"])
    except ValueError as exc:
        raise ConfigError(f"validation.min_ts: not a timestamp ({exc})") from exc
    if values["output"]["write_max_attempts"] < 0:
        raise ConfigError("output.write_max_attempts: must be 0 (for ever) or more")
    if values["output"]["recs_ttl_s"] < 0:
        raise ConfigError("output.recs_ttl_s: must be 0 (never expire) or more")
    if values["validation"]["too_large_prefix_bytes"] < 0:
        raise ConfigError("validation.too_large_prefix_bytes: must be 0 (keep none) or more")
    if values["state"]["ttl_s"] < 0:
        raise ConfigError("state.ttl_s: must be 0 (never expire) or more")
    if values["state"]["age_every_s"] < 0:
        raise ConfigError("state.age_every_s: must be 0 (never age) or more")
    if values["recs"]["fallback_every_s"] < 0:
        raise ConfigError("recs.fallback_every_s: must be 0 (every batch) or more")
    if values["segments"]["refit_every_s"] < 0:
        raise ConfigError("segments.refit_every_s: must be 0 (never re-fit) or more")
    if not 0 <= values["segments"]["min_share"] < 1:
        raise ConfigError("segments.min_share: must be at least 0 and below 1")
    if values["state"]["allowed_lateness_s"] < 0:
        raise ConfigError("state.allowed_lateness_s: must be 0 or more")
    if not 0 <= values["metrics"]["port"] < 65536:
        raise ConfigError("metrics.port: must be between 0 and 65535")
    _check_serve(values["serve"])
    if values["output"]["heartbeat_every_s"] < 0:
        raise ConfigError("output.heartbeat_every_s: must be 0 (no heartbeat) or more")
    if values["source"]["kind"] == "replay" and not values["source"]["replay_paths"]:
        raise ConfigError("source.replay_paths: kind = 'replay' needs at least one file")


#: What `serve.fallbacks` may name (`tailor.flows.serve.reads`).
SERVE_FALLBACKS = frozenset({"segment", "trending", "popular"})


def _check_serve(serve: dict[str, Any]) -> None:
    if not 0 <= serve["port"] < 65536:
        raise ConfigError("serve.port: must be between 0 (any free port) and 65535")
    if serve["segments_cache_s"] < 0:
        raise ConfigError("serve.segments_cache_s: must be 0 (no cache) or more")
    unknown = [name for name in serve["fallbacks"] if name not in SERVE_FALLBACKS]
    if unknown or not all(isinstance(name, str) for name in serve["fallbacks"]):
        raise ConfigError(f"serve.fallbacks: each one of {sorted(SERVE_FALLBACKS)}, got {unknown}")


def _check_redis_url(url: str) -> None:
    """Refuse a URL redis-py would misread, without quoting it: the parser's own errors quote
    pieces of the URL, and with an unencoded ``/``, ``#`` or ``?`` in the password those
    pieces are the password (read as a port number or a database)."""
    if not url:
        return
    if not url.lower().startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("redis.url: must start with redis://, rediss:// or unix://")
    if malformed_userinfo(url):
        raise ConfigError(
            f"redis.url: cannot be parsed ({redact_url(url)}); percent-encode '/', '#', '?' "
            "and '@' in the user name and password (e.g. / as %2F)"
        )
    try:
        parse_url(url)
    except ValueError as exc:
        raise ConfigError(f"redis.url: cannot be parsed ({redact_url(url)})") from exc


def _check_lists(values: dict[str, Any]) -> None:
    typed = {
        ("validation", "event_types"): str,
        ("state", "windows_s"): int,
        ("segments", "devices"): str,
        ("source", "replay_paths"): str,
        ("cluster", "addresses"): str,
    }
    for (section, key), kind in typed.items():
        items = values[section][key]
        if not all(isinstance(item, kind) and not isinstance(item, bool) for item in items):
            raise ConfigError(f"{section}.{key}: every entry must be a {kind.__name__}")
    if not values["validation"]["event_types"]:
        raise ConfigError("validation.event_types: at least one event type is needed")
    if not values["state"]["windows_s"] or min(values["state"]["windows_s"]) <= 0:
        raise ConfigError("state.windows_s: needs positive window lengths")
    for name, rule in values["segments"]["rules"].items():
        if not isinstance(rule, str):
            raise ConfigError(f"segments.rules.{name}: a rule is an expression string")
    for name, transform in values["segments"]["features"].items():
        if not isinstance(transform, str):
            raise ConfigError(f'segments.features.{name}: a transform name, e.g. "log"')
