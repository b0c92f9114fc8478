"""Building blocks for the models step's tests: user updates as the user-state step makes them,
a small deterministic shop, and a dataflow that runs the step."""

from __future__ import annotations

from collections import defaultdict

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from tailor.flows.worker import quality_params
from tailor.operators.model_params import ModelParams
from tailor.operators.records import (
    Erasure,
    FallbackList,
    QualityReport,
    SegmentInfo,
    SegmentModel,
    UserOutput,
    UserUpdate,
)
from tailor.operators.replicas import models
from tailor.operators.user_outputs import UserOutputsParams, per_user_outputs
from tailor.state.profile.event import Event
from tailor.state.segments.segmenter import DEFAULT_FEATURES

Out = UserOutput | SegmentInfo | SegmentModel | Erasure | QualityReport | FallbackList


class Users:
    """Builds UserUpdates the way the user-state step does: history includes the event's item."""

    def __init__(self) -> None:
        self.history: dict[str, list[str]] = defaultdict(list)
        self.purchased: dict[str, set[str]] = defaultdict(set)
        self.version: dict[str, int] = defaultdict(int)
        self.n = 0

    def event(
        self, user: str, item: str | None, kind: str = "product_view", device: str = "mobile"
    ) -> UserUpdate:
        self.n += 1
        ts = 1_700_000_000.0 + 60 * self.n
        if item is not None:
            self.history[user].append(item)
            if kind == "purchase":
                self.purchased[user].add(item)
        self.version[user] += 1
        views = float(len(self.history[user]))
        features = dict.fromkeys(DEFAULT_FEATURES, 0.0)
        features.update(views_24h=views, spend_30d=10.0 * len(self.purchased[user]))
        return UserUpdate(
            user_id=user,
            version=self.version[user],
            event=Event(f"e{self.n}", user, kind, ts, item_id=item, device=device),
            read_at=float(self.n),
            features=features,
            device=device,
            referrer="search" if user.endswith("1") else None,
            top_categories=(("books", 2.0), ("games", 1.0)),
            history=tuple(self.history[user][-50:]),
            purchased=frozenset(self.purchased[user]),
        )


def outputs_params(params: ModelParams, ttl_s: float = 0.0) -> UserOutputsParams:
    """The per-user outputs step as the worker configures it from the models' settings, but
    keeping every user for ever unless the test gives `ttl_s`."""
    return UserOutputsParams(params.segments.rules, params.rule_names(), params.recs.k, ttl_s)


def run(updates: list[UserUpdate], params: ModelParams, batch_size: int) -> list[Out]:
    """The models step and the per-user outputs step after it, as the worker wires them."""
    flow = Dataflow("models_test")
    stream = op.input("in", flow, TestingSource(updates, batch_size=batch_size))
    keyed = op.key_on("key", stream, lambda _u: "models")
    out: list[Out] = []
    drafts = op.key_rm("unkey", models("models", keyed, params))
    quality = quality_params(params)
    outputs = per_user_outputs("user_outputs", drafts, outputs_params(params), quality)
    op.output("out", outputs, TestingSink(out))
    run_main(flow)
    return out


def shopping(seed_users: int = 12) -> list[UserUpdate]:
    """Users browsing two item families (a*, b*) plus popular 'hit' items; deterministic."""
    users = Users()
    updates = []
    for n in range(seed_users):
        family = "a" if n % 2 else "b"
        user = f"u{n}"
        for i in range(5):
            updates.append(users.event(user, f"{family}{(n + i) % 6}"))
        updates.append(users.event(user, "hit", kind="purchase"))
    updates.append(users.event("u1", None, kind="page_view"))
    return updates


def user_outputs(outs: list[Out]) -> list[UserOutput]:
    return [o for o in outs if isinstance(o, UserOutput)]
