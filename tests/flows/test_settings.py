"""The settings tree: one frozen dataclass per section of defaults.toml, and no other defaults.

Every key of `flows/defaults.toml` is one field of the tree, of its type, and the other way
round; no step's params restate a default; the shipped values are the ones the records in
`docs/` chose; and every key, changed, changes what the flow builds from it
(`tests/flows/settings_reach.py`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import orjson
import pytest

from tailor.flows.config import FREE_TABLES, load_config, shipped
from tailor.flows.settings import Table, frozen, section_types, settings_from
from tailor.flows.worker import build_source
from tailor.operators.live_quality import QualityParams
from tailor.operators.model_params import ModelParams
from tailor.operators.payload_limits import PayloadLimits
from tailor.operators.user_outputs import UserOutputsParams
from tailor.operators.user_state import UserStateParams
from tailor.operators.validate import ValidationParams
from tailor.state.recs.settings import RecSettings
from tests.flows.settings_reach import (
    DEFAULTS,
    EVENTS,
    REACH,
    cooc,
    event,
    fism,
    hybrid,
    leaf_paths,
    toml_text,
)


def fits(value: Any, hint: Any) -> bool:
    """Whether a TOML value has the type a field declares (arrays as tuples, tables as Tables)."""
    if hint is Any:
        return True
    if get_origin(hint) is tuple:
        return isinstance(value, list) and all(fits(v, get_args(hint)[0]) for v in value)
    if get_origin(hint) is Table:
        return isinstance(value, dict) and all(fits(v, get_args(hint)[0]) for v in value.values())
    return type(value) is hint


def test_every_key_is_one_field_of_its_type_and_every_field_a_key() -> None:
    sections = section_types()
    assert list(DEFAULTS) == list(sections)
    for name, kind in sections.items():
        hints = get_type_hints(kind)
        assert list(DEFAULTS[name]) == list(hints), f"[{name}]: keys and fields differ"
        for key, value in DEFAULTS[name].items():
            assert fits(value, hints[key]), f"{name}.{key}: {value!r} is no {hints[key]}"
    assert not fits([1.5], tuple[int, ...]) and not fits(True, int) and not fits(1, float)


def test_the_tree_has_no_defaults_and_cannot_change() -> None:
    config = shipped()
    for name, kind in section_types().items():
        assert kind.__dataclass_params__.frozen and "__slots__" in vars(kind), name  # type: ignore[attr-defined]
        for field in dataclasses.fields(kind):
            assert field.default is dataclasses.MISSING, f"{name}.{field.name}"
            assert field.default_factory is dataclasses.MISSING, f"{name}.{field.name}"
            value = getattr(getattr(config, name), field.name)
            assert not isinstance(value, list | dict), f"{name}.{field.name} is mutable"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.recs.k = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.recs.hybrid_weights["cooc"] = 2.0  # type: ignore[index]


def test_keys_and_fields_that_differ_stop_the_loader() -> None:
    values = {name: dict(table) for name, table in DEFAULTS.items()}
    assert settings_from(values) == shipped()
    with pytest.raises(ValueError, match=r"\[recs\]: keys"):
        settings_from({**values, "recs": {**values["recs"], "cooc_beta": 0.5}})
    without = {key: value for key, value in values["state"].items() if key != "ttl_s"}
    with pytest.raises(ValueError, match=r"\[state\]: keys"):
        settings_from({**values, "state": without})


@pytest.mark.parametrize(
    "kind",
    [
        ModelParams,
        UserStateParams,
        ValidationParams,
        UserOutputsParams,
        QualityParams,
        PayloadLimits,
        RecSettings,
    ],
)
def test_no_step_params_restate_a_default(kind: type) -> None:
    """A params field named like a setting has no default: the tree's value is the only one."""
    settings = {f.name for k in section_types().values() for f in dataclasses.fields(k)}
    settings |= {"prefix_bytes", "window", "assigned"}  # settings under the step's own names
    for field in dataclasses.fields(kind):
        if field.name in settings:
            assert field.default is dataclasses.MISSING, f"{kind.__name__}.{field.name}"
            assert field.default_factory is dataclasses.MISSING, f"{kind.__name__}.{field.name}"


def test_the_fism_settings_are_the_ones_decision_0005_chose() -> None:
    """docs/decisions/0005-fism-user-vector-from-history.md, "Chosen: 10 factors, lr 0.3,
    regularization 0.01, 16 negatives, init std 0.03, bias lr 0.03, alpha 0.5, the last 10
    items" (the `isgd_*` settings), as the shipped settings build the model."""
    model = fism(shipped())
    assert (model.n_factors, model.learning_rate, model.regularization) == (10, 0.3, 0.01)
    assert (model.negatives, model.init_std, model.bias_learning_rate) == (16, 0.03, 0.03)
    assert (model.alpha, model.history) == (0.5, 10)


def test_the_cooccurrence_settings_are_the_benchmarked_ones() -> None:
    """docs/decisions/0021-recs-defaults.md: 300 neighbours, window 10, alpha 0.25 (also the
    settings docs/benchmarks.md, "Packed co-occurrence", was measured with)."""
    model = cooc(shipped())
    assert (model.max_neighbors, model.window, model.alpha) == (300, 10, 0.25)


def test_the_hybrid_settings_are_the_recorded_ones() -> None:
    """docs/decisions/0021-recs-defaults.md: the self-test probes one event in 20 after the
    first 5,000; co-occurrence's top 50 re-ranked with c = 20, ISGD weight 0.5 and the
    category match 0.5 (co-occurrence 1.0), chosen by replay on MovieLens."""
    model = hybrid(shipped())
    assert (model.probe_every, model.warm_probes) == (20, 5000)
    assert (model.depth, model.c) == (50, 20.0)
    assert model.weights == {"cooc": 1.0, "isgd": 0.5, "category": 0.5}


def test_every_key_has_a_reader() -> None:
    """A key with no entry in `REACH` fails here: add where it is read."""
    assert set(leaf_paths()) == set(REACH), "keys without a reader / readers without a key"


@pytest.mark.parametrize("path", sorted(leaf_paths()), ids=".".join)
def test_a_changed_key_reaches_the_code_that_reads_it(
    path: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loaded from a user file, a new value shows up in what the flow builds (sources, sinks,
    steps' params, models, runner settings), where the shipped value did not."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TAILOR_PSEUDONYM_SECRET", "k")
    (tmp_path / EVENTS).write_text(event().decode() + "\n")
    reach = REACH[path]
    dotted = ".".join(path)
    if path in FREE_TABLES:  # the table's entries, over (or beside) the shipped ones
        changes = {f"{dotted}.{key}": value for key, value in reach.value.items()}
    else:
        changes = {dotted: reach.value}
    user_file = tmp_path / "tailor.toml"
    user_file.write_text(toml_text({**reach.also, **changes}))
    changed = load_config(user_file, env={})
    expected = frozen(reach.value) if reach.expected is None else reach.expected
    assert reach.read(changed) == expected
    assert reach.read(shipped()) != expected, f"{dotted}: the shipped value reads the same"


def test_replay_paths_replay_only_with_kind_replay(tmp_path: Path) -> None:
    """`source.kind` decides: files configured for a replay are ignored by a Redis run."""
    (tmp_path / EVENTS).write_text(event().decode() + "\n")
    paths = [str(tmp_path / EVENTS)]
    streams = load_config(env={"TAILOR_SOURCE_REPLAY_PATHS": orjson.dumps(paths).decode()})
    assert type(build_source(streams)).__name__ == "RedisStreamSource"
    replay = streams.with_value("source", "kind", "replay")
    assert type(build_source(replay)).__name__ == "ReplaySource"
    assert type(build_source(streams, [tmp_path / EVENTS])).__name__ == "ReplaySource"  # --replay


def test_the_settings_print_without_the_password() -> None:
    config = load_config(env={"REDIS_URL": "redis://tailor:s3cret@redis:6379/0"})
    assert "s3cret" not in repr(config) and "s3cret" not in str(config.redis)
    assert "tailor:***@redis" in repr(config)
    assert config.redis_url.endswith("s3cret@redis:6379/0")
