"""Live recommendation quality: the users' scored interactions gathered into one report.

The tests run per user, in the user-keyed outputs step (`tailor.operators.user_outputs`), on
whichever worker holds the user. Quality is a window over everyone's interactions, so the
ranks must meet somewhere; they do, per batch, not per event. A stateless `flat_map_batch`
folds each worker's batch of `Scores` into one record (no exchange: it runs where the batch
is), and only that record crosses to the one `quality` key, where a `LiveQuality` adds the
ranks to the windows in the models' learning order (`seq`) and emits a `QualityReport` when
it moved. So the cost on the constant key is one small record per worker per batch, the
windows are snapshotted like any keyed state (a kill -9 resumes them exactly), and the
report keeps its meaning with 1 and with N workers: one window per variant over everyone's
last `quality_window` scored interactions, written to `<prefix>:quality:recs` as before and
set as the `tailor_rec_*` gauges by the one process that holds the key. With one worker the
figures equal the single models step's; with N, interactions scored in the same batch on
different workers enter the window in learning order, later batches after earlier ones.

Partial sums per worker (counts add) would cross even less, but a sliding window of the last
N interactions is not a sum of per-worker windows, and the report would change meaning with
the worker count; ranks are a few bytes each, one record per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulBatchLogic

from tailor.operators.metrics import REC_MRR, REC_NDCG, REC_RECALL
from tailor.operators.records import Scores
from tailor.state import snapshots
from tailor.state.recs.live_quality import LiveQuality, QualityReport

__all__ = ["QUALITY_KEY", "QualityLogic", "QualityParams", "live_quality", "merged"]

#: The key the per-batch scores meet under (one record per worker per batch).
QUALITY_KEY = "quality"


@dataclass(frozen=True)
class QualityParams:
    """The variants (variant → model name), `recs.quality_window` and `recs.k`
    (`tailor.flows.worker.quality_params`)."""

    assigned: Mapping[str, str]
    window: int
    k: int


def merged(batch: list[Scores]) -> list[Scores]:
    """One worker's batch of scores as one record (nothing when there is nothing)."""
    if not batch:
        return []
    if len(batch) == 1:
        return batch
    return [Scores(tuple(s for scores in batch for s in scores.scored))]


class QualityLogic(StatefulBatchLogic[Scores, QualityReport, bytes]):
    """The windows; a report to the gauges and the sink when they moved."""

    def __init__(self, params: QualityParams, resume_state: LiveQuality | bytes | None) -> None:
        self.state: LiveQuality
        if isinstance(resume_state, bytes):
            self.state = LiveQuality.from_snapshot(snapshots.decode(resume_state, "quality"))
        elif resume_state is not None:
            self.state = resume_state
        else:
            self.state = LiveQuality.build(params.assigned, params.window, params.k)

    def on_batch(self, values: list[Scores]) -> tuple[Iterable[QualityReport], bool]:
        self.state.add(s for scores in values for s in scores.scored)
        report = self.state.report()
        for variant, means in report.record.items():
            labels = (variant, means["model"])
            REC_RECALL.labels(*labels).set(means["recall"])
            REC_NDCG.labels(*labels).set(means["ndcg"])
            REC_MRR.labels(*labels).set(means["mrr"])
        return [report], StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        """The windows as plain data in a versioned envelope (`tailor.state.snapshots`)."""
        return snapshots.encode("quality", self.state.to_snapshot())


@operator
def live_quality(step_id: str, up: Stream[Scores], params: QualityParams) -> Stream[QualityReport]:
    """Fold each worker's batch of scores, gather them under `QUALITY_KEY`, report.

    :arg up: `Scores` from the user-keyed outputs step, on every worker.
    :returns: A `QualityReport` per batch that scored something.
    """
    LiveQuality.build(params.assigned, params.window, params.k)
    folded = op.flat_map_batch("per_batch", up, merged)
    keyed = op.key_on("gather", folded, lambda _scores: QUALITY_KEY)

    def builder(resume_state: LiveQuality | bytes | None) -> QualityLogic:
        return QualityLogic(params, resume_state)

    return op.key_rm("unkey", op.stateful_batch("windows", keyed, builder))
