"""Step settings for tests, built from the shipped settings (`flows/defaults.toml`) the way the
worker builds them: a test names only the settings it changes, and no test restates a default.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from tailor.flows import worker
from tailor.flows.config import shipped
from tailor.flows.settings import Settings, section_types
from tailor.operators.model_params import ModelParams
from tailor.operators.payload_limits import PayloadLimits
from tailor.operators.user_state import UserStateParams
from tailor.operators.validate import ValidationParams
from tailor.state.recs.settings import RecSettings

#: Setting name → its section, for the names only one section has.
_OWNERS: dict[str, list[str]] = {}
for _section, _kind in section_types().items():
    for _field in fields(_kind):
        _OWNERS.setdefault(_field.name, []).append(_section)


def changed(config: Settings | None = None, **changes: Any) -> Settings:
    """`config` (the shipped settings) with each change made in the one section that has a
    setting of that name (`Settings.with_value` for a name two sections share)."""
    config = shipped() if config is None else config
    for key, value in changes.items():
        owners = _OWNERS.get(key, [])
        if len(owners) != 1:
            raise KeyError(f"{key}: a setting of {owners or 'no section'}; use with_value")
        config = config.with_value(owners[0], key, value)
    return config


def _split(changes: dict[str, Any], kind: type) -> tuple[dict[str, Any], dict[str, Any]]:
    """`changes` to the params class's own fields (not settings), and the settings."""
    own = {f.name for f in fields(kind)} - set(_OWNERS)
    return (
        {k: v for k, v in changes.items() if k in own},
        {k: v for k, v in changes.items() if k not in own},
    )


def model_params(**changes: Any) -> ModelParams:
    """The models step's params as the worker builds them (unchecked: the step's own checks
    are what tests exercise); `origins`, `snapshots`, ... change the params themselves."""
    own, settings = _split(changes, ModelParams)
    return replace(worker.unchecked_model_params(changed(**settings)), **own)


def state_params(**changes: Any) -> UserStateParams:
    """The user-state step's params as the worker builds them; `opted_out` too."""
    own, settings = _split(changes, UserStateParams)
    return replace(worker.user_state_params(changed(**settings)), **own)


def validation_params(**changes: Any) -> ValidationParams:
    """The validation step's checks of the shipped `[validation]` with `changes`."""
    return ValidationParams.of(changed(**changes).validation)


def rec_settings(**changes: Any) -> RecSettings:
    """The recommenders' settings (`[recs]` and `segments.seed`) with `changes`."""
    config = changed(**changes)
    return RecSettings.of(config.recs, config.segments.seed)


def payload_limits(**changes: Any) -> PayloadLimits:
    """The sources' limits (`[validation]` and `source.batch_max_bytes`) with `changes`."""
    return worker.payload_limits(changed(**changes))
