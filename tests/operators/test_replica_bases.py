"""A replica snapshotted as bases plus changes (`tailor.operators.bases`) resumes to the state it
had.

Driven without a flow, as Bytewax would: batches into `ReplicaLogic`, the bases it emits kept
in a dict as the `bases` step's rows (a tombstone deletes), and an epoch end every few
batches. At each epoch end a replica resumed from that snapshot and those bases must hold
exactly the models of the running one, and go on to give the same outputs."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

from tailor.operators.bases import BaseCut
from tailor.operators.model_params import ModelParams
from tailor.operators.models import ModelsIn
from tailor.operators.redis.routing import replica_keys
from tailor.operators.replicas import Copy, ReplicaLogic, copies
from tests.operators.test_replicas import PARAMS, stamped_batches
from tests.state.increment_support import same

KEY = replica_keys(1)[0]
EPOCH = 3  # batches per epoch


def own_copy(params: ModelParams, batch: list[ModelsIn]) -> Copy:
    ((_key, copy),) = copies(1, params.remote_window, params.segments.learn_every)(
        (KEY, tuple(batch))
    )
    return copy


def whole(replica: ReplicaLogic) -> Any:
    """The replica's models as plain data, every part whole (outside a snapshot)."""
    return pickle.loads(pickle.dumps(replica.models.state.to_snapshot()))


def feed(replica: ReplicaLogic, params: ModelParams, batch: list[ModelsIn], rows: dict) -> list:
    out, _ = replica.on_batch([own_copy(params, batch)])
    outputs = []
    for item in out:
        if isinstance(item, BaseCut):
            if item.blob is None:
                rows.pop(item.key)
            else:
                rows[item.key] = item.blob
        else:
            outputs.append(item)
    return outputs


def test_every_epoch_resumes_to_the_running_models_and_the_same_outputs() -> None:
    rows: dict[str, bytes] = {}
    params = dataclasses.replace(PARAMS, base_loader=rows.get)
    replica = ReplicaLogic(params, None)
    batches = stamped_batches(n_users=60, events=1500, size=50)
    outputs, epochs = [], []
    for n, batch in enumerate(batches, 1):
        outputs.append(feed(replica, params, batch, rows))
        if n % EPOCH == 0:
            epochs.append((n, replica.snapshot(), dict(rows), whole(replica)))
    assert any(blob.count(b"incremental") for _n, blob, _rows, _w in epochs)  # bases named
    for n, blob, at_epoch, models in epochs:
        resumed_params = dataclasses.replace(PARAMS, base_loader=at_epoch.get)
        resumed = ReplicaLogic(resumed_params, blob)
        same(whole(resumed), models, f"epoch after batch {n}")
        for b, expected in zip(batches[n : n + EPOCH], outputs[n : n + EPOCH], strict=True):
            assert feed(resumed, resumed_params, b, dict(at_epoch)) == expected


def test_without_recovery_the_replica_makes_no_snapshot() -> None:
    replica = ReplicaLogic(dataclasses.replace(PARAMS, snapshots=False), None)
    replica.on_batch([own_copy(PARAMS, stamped_batches(events=50)[0])])
    assert replica.snapshot() == b""
