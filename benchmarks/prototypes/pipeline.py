"""The pipeline around the models alone: source → user history (keyed by user) → sink.

    python -m benchmarks.prototypes.pipeline [EVENTS]   # 1 then 2 processes, cluster mode

What every option pays before any model work: about half the clicks cross processes at the
user key with 2 processes. The options' rows in `run_all` are read against this one.
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from benchmarks.prototypes.common import CountSink, events_wanted, main_for, user_step


def get_flow() -> Dataflow:
    flow = Dataflow("proto_pipeline")
    clicks = user_step(flow, events_wanted())
    op.output("out", op.filter("served", clicks, lambda c: c.last), CountSink())
    return flow


if __name__ == "__main__":
    main_for("benchmarks.prototypes.pipeline:get_flow")
