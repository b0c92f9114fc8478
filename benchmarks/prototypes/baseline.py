"""Today's shape: every click meets one constant key, one logic learns and serves them all.

    python -m benchmarks.prototypes.baseline [EVENTS]   # 1 then 2 processes, cluster mode

Source → user history (keyed by user) → ONE step keyed "models": the real co-occurrence model
(`tailor.state.recs.cooc_counts.CoOccurrence`, the default settings: 300 neighbours, window 10,
alpha 0.25) learns every click and serves each changed user's top 10 at their last click of
the user step's batch. Whatever the cluster size, the models key lives on one worker.
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic

from benchmarks.prototypes.common import Click, CountSink, events_wanted, main_for, user_step
from tailor.state.recs.cooc_counts import CoOccurrence

K = 10


def new_cooc() -> CoOccurrence:
    """The default `[recs]` co-occurrence settings."""
    return CoOccurrence(300, 10, alpha=0.25)


def serve(model: CoOccurrence, clicks: list[Click]) -> list[tuple[str, list[str]]]:
    """Learn every click; a user's top K after their batch's last click (history excluded)."""
    out = []
    for c in clicks:
        model.add(c.previous, c.item)
        if c.last:
            history = (*c.previous, c.item)
            recs = model.recommend(history, K, exclude=set(history))
            out.append((c.user, [item for item, _ in recs]))
    return out


class Models(StatefulBatchLogic[Click, tuple[str, list[str]], CoOccurrence]):
    def __init__(self, resume: CoOccurrence | None) -> None:
        self.model = resume or new_cooc()

    def on_batch(self, values: list[Click]) -> tuple[list[tuple[str, list[str]]], bool]:
        return serve(self.model, values), StatefulBatchLogic.RETAIN

    def snapshot(self) -> CoOccurrence:
        return self.model


def get_flow() -> Dataflow:
    flow = Dataflow("proto_baseline")
    clicks = user_step(flow, events_wanted())
    together = op.key_on("to_models", clicks, lambda _c: "models")
    op.output("out", op.stateful_batch("models", together, Models), CountSink())
    return flow


if __name__ == "__main__":
    main_for("benchmarks.prototypes.baseline:get_flow")
