"""Settings: defaults load, files and environment override, and mistakes name their key."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tailor.flows.cli import main
from tailor.flows.config import ConfigError, load_config
from tailor.flows.worker import build_source, model_params, quality_params
from tailor.operators.payload_limits import PayloadLimits
from tailor.operators.redis.source import RedisStreamSource
from tailor.operators.replay.source import ReplaySource
from tailor.operators.validate import ValidationParams


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tailor.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_documented_file() -> None:
    config = load_config(env={})
    assert config.source.batch_size == 1000
    assert config.segments.clusterer == "KMeans"
    assert config.segments.params == {}  # the measured clusterer defaults apply
    assert config.min_ts == 631152000.0
    assert config.redis_url == ""


def test_sources_and_validation_get_the_payload_limits(tmp_path: Path) -> None:
    env = {
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "TAILOR_SOURCE_BATCH_MAX_BYTES": "5000",
        "TAILOR_VALIDATION_MAX_PAYLOAD_BYTES": "300",
        "TAILOR_VALIDATION_TOO_LARGE_PREFIX_BYTES": "7",
    }
    config = load_config(env=env)
    expected = PayloadLimits(max_payload_bytes=300, prefix_bytes=7, batch_max_bytes=5000)
    redis_source = build_source(config)
    events = tmp_path / "events.jsonl"
    events.write_text('{"event_id": "e1"}\n')  # replays check their files before the dataflow
    replay = build_source(config, [events])
    assert isinstance(redis_source, RedisStreamSource) and redis_source.limits == expected
    assert isinstance(replay, ReplaySource) and replay.limits == expected
    assert ValidationParams.of(config.validation).settings.too_large_prefix_bytes == 7


def test_file_then_environment_override(tmp_path: Path) -> None:
    path = write(tmp_path, "[source]\nbatch_size = 250\n[recs]\nk = 5\n")
    env = {"TAILOR_RECS_K": "7", "REDIS_URL": "redis://example:6379/1"}
    config = load_config(path, env)
    assert config.source.batch_size == 250
    assert config.recs.k == 7
    assert config.redis_url == "redis://example:6379/1"


def test_int_is_accepted_for_a_float_setting(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[state]\nsession_gap_s = 600\n"), env={})
    assert config.state.session_gap_s == 600.0
    assert isinstance(config.state.session_gap_s, float)


def test_free_tables_take_new_keys_from_file_and_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[segments.rules]\nvip = "spend_30d > 1000"\n')
    env = {"TAILOR_SEGMENTS_PARAMS_N_CLUSTERS": "9", "TAILOR_SEGMENTS_RULES_NIGHT_OWL": "'x > 1'"}
    config = load_config(path, env)
    assert config.segments.rules["vip"] == "spend_30d > 1000"
    assert config.segments.rules["night_owl"] == "x > 1"
    assert config.segments.params["n_clusters"] == 9
    assert set(config.segments.rules) == {"vip", "night_owl"}  # the shipped rules: replaced


def test_the_readmes_ab_test_replaces_the_shipped_variant(tmp_path: Path) -> None:
    """Variant shares must add up to 1 over the user's variants: the README's A/B example
    replaces the shipped `all = 1.0` (merged, it added up to 2 and stopped start-up)."""
    path = write(
        tmp_path,
        "[recs.variant_shares]\ncontrol = 0.5\ntreatment = 0.5\n\n"
        '[recs.variant_models]\ncontrol = "trending"\ntreatment = "hybrid"\n',
    )
    config = load_config(path, {})
    assert dict(config.recs.variant_shares) == {"control": 0.5, "treatment": 0.5}
    assert dict(config.recs.variant_models) == {"control": "trending", "treatment": "hybrid"}
    assert quality_params(model_params(config)).assigned == {
        "control": "trending",
        "treatment": "hybrid",
    }
    by_env = load_config(None, {"TAILOR_RECS_VARIANT_SHARES_A": "1.0"})
    assert dict(by_env.recs.variant_shares) == {"a": 1.0}
    shipped = dict(load_config(None, {}).recs.event_weights)
    clicked = load_config(None, {"TAILOR_RECS_EVENT_WEIGHTS_CLICK": "1.0"})
    assert dict(clicked.recs.event_weights) == shipped | {"click": 1.0}  # laid over, key by key


def test_environment_lists_are_read_as_toml() -> None:
    config = load_config(env={"TAILOR_STATE_WINDOWS_S": "[60, 3600]"})
    assert config.state.windows_s == (60, 3600)


def test_unrelated_tailor_variables_are_ignored() -> None:
    assert load_config(env={"TAILOR_PSEUDONYM_SECRET": "x"}).recs.k == 10


@pytest.mark.parametrize(
    ("text", "env", "names"),
    [
        ("[source]\nbatchsize = 5\n", {}, "source.batchsize"),
        ("[sources]\nbatch_size = 5\n", {}, "sources"),
        ('[source]\nbatch_size = "many"\n', {}, "source.batch_size"),
        ("[recs]\nk = 0\n", {}, "recs.k"),
        ('[source]\nkind = "kafka"\n', {}, "source.kind"),
        ('[validation]\nmin_ts = "yesterday"\n', {}, "validation.min_ts"),
        ("[state]\nwindows_s = [3600, -1]\n", {}, "state.windows_s"),
        ("[segments.rules]\nbad = 3\n", {}, "segments.rules.bad"),
        ("", {"TAILOR_SOURCE_BATCHSIZE": "5"}, "TAILOR_SOURCE_BATCHSIZE"),
        ("", {"TAILOR_METRICS_PORT": "70000"}, "metrics.port"),
        ("not toml [", {}, "not valid TOML"),
        ("[source]\nbatch_max_bytes = 0\n", {}, "source.batch_max_bytes: must be"),
        ("[validation]\ntoo_large_prefix_bytes = -1\n", {}, "too_large_prefix_bytes: must be"),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, text: str, env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names.replace(".", r"\.")):
        load_config(write(tmp_path, text), env)


def test_cli_exits_2_on_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "[recs]\nk = -3\n")
    assert main(["--config", str(path), "inspect", "someone"]) == 2
    assert "recs.k" in capsys.readouterr().err


def test_cli_exits_2_when_run_has_no_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["run"]) == 2


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('[segments.rules]\nbroken = "views_24h >"\n', "segments.rules.broken"),
        ("[segments.rules]\nsneaky = \"__import__('os')\"\n", "segments.rules.sneaky"),
        ('[segments.rules]\ntypo = "view_24h > 3"\n', "segments.rules.typo"),
        ('[segments]\nclusterer = "Magic"\n', "segments.clusterer"),
        ("[segments.params]\nn_clusters = -2\n", "segments.params"),
    ],
)
def test_bad_models_config_stops_run_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, names: str
) -> None:
    path = write(tmp_path, "[metrics]\nport = 0\n" + text)
    env = {"REDIS_URL": "redis://127.0.0.1:1/0"}  # never reached: the config fails first
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        assert main(["--config", str(path), "run", "--until-drained"]) == 2
    assert names in capsys.readouterr().err


def test_a_taken_metrics_port_stops_run_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
        path = write(tmp_path, f"[metrics]\nport = {port}\n")
        assert main(["--config", str(path), "run"]) == 2
    assert "metrics.port" in capsys.readouterr().err


def test_the_shipped_clusterer_settings_are_the_measured_ones() -> None:
    """defaults.toml departs from none of the clusterer defaults that benchmarks/segments.py
    chose (state/segments/clusterers.py): the worker runs exactly those (k = 5, halflife 0.05)."""
    from tailor.flows.worker import model_params
    from tailor.operators.models import ModelsLogic
    from tailor.state.segments.clusterers import CLUSTERER_DEFAULTS

    config = load_config(env={})
    assert config.segments.params == {}
    segmenter = ModelsLogic(model_params(config)).state.segments.segmenter
    measured = CLUSTERER_DEFAULTS[config.segments.clusterer]
    effective = segmenter.model_params()
    assert {key: effective[key] for key in measured if key != "warmup"} == {
        key: value for key, value in measured.items() if key != "warmup"
    }
    assert (effective["n_clusters"], effective["halflife"]) == (5, 0.05)


def test_rules_and_the_clusterer_may_use_the_context_mix() -> None:
    """The context features are profile features: a rule may name them, and
    `[segments.features]` may give them to the clusterer (by default it sees the behavioural
    features only); a name that is no feature still stops start-up."""
    from tailor.flows.worker import model_params

    config = load_config(env={}).with_value(
        "segments", "rules", {"evening_mobile": "mobile_share > 0.5 and hour_cos < 0"}
    )
    chosen = {"spend_total": "log", "weekend_share": "standard"}
    params = model_params(config.with_value("segments", "features", chosen))
    assert params.features == ("spend_total", "weekend_share")
    assert "mobile_share" in params.rule_names() and "hour_cos" in params.rule_names()
    assert "weekend_share" not in model_params(config).features
    with pytest.raises(ConfigError, match="not profile features"):
        model_params(config.with_value("segments", "features", {"moon_phase": "standard"}))
