"""Recommenders by name from one settings object."""

from __future__ import annotations

import pytest

from tailor.state.recs.base import Interaction
from tailor.state.recs.hybrid import Hybrid
from tailor.state.recs.settings import MODELS, RecSettings, build
from tests.settings_support import changed, rec_settings


def test_every_named_model_learns_and_recommends() -> None:
    settings = rec_settings(seed=3)
    for name in MODELS:
        model = build(name, settings)
        for n, item in enumerate(["a", "b", "c", "a", "b"]):
            event = Interaction(f"u{n % 2}", item, float(n), categories=("Drama",))
            model.learn_one(event, ("a",) if n else ())
        recs = model.recommend("u0", ("a",), 5.0, 2, {"a"})
        assert recs and all(item != "a" for item, _ in recs), name


def test_settings_from_the_config_section_and_event_weights() -> None:
    config = changed(cooc_window=5, hybrid_select=False, event_weights={"click": 2}, k=10)
    settings = RecSettings.of(config.recs, seed=9)
    assert settings.cooc_window == 5 and settings.seed == 9 and not settings.hybrid_select
    assert settings.k == 10  # [recs] k, shared with the worker's list length
    assert settings.weight_of("click") == 2 and settings.weight_of("purchase") == 1
    assert settings.weight_of(None) == 1
    hybrid = build("hybrid", settings)
    assert isinstance(hybrid, Hybrid) and not hybrid.select
    assert hybrid.weights == {"cooc": 1.0, "isgd": 0.5, "category": 0.5}
    probing = build("hybrid", rec_settings(hybrid_probe_every=10, hybrid_warm_probes=7, k=20))
    assert isinstance(probing, Hybrid) and probing.probe_every == 10 and probing.k == 20
    assert probing.warm_probes == 7 and hybrid.warm_probes == 5000
    # the self-test's memory is set in interactions: 50,000, whatever the probe rate
    assert probing.decay == pytest.approx(0.5 ** (1 / 5000))
    with pytest.raises(ValueError, match="unknown recommender"):
        build("magic", settings)


def test_bad_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="event_weights"):
        rec_settings(event_weights={"purchase": 0})
    with pytest.raises(ValueError, match="event_weights"):
        rec_settings(event_weights={"purchase": 1.5})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="hybrid_probe_every"):
        rec_settings(hybrid_probe_every=0)
    with pytest.raises(ValueError, match="hybrid_warm_probes"):
        rec_settings(hybrid_warm_probes=-1)
    with pytest.raises(ValueError, match="hybrid_weights"):
        rec_settings(hybrid_weights={"cooc": -1.0})
    with pytest.raises(ValueError, match="hybrid_fallback"):
        rec_settings(hybrid_fallback=("cooc",))  # needs a history: no fallback
    with pytest.raises(ValueError, match="hybrid_fallback"):
        rec_settings(hybrid_fallback=())


def test_cooc_reasons_fall_back_to_its_fill() -> None:
    model = build("cooc", rec_settings())
    model.learn_one(Interaction("v", "a", 0.0), ())
    model.learn_one(Interaction("v", "b", 1.0), ("a",))
    model.learn_one(Interaction("w", "z", 2.0), ())
    assert [item for item, _ in model.recommend("u", ("a",), 3.0, 2, {"a"})] == ["b", "z"]
    assert model.why("u", ("a",), ["b", "z"]) == ["viewed with a", "popular"]
