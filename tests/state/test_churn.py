"""Segment churn counts: per event-time hour, whatever order the workers' moves arrive in."""

from __future__ import annotations

import random

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from tailor.operators.churn import segment_churn
from tailor.operators.records import Moves
from tailor.state.segments.churn import HOURS, Churn, ChurnReport


def test_the_counts_do_not_depend_on_arrival_order() -> None:
    hours = [100] * 5 + [101] * 3 + [99] * 7 + [102]
    reports = set()
    for seed in range(5):
        shuffled = hours[:]
        random.Random(seed).shuffle(shuffled)
        churn = Churn()
        for start in range(0, len(shuffled), 3):
            churn.add(shuffled[start : start + 3])
        reports.add(churn.report())
    assert reports == {ChurnReport(hour=102, moves=1, previous_hour=101, previous_moves=3)}


def test_hours_behind_the_window_are_dropped() -> None:
    churn = Churn()
    churn.add([10, 10, 11])
    churn.add([10 + HOURS])  # hour 10 falls out, 11 stays
    assert sorted(churn.counts) == [11, 10 + HOURS]
    churn.add([10])  # too old now: not counted
    assert 10 not in churn.counts


def test_a_snapshot_gives_the_counts_back() -> None:
    churn = Churn()
    churn.add([5, 6, 6])
    assert Churn.from_snapshot(churn.to_snapshot()) == churn


def test_the_step_gathers_every_batch_into_one_count() -> None:
    flow = Dataflow("churn")
    moves = op.input("in", flow, TestingSource([Moves((7, 8)), Moves((8,)), Moves((8, 9))]))
    out: list[ChurnReport] = []
    op.output("out", segment_churn("churn", moves), TestingSink(out))
    run_main(flow)
    assert out[-1] == ChurnReport(hour=9, moves=1, previous_hour=8, previous_moves=3)
