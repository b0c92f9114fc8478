"""Segment churn: every worker's moves gathered into one count per event-time hour.

The user-keyed outputs step sees each move (`tailor.operators.user_outputs`); the counts must
meet somewhere. As for live quality (`tailor.operators.live_quality`), each worker's batch of
`Moves` is folded into one record where it is (no exchange), and only that crosses to the
one `CHURN_KEY`, where a `Churn` (`tailor.state.segments.churn`) counts them and emits a
`ChurnReport` for the sink when the counts moved. The cost on the constant key is one small
record per worker per batch that moved someone.
"""

from __future__ import annotations

from collections.abc import Iterable

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulBatchLogic

from tailor.operators.records import Moves
from tailor.state import snapshots
from tailor.state.segments.churn import Churn, ChurnReport

__all__ = ["CHURN_KEY", "ChurnLogic", "merged_moves", "segment_churn"]

#: The key the per-batch moves meet under.
CHURN_KEY = "churn"


def merged_moves(batch: list[Moves]) -> list[Moves]:
    """One worker's batch of moves as one record (nothing when nobody moved)."""
    hours = tuple(hour for moves in batch for hour in moves.hours)
    return [Moves(hours)] if hours else []


class ChurnLogic(StatefulBatchLogic[Moves, ChurnReport, bytes]):
    """The counts; a report to the sink after each batch of moves."""

    def __init__(self, resume_state: bytes | None) -> None:
        self.state = (
            Churn.from_snapshot(snapshots.decode(resume_state, "churn"))
            if resume_state is not None
            else Churn()
        )

    def on_batch(self, values: list[Moves]) -> tuple[Iterable[ChurnReport], bool]:
        self.state.add(hour for moves in values for hour in moves.hours)
        return [self.state.report()], StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        """The counts as plain data in a versioned envelope (`tailor.state.snapshots`)."""
        return snapshots.encode("churn", self.state.to_snapshot())


@operator
def segment_churn(step_id: str, up: Stream[Moves]) -> Stream[ChurnReport]:
    """Fold each worker's batch of moves, gather them under `CHURN_KEY`, report.

    :arg up: `Moves` from the user-keyed outputs step, on every worker.
    :returns: A `ChurnReport` per batch that moved someone.
    """
    folded = op.flat_map_batch("per_batch", up, merged_moves)
    keyed = op.key_on("gather", folded, lambda _moves: CHURN_KEY)
    return op.key_rm("unkey", op.stateful_batch("counts", keyed, ChurnLogic))
