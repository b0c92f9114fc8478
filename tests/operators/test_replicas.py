"""Replicas of the models (`tailor.operators.replicas`), driven without a flow as Bytewax would with
two workers: each replica takes its own worker's batches and a copy of the other's.

Every replica must hold the segment model one models step holds (it learns in one
event-time order), only a user's own replica may send that user's news, only the first
replica publishes segment news, and an erased user is in no replica's snapshot."""

from __future__ import annotations

import dataclasses
import pickle
import random

from prometheus_client import REGISTRY

from tailor.operators.bases import BaseCut
from tailor.operators.models import ModelsIn, ModelsLogic, ModelsOut
from tailor.operators.records import (
    Erasure,
    FallbackList,
    ForUser,
    Learned,
    SegmentInfo,
    SegmentModel,
    Stamp,
    UserUpdate,
)
from tailor.operators.redis.routing import replica_keys, worker_of
from tailor.operators.replicas import Copy, ReplicaLogic, copies, replica_of
from tailor.state.recs.base import Interaction
from tailor.state.segments.segmentation import learn_point
from tailor.state.snapshots import encode
from tests.operators.models_support import Users
from tests.settings_support import model_params

WORKERS = 2
#: Lists for users without history after every batch, not per second of wall clock: what
#: comes out depends on the input alone.
PARAMS = model_params(
    warmup=20, learn_every=3, publish_every=5, origins=("p",), k=5, fallback_every_s=0.0
)


def stamped_batches(n_users: int = 60, events: int = 900, size: int = 50) -> list[list[ModelsIn]]:
    """One source partition's batches of updates, each record stamped with its batch."""
    rng = random.Random(7)
    users = Users()
    updates = [
        users.event(f"u{rng.randrange(n_users)}z", f"i{rng.randrange(80)}") for _ in range(events)
    ]
    batches: list[list[ModelsIn]] = []
    for seq, start in enumerate(range(0, len(updates), size)):
        chunk = updates[start : start + size]
        stamp = Stamp("p", seq, len(chunk))
        batches.append([dataclasses.replace(u, stamp=stamp) for u in chunk])
    return batches


def run_replicas(batches: list[list[ModelsIn]]) -> tuple[list[ReplicaLogic], list[list[ModelsOut]]]:
    """Each batch split by the worker holding each item's user, then fanned out: the own copy
    to its replica at once, the other's copy in the same round (arrival order varies)."""
    keys = replica_keys(WORKERS)
    key_of = replica_of(WORKERS)
    fan_out = copies(WORKERS, PARAMS.remote_window, PARAMS.segments.learn_every)
    replicas = [ReplicaLogic(PARAMS, None) for _ in keys]
    outs: list[list[ModelsOut]] = [[] for _ in keys]
    for n, batch in enumerate(batches):
        inbox: dict[str, list[Copy]] = {k: [] for k in keys}
        for origin in keys:
            local = tuple(item for item in batch if key_of(item) == origin)
            if local:
                for key, copy in fan_out((origin, local)):
                    inbox[key].append(copy)
        for w, key in enumerate(keys):
            got = inbox[key] if n % 2 else inbox[key][::-1]
            emitted, _ = replicas[w].on_batch(got)
            outs[w].extend(o for o in emitted if not isinstance(o, BaseCut))
    for w, replica in enumerate(replicas):
        emitted, _ = replica.on_eof()
        outs[w].extend(o for o in emitted if not isinstance(o, BaseCut))
    return replicas, outs


def one_models_step(batches: list[list[ModelsIn]]) -> ModelsLogic:
    logic = ModelsLogic(PARAMS)
    for batch in batches:
        logic.on_batch(batch)
    logic.on_eof()
    return logic


def test_every_replica_holds_the_segment_model_of_one_models_step() -> None:
    batches = stamped_batches()
    one = one_models_step(batches).state.segments
    replicas, _ = run_replicas(batches)
    assert one.segmenter.registry.learned > PARAMS.segments.warmup  # segments exist
    for replica in replicas:
        segments = replica.models.state.segments
        assert segments.model_record(0.0) == one.model_record(0.0)
        assert encode("rfm", segments.rfm.to_snapshot()) == encode("rfm", one.rfm.to_snapshot())
        assert segments.names == one.names


def test_only_a_users_own_replica_sends_their_news_and_only_the_first_publishes() -> None:
    batches = stamped_batches()
    _, outs = run_replicas(batches)
    users = {u.user_id for batch in batches for u in batch if isinstance(u, UserUpdate)}
    served: set[str] = set()
    for w, out in enumerate(outs):
        news = {o.user_id for o in out if isinstance(o, ForUser)}
        assert news and all(worker_of(user, WORKERS) == w for user in news)
        served |= news
        published = [o for o in out if isinstance(o, SegmentInfo | SegmentModel)]
        assert bool(published) == (w == 0)
    assert served == users


def test_an_erased_user_is_in_no_replica() -> None:
    batches = stamped_batches()
    gone = "u3z"
    history = tuple(u.event.item_id or "" for b in batches for u in b if isinstance(u, UserUpdate))
    last = batches[-1]
    mine = [u for b in batches for u in b if isinstance(u, UserUpdate) and u.user_id == gone]
    erasure = Erasure(gone, "forget", tuple(mine[-1].history))
    # the erasure counts as one more record of the last batch, as the user step sends it
    stamp = Stamp("p", len(batches) - 1, len(last) + 1)
    batches[-1] = [
        dataclasses.replace(u, stamp=stamp) if isinstance(u, UserUpdate) else u for u in last
    ]
    batches[-1].append(erasure)
    replicas, outs = run_replicas(batches)
    assert history  # the user had interactions in every replica
    for w, replica in enumerate(replicas):
        assert gone.encode() not in replica.snapshot()
        forwarded = [o for o in outs[w] if isinstance(o, Erasure)]
        assert forwarded == ([erasure] if worker_of(gone, WORKERS) == w else [])


def test_each_replica_probes_its_self_test_on_its_own_users_only() -> None:
    batches = stamped_batches()
    one = one_models_step(batches).state.recs.models["hybrid"]
    replicas, _ = run_replicas(batches)
    probes = [r.models.state.recs.models["hybrid"].probes for r in replicas]  # type: ignore[attr-defined]
    assert 0 < one.probes < one.warm_probes  # type: ignore[attr-defined]
    # in the warm phase every testable interaction is a probe: split between the replicas,
    # not repeated by each (learning another worker's users is learning, not testing)
    assert all(probes) and sum(probes) == one.probes  # type: ignore[attr-defined]


def test_another_workers_copy_carries_only_what_learning_reads() -> None:
    batches = stamped_batches(events=300)
    fan_out = copies(WORKERS, PARAMS.remote_window, PARAMS.segments.learn_every)
    items = tuple(batches[-1])
    own, other = fan_out((replica_keys(WORKERS)[0], items))
    assert own[1].own and own[1].items == items
    assert not other[1].own and len(other[1].items) == len(items)
    for update, slim in zip(items, other[1].items, strict=True):
        assert isinstance(update, UserUpdate) and isinstance(slim, Learned)
        assert (slim.user_id, slim.version, slim.item_id) == (
            update.user_id,
            update.version,
            update.event.item_id,
        )
        assert slim.previous == update.history[:-1][-PARAMS.remote_window :]
        at_learn_point = learn_point(update.version, update.event.type, PARAMS.segments.learn_every)
        assert (slim.features is not None) == at_learn_point
    assert len(pickle.dumps(other[1])) < len(pickle.dumps(own[1])) / 2


def test_every_replica_counts_every_workers_pairs() -> None:
    """Co-occurrence counts add: learned as remote batches they equal one step's exactly."""
    batches = stamped_batches()
    one = one_models_step(batches).state.recs.models["hybrid"]
    replicas, _ = run_replicas(batches)
    expected = one.components["cooc"].cooc  # type: ignore[attr-defined]
    for replica in replicas:
        cooc = replica.models.state.recs.models["hybrid"].components["cooc"].cooc  # type: ignore[attr-defined]
        assert cooc.count("i7") == expected.count("i7") > 0
        for item in ("i1", "i7", "i42"):
            assert cooc.neighbors(item) == expected.neighbors(item)


def test_the_cost_of_learning_other_workers_updates_is_metered() -> None:
    """`tailor_model_updates` / `tailor_model_cpu_seconds` split a replica's work into its
    own workers' updates and the copies of everyone else's: with two workers, every update
    is learned once as its own replica's and once as a copy."""

    def sample(name: str, work: str) -> float:
        return REGISTRY.get_sample_value(f"tailor_model_{name}_total", {"work": work}) or 0.0

    before = {(n, w): sample(n, w) for n in ("updates", "cpu_seconds") for w in ("own", "remote")}
    batches = stamped_batches(events=300)
    run_replicas(batches)
    items = sum(len(batch) for batch in batches)
    assert sample("updates", "own") - before[("updates", "own")] == items
    assert sample("updates", "remote") - before[("updates", "remote")] == items
    assert sample("cpu_seconds", "own") > before[("cpu_seconds", "own")]
    assert sample("cpu_seconds", "remote") > before[("cpu_seconds", "remote")]


def test_only_the_first_replica_publishes_the_lists_and_their_versions_only_grow() -> None:
    """Every replica keeps the lists, the first publishes them (one writer per list); the
    others drop their changes, which would otherwise pile up."""
    batches = stamped_batches()
    replicas, outs = run_replicas(batches)
    for w, out in enumerate(outs):
        lists = [o for o in out if isinstance(o, FallbackList)]
        assert bool(lists) == (w == 0)
        assert not replicas[w].models.state.recs.fallbacks.changed()
    last: dict[tuple[str, str], int] = {}
    for found in (o for o in outs[0] if isinstance(o, FallbackList)):
        assert found.version > last.get((found.kind, found.group), 0)
        last[(found.kind, found.group)] = found.version
    items = sum(1 for b in batches for u in b if isinstance(u, UserUpdate) and u.event.item_id)
    assert last[("popular", "")] == last[("trending", "")] == items
    assert any(kind == "segment" for kind, _ in last)


def test_a_replica_publishes_nothing_before_a_copy_says_it_is_the_first() -> None:
    """A replica learns its key from its copies: resumed, it waits for one to publish."""
    first = replica_keys(WORKERS)[0]
    lead = ReplicaLogic(PARAMS, None)
    lead.on_batch([Copy(True, True, tuple(stamped_batches()[0]), first)])
    lead.models.state.recs.learn(Interaction("u1z", "i1", 1_800_000_000.0), ())  # unpublished
    resumed = ReplicaLogic(PARAMS, lead.snapshot())
    assert resumed.models.state.recs.fallbacks.changed()
    assert resumed.notify_at() is None
    assert not [o for o in resumed.on_notify()[0] if isinstance(o, FallbackList)]
    assert not [o for o in resumed.on_eof()[0] if isinstance(o, FallbackList)]
    emitted, _ = resumed.on_batch([Copy(False, True, (), first)])
    assert [o.kind for o in emitted if isinstance(o, FallbackList)][:2] == ["popular", "trending"]
