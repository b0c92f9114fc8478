"""The snapshot envelope: a format version and a kind around plain data; a bare pickle (the
release before the format) and a newer format are refused with a dedicated error."""

from __future__ import annotations

import io
import pickle
import struct
from typing import Any

import numpy as np
import pytest

from tailor.operators.models import ModelsLogic, ModelsState
from tailor.operators.user_state import UserStateLogic
from tailor.state import snapshots
from tailor.state.recs.base import Interaction
from tailor.state.snapshots import FORMAT, MAGIC, SnapshotFormatError
from tests.settings_support import model_params, state_params


def test_an_envelope_carries_the_format_and_the_kind() -> None:
    blob = snapshots.encode("models", {"counts": np.arange(3), "ids": ["a", "b"]})
    assert FORMAT == 5
    assert blob.startswith(MAGIC + struct.pack(">H", FORMAT) + b"models\x00")
    assert snapshots.header(blob) == (FORMAT, "models")
    assert snapshots.problem(blob) is None
    data = snapshots.decode(blob, "models")
    assert data["ids"] == ["a", "b"] and data["counts"].tolist() == [0, 1, 2]


def test_the_steps_snapshot_envelopes_of_plain_data() -> None:
    """What Bytewax stores for the models and user steps: envelopes whose data loads no
    class but builtins and numpy's (a River model travels as bytes of its own), so our
    classes can change without breaking the stores written before."""
    models = ModelsLogic(model_params()).snapshot()
    user = UserStateLogic(state_params()).snapshot()
    assert snapshots.header(models) == (FORMAT, "models")
    assert snapshots.header(user) == (FORMAT, "user")
    for blob in (models, user):
        body = blob[blob.index(b"\x00", len(MAGIC) + 2) + 1 :]
        loader = Recording(io.BytesIO(body))
        loader.load()
        assert {module.split(".")[0] for module in loader.modules} <= {"builtins", "numpy"}


class Recording(pickle.Unpickler):
    """Notes the module of every class a pickle loads."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.modules: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        self.modules.add(module)
        return super().find_class(module, name)


def test_a_bare_pickle_from_the_previous_release_is_refused() -> None:
    """The previous release stored `pickle.dumps(ModelsState)` itself."""
    bare = pickle.dumps(ModelsState.fresh(model_params()), protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(SnapshotFormatError, match="without a format version"):
        snapshots.decode(bare, "models")
    with pytest.raises(SnapshotFormatError, match="without a format version"):
        ModelsLogic(model_params(), bare)
    assert "release before snapshot format 1" in (snapshots.problem(bare) or "")


def test_a_newer_format_or_another_kind_is_refused() -> None:
    newer = MAGIC + struct.pack(">H", FORMAT + 1) + b"models\x00" + pickle.dumps({})
    assert snapshots.header(newer) == (FORMAT + 1, "models")
    with pytest.raises(SnapshotFormatError, match=f"format {FORMAT + 1}, newer than"):
        snapshots.decode(newer, "models")
    with pytest.raises(SnapshotFormatError, match="'user' state where 'models'"):
        snapshots.decode(snapshots.encode("user", {}), "models")


def test_migrate_is_where_older_formats_become_the_current_one() -> None:
    assert snapshots.migrate(FORMAT, "models", {"a": 1}) == {"a": 1}
    with pytest.raises(SnapshotFormatError):
        snapshots.migrate(0, "models", {})


def test_a_format_1_models_snapshot_resumes() -> None:
    """What the release before format 2 wrote: every part whole, each trending with its
    top cache. It must resume to the same models (format 2 only adds references)."""
    logic = ModelsLogic(model_params())
    recs = logic.state.recs
    for n in range(300):
        recs.learn(Interaction(f"u{n % 17}", f"i{n % 41}", float(n), 1, ("c",)), (), frozenset())
    data = logic.state.to_snapshot()
    hybrid = data["recs"]["models"]["hybrid"]["components"]
    for name in ("trending", "mostpop"):
        trending = hybrid[name]["trending"]
        trending["weights"] = np.asarray(trending["weights"], dtype=np.float64)
        trending["cache"] = list(trending["items"])[:5]
    body = pickle.dumps(data)
    old = MAGIC + struct.pack(">H", 1) + b"models\x00" + body
    back = ModelsState.from_snapshot(snapshots.decode(old, "models"))
    assert back.recs.recommend("u3", ("i1",), frozenset(), 300.0) == recs.recommend(
        "u3", ("i1",), frozenset(), 300.0
    )


def test_a_format_2_user_snapshot_resumes_with_an_empty_context_mix() -> None:
    """Format 3 adds the user's context mix: a format-2 user state (no "mix") resumes with
    its features as they were and a mix that counts from the resume on."""
    from tailor.state.profile.event import Event
    from tailor.state.profile.user import UserState

    user = UserState()
    user.update(Event("1", "u", "purchase", 1_700_000_000.0, item_id="i", price=5.0))
    old = user.to_snapshot()
    del old["mix"], old["last_event"]
    blob = MAGIC + struct.pack(">H", 2) + b"user\x00" + pickle.dumps(old, protocol=5)
    resumed = UserState.from_snapshot(snapshots.decode(blob, "user"))
    assert resumed.features()["spend_total"] == 5.0
    assert resumed.mix.events == 0 and resumed.features()["direct_share"] == 0.0
    resumed.update(Event("2", "u", "page_view", 1_700_000_100.0, referrer="email"))
    assert resumed.features()["email_share"] == 1.0


def test_a_format_3_user_snapshot_resumes_without_a_last_event() -> None:
    """Format 4 adds the user's last event (type, time): a format-3 user resumes with none
    until their next event, and everything else as it was."""
    from tailor.state.profile.event import Event
    from tailor.state.profile.user import UserState

    user = UserState()
    user.update(Event("1", "u", "purchase", 1_700_000_000.0, item_id="i", price=5.0))
    assert user.last_event == ("purchase", 1_700_000_000.0)
    old = user.to_snapshot()
    del old["last_event"]
    blob = MAGIC + struct.pack(">H", 3) + b"user\x00" + pickle.dumps(old, protocol=5)
    resumed = UserState.from_snapshot(snapshots.decode(blob, "user"))
    assert resumed.last_event is None and resumed.features() == user.features()
    resumed.update(Event("2", "u", "page_view", 1_700_000_100.0))
    assert resumed.last_event == ("page_view", 1_700_000_100.0)


def test_a_format_4_segment_model_resumes_on_its_old_scaler_until_the_sample_fills() -> None:
    """Format 5 standardises over a sample of users and re-fits. A format-4 model (River's
    point-weighted scaler, no sample) resumes assigning exactly as it did, and hands over to
    the sample once it holds `warmup` users."""
    from river import preprocessing

    from tailor.state.segments.segmenter import Segmenter

    segmenter = Segmenter(features=("spend_30d", "views_24h"), warmup=20, params={"n_clusters": 2})
    old_scaler = preprocessing.StandardScaler()
    for n in range(40):
        features = {"spend_30d": 900.0 * (n % 2) + n, "views_24h": float(n % 7)}
        segmenter.learn_segment(features, None, f"u{n}", float(n))
        old_scaler.learn_one(segmenter._numeric(features))
    logic = ModelsLogic(model_params())
    logic.state.segments.segmenter = segmenter
    data = logic.state.to_snapshot()
    seg = data["segments"]
    for key in ("refit_every_s", "min_share", "horizons", "next_refit"):
        del seg[key]
    model, _fallback, token = pickle.loads(seg["segmenter"]["river"])
    seg["segmenter"]["river"] = pickle.dumps((model, old_scaler, token))
    for key in ("sample", "points", "refits", "refit_changes", "refit_min_changes"):
        del seg["segmenter"][key]
    del seg["segmenter"]["registry"]["retired"], seg["segmenter"]["registry"]["held"]
    blob = MAGIC + struct.pack(">H", 4) + b"models\x00" + pickle.dumps(data)

    resumed = ModelsState.from_snapshot(snapshots.decode(blob, "models")).segments
    probe = {"spend_30d": 450.0, "views_24h": 3.0}
    scaled = old_scaler.transform_one(resumed.segmenter._numeric(probe))
    point = [scaled["spend_30d"], scaled["views_24h"], 0.0, 0.0, 0.0, 1.0]
    assert resumed.segmenter.segment(probe, None) == resumed.segmenter.registry.nearest(point)
    assert resumed.refit_every_s == 604800.0 and resumed.segmenter.registry.retired == set()
    for n in range(20):
        resumed.segmenter.learn_segment({"spend_30d": float(n)}, None, f"v{n}", 100.0 + n)
    assert resumed.segmenter._fallback is None and len(resumed.segmenter._scaler) == 20
